/**
 * The embedders the RAG benchmark can run with, each through the server's
 * own code (BatchingEmbedder over a pooling model) where there is a model:
 * - minilm: a BERT encoder with all-MiniLM-L6-v2's exact configuration and
 *   WordPiece tokenizer (../shared/models) and random weights (seed 7, std
 *   0.05): the trained weights are not on this machine, so its vectors show
 *   the pipeline's cost, not a trained model's quality;
 * - decoder: the server's fallback, stories260K's mean-pooled hidden states
 *   (a real, trained, but tiny model of children's stories);
 * - hash: the tests' hashed bag of words (a lexical signal in dense form).
 */
import path from 'node:path';
import { DecoderMeanPool } from '../../src/engine/decoder-pooling.js';
import { cachedRandomEncoder } from '../../src/engine/encoder-dir.js';
import { TransformersEncoder, type PoolingModel, type PoolingThreading } from '../../src/engine/encoder.js';
import { materializeModel, resolveModelSource } from '../../src/engine/model-source.js';
import { BatchingEmbedder } from '../../src/services/embeddings/batcher.js';
import type { Embedder } from '../../src/services/embeddings/types.js';
import type { EmbedderSource } from '../../src/services/rag/index-builder.js';
import { FakeEmbedder } from '../../test/helpers/fake-embedder.js';

export const EMBEDDERS = ['minilm', 'decoder', 'hash'] as const;
export type EmbedderName = (typeof EMBEDDERS)[number];

const REPO = path.resolve(import.meta.dirname, '../..');
const SHARED = path.resolve(REPO, '../shared/models');

export interface LoadOptions {
  /** The session's thread behaviour (default: the server's, EMBEDDING_ORT_SPINNING unset). */
  threading?: PoolingThreading;
  /** Wraps the pooling model before the batcher gets it (to time its calls). */
  wrap?: (model: PoolingModel) => PoolingModel;
}

/** The named embedder, loaded; `close` frees its session. */
export async function loadEmbedder(name: EmbedderName, cacheDir: string, threads: number, opts: LoadOptions = {}): Promise<{ embedder: Embedder; close(): Promise<void> }> {
  if (name === 'hash') return { embedder: new FakeEmbedder({ dimensions: 384, model: 'hash-bow-384' }), close: async () => {} };
  let model: PoolingModel;
  let label: string;
  if (name === 'minilm') {
    const dir = cachedRandomEncoder({ sourceDir: path.join(SHARED, 'all-MiniLM-L6-v2'), cacheRoot: path.join(cacheDir, 'encoders'), seed: 7, std: 0.05 });
    model = await TransformersEncoder.load({ kind: 'dir', dir }, threads, opts.threading);
    label = 'all-MiniLM-L6-v2-shape:random-seed7';
  } else {
    const source = resolveModelSource(path.join(SHARED, 'stories260K/stories260K.bin'), undefined, 'stories260K');
    model = await DecoderMeanPool.load(await materializeModel(source, cacheDir), threads, opts.threading);
    label = 'stories260K:mean-pool';
  }
  if (opts.wrap) model = opts.wrap(model);
  const embedder = new BatchingEmbedder(
    model,
    { model: label, source: name === 'minilm' ? 'path' : 'decoder', dimensions: model.dimensions, maxTokens: model.maxTokens },
    { maxBatchSize: 32, maxWaitMs: 2, maxWaiting: 4096 },
  );
  return { embedder, close: () => embedder.close() };
}

/** An always-ready source over one embedder (what the embedding host is once loaded). */
export const readySource = (embedder: Embedder): EmbedderSource => ({
  state: 'ready',
  require: () => embedder,
  whenReady: async () => embedder,
});

/** The same embedder answering under another model name (to search vectors stored under that name). */
export function renamed(embedder: Embedder, model: string): Embedder {
  return {
    info: { ...embedder.info, model },
    countTokens: (t) => embedder.countTokens(t),
    embed: (texts, opts) => embedder.embed(texts, opts),
  };
}
