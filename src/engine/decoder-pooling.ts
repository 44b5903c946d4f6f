import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { AutoTokenizer } from '@huggingface/transformers';
import { meanPool, poolingSessionOptions, SpecialsTokenizer, type PoolingModel, type PoolingThreading } from './encoder.js';
import { findOnnxFile, readDecoderConfig, type DecoderConfig } from './model-config.js';
import { LAST_HIDDEN_STATE } from './onnx-graph.js';
import { pruneToOutputs } from './onnx-prune.js';

/**
 * Embeddings from the served decoder itself, for a machine with no encoder
 * (llama.cpp's `--embeddings --pooling mean`): the plain graph's
 * `last_hidden_state` (after the final norm) averaged over the prompt's
 * tokens, BOS included. Its own ONNX Runtime session on the plain graph
 * file, cut down to that output (no LM head, no cache outputs) and fed an
 * empty past, so the chat scheduler's sessions and caches are never touched;
 * the cost is a second copy of the weights in memory (the LM head's too when
 * it is not tied) and, when both run at once, the two sessions sharing the
 * cores. Rows are right-padded:
 * causal attention keeps every real token blind to the padding after it.
 * Only graphs this project builds have the output (an imported llama2.c
 * checkpoint or a random preset); other decoders cannot serve embeddings.
 */
export class DecoderMeanPool implements PoolingModel {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly tokenizer: SpecialsTokenizer,
    private readonly config: DecoderConfig,
    private readonly hasPositionIds: boolean,
  ) {}

  get dimensions(): number {
    return this.config.hiddenSize;
  }

  get maxTokens(): number {
    return this.config.contextWindow;
  }

  static async load(dir: string, threads: number, threading: PoolingThreading = {}): Promise<DecoderMeanPool> {
    const config = readDecoderConfig(dir);
    const file = findOnnxFile(dir);
    let graph: Uint8Array;
    try {
      graph = pruneToOutputs(fs.readFileSync(file), [LAST_HIDDEN_STATE]);
    } catch (err) {
      throw new Error(
        `${file} cannot serve embeddings (${err instanceof Error ? err.message : String(err)}): only decoder graphs this server ` +
          `builds (llama2.c imports, random presets) have the ${LAST_HIDDEN_STATE} output`,
      );
    }
    const session = await ort.InferenceSession.create(graph, poolingSessionOptions(threads, threading));
    const tokenizer = await AutoTokenizer.from_pretrained(path.resolve(dir), { local_files_only: true });
    return new DecoderMeanPool(session, new SpecialsTokenizer(tokenizer), config, session.inputNames.includes('position_ids'));
  }

  tokenize(text: string, truncateTo?: number): number[] {
    return this.tokenizer.tokenize(text, truncateTo);
  }

  async embed(rows: readonly (readonly number[])[]): Promise<Float32Array[]> {
    const n = rows.length;
    const seq = Math.max(...rows.map((r) => r.length));
    const ids = new BigInt64Array(n * seq);
    const mask = new BigInt64Array(n * seq);
    const positions = new BigInt64Array(n * seq);
    rows.forEach((row, r) => {
      for (let t = 0; t < row.length; t++) {
        ids[r * seq + t] = BigInt(row[t]!);
        mask[r * seq + t] = 1n;
        positions[r * seq + t] = BigInt(t);
      }
    });
    const { layers, kvHeads, headDim } = this.config;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [n, seq]),
      attention_mask: new ort.Tensor('int64', mask, [n, seq]),
    };
    if (this.hasPositionIds) feeds.position_ids = new ort.Tensor('int64', positions, [n, seq]);
    const empty = new ort.Tensor('float32', new Float32Array(0), [n, kvHeads, 0, headDim]);
    for (let i = 0; i < layers; i++) {
      feeds[`past_key_values.${i}.key`] = empty;
      feeds[`past_key_values.${i}.value`] = empty;
    }
    const out = await this.session.run(feeds);
    const hidden = out[LAST_HIDDEN_STATE]!;
    return meanPool(hidden.data as Float32Array, seq, this.config.hiddenSize, rows.map((r) => r.length));
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
