import path from 'node:path';
import { env as hfEnv } from '@huggingface/transformers';
import { DecoderMeanPool } from '../../engine/decoder-pooling.js';
import { encoderDirProblem, TransformersEncoder, type PoolingModel } from '../../engine/encoder.js';
import type { Log } from '../../observability/log.js';
import { BatchingEmbedder, type BatcherLimits, type EmbeddingObserver } from './batcher.js';
import type { EmbeddingHost } from './host.js';
import type { EmbeddingSourceKind } from './types.js';

/** How long the hub may take to answer before the machine counts as offline. */
const HUB_PROBE_TIMEOUT_MS = 5000;

export class EmbeddingSourceError extends Error {}

/**
 * Checks EMBEDDING_MODEL_PATH at start-up, as MODEL_PATH is checked: a path
 * that names no usable encoder directory is a configuration mistake, so the
 * server refuses to start rather than quietly serving another model.
 */
export function checkEmbeddingModelPath(modelPath: string | undefined): void {
  if (modelPath === undefined) return;
  const problem = encoderDirProblem(modelPath);
  if (problem) {
    throw new EmbeddingSourceError(
      `EMBEDDING_MODEL_PATH=${modelPath}: ${problem}. Set it to a transformers.js feature-extraction directory ` +
        `(config.json, tokenizer.json, onnx/model.onnx or onnx/model_quantized.onnx), or unset it.`,
    );
  }
}

export interface EmbeddingLoadOptions {
  host: EmbeddingHost;
  /** EMBEDDING_MODEL_PATH: a local encoder directory (first choice). */
  modelPath: string | undefined;
  /** EMBEDDING_MODEL: a hub id (second choice); undefined or empty skips the hub. */
  hubId: string | undefined;
  /** HF_HUB_OFFLINE: use the hub model only if it is already in the cache. */
  hubOffline: boolean;
  /** Where hub downloads are cached (MODEL_CACHE_DIR/hub). */
  hubCacheDir: string;
  /** The served decoder's directory and name once it is loadable (third choice), or null if it is not. */
  decoder: Promise<{ dir: string; name: string } | null>;
  threads: number;
  /** EMBEDDING_ORT_SPINNING: the session's intra-op threads spin while waiting for work. */
  spinning?: boolean;
  limits: BatcherLimits;
  observer?: EmbeddingObserver;
  log: Log;
}

const threading = (opts: EmbeddingLoadOptions) => ({ spinning: opts.spinning ?? false });

interface Loaded {
  model: PoolingModel;
  name: string;
  source: EmbeddingSourceKind;
  aliases: string[];
}

/** An error's message, with its cause's (fetch's "fetch failed" says nothing without ENOTFOUND or ECONNREFUSED). */
function message(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? ((err.cause as { code?: string }).code ?? err.cause.message) : undefined;
  return cause ? `${err.message}: ${cause}` : err.message;
}

/**
 * Finds the embedding model, in order: EMBEDDING_MODEL_PATH, the hub model
 * EMBEDDING_MODEL (from the cache, else downloaded when the hub answers), the
 * served decoder's own mean-pooled hidden states. Leaves the host ready or
 * failed, and logs which source is live and why earlier ones were passed over.
 * Never throws.
 */
export async function loadEmbeddings(opts: EmbeddingLoadOptions): Promise<void> {
  const started = performance.now();
  let loaded: Loaded;
  try {
    loaded = await resolveSource(opts);
  } catch (err) {
    opts.host.failed(message(err));
    opts.log.error({ err }, 'embedding model unavailable: /v1/embeddings answers 503');
    return;
  }
  const info = { model: loaded.name, source: loaded.source, dimensions: loaded.model.dimensions, maxTokens: loaded.model.maxTokens };
  const seconds = (performance.now() - started) / 1000;
  opts.host.ready(new BatchingEmbedder(loaded.model, info, opts.limits, opts.observer), loaded.aliases, seconds);
  opts.log.info(
    { embedding: info, batching: opts.limits, ort_spinning: opts.spinning ?? false, load_seconds: Math.round(seconds * 1000) / 1000 },
    `embedding model ready: ${info.model} (${info.source}, ${info.dimensions} dimensions)`,
  );
}

async function resolveSource(opts: EmbeddingLoadOptions): Promise<Loaded> {
  if (opts.modelPath !== undefined) {
    // The operator named this model: if it does not load, say so rather than serve another.
    const model = await TransformersEncoder.load({ kind: 'dir', dir: opts.modelPath }, opts.threads, threading(opts));
    const name = path.basename(opts.modelPath);
    return { model, name, source: 'path', aliases: [opts.modelPath] };
  }
  if (opts.hubId) {
    const id = opts.hubId;
    const hub = await loadFromHub(opts, id).catch((err: unknown) => {
      opts.log.warn({ model: id, reason: message(err) }, `embedding model ${id} unavailable; falling back to the served decoder's mean-pooled hidden states`);
      return undefined;
    });
    if (hub) return { model: hub, name: id.split('/').pop() ?? id, source: 'hub', aliases: [id] };
  }
  const decoder = await opts.decoder;
  if (!decoder) throw new Error('no embedding source: EMBEDDING_MODEL_PATH is unset, the hub model is unavailable, and the served model did not load');
  const model = await DecoderMeanPool.load(decoder.dir, opts.threads, threading(opts)).catch((err: unknown) => {
    throw new Error(`no embedding source: EMBEDDING_MODEL_PATH is unset, the hub model is unavailable, and ${message(err)}`);
  });
  return { model, name: `${decoder.name}:mean-pool`, source: 'decoder', aliases: [decoder.name] };
}

/** From the hub cache if it is there (no network at all), else downloaded, but only after the hub has answered a probe. */
async function loadFromHub(opts: EmbeddingLoadOptions, id: string): Promise<PoolingModel> {
  const ref = { kind: 'hub' as const, id, cacheDir: opts.hubCacheDir };
  try {
    return await TransformersEncoder.load({ ...ref, localOnly: true }, opts.threads, threading(opts));
  } catch (err) {
    if (opts.hubOffline) throw new Error(`not in the hub cache ${opts.hubCacheDir} and HF_HUB_OFFLINE is set (${message(err)})`);
  }
  // transformers.js would otherwise wait on an unreachable hub for as long as the network lets it.
  const url = `${hfEnv.remoteHost}${hfEnv.remotePathTemplate.replaceAll('{model}', id).replaceAll('{revision}', 'main')}config.json`;
  try {
    const res = await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(HUB_PROBE_TIMEOUT_MS), redirect: 'follow' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
  } catch (err) {
    throw new Error(`the hub did not answer (${url}: ${message(err)})`);
  }
  return TransformersEncoder.load({ ...ref, localOnly: false }, opts.threads, threading(opts));
}
