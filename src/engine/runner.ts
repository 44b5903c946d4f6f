import * as ort from 'onnxruntime-node';
import type { DecoderConfig } from './model-config.js';
import { LAST_HIDDEN_STATE } from './onnx-graph.js';

/** One sequence's KV cache: for each layer, key and value tensors [batch, kv_heads, len, head_dim]. */
export type KvCache = ort.Tensor[];

export interface ForwardInput {
  batch: number;
  seq: number;
  /** [batch, seq] token ids. */
  inputIds: BigInt64Array;
  /** [batch, past + seq]. */
  attentionMask: BigInt64Array;
  /** [batch, seq]. */
  positionIds: BigInt64Array;
  /** Empty for a first pass. */
  past: KvCache | null;
}

export interface ForwardOutput {
  /** Logits of the last position of each row: [batch, vocab]. */
  lastLogits: Float32Array[];
  present: KvCache;
}

/**
 * The ONNX Runtime session of a decoder model, fed with the inputs that
 * transformers.js exports use (input_ids, attention_mask, position_ids,
 * past_key_values.{i}.key|value; logits and present.{i}.key|value out).
 */
export class ModelRunner {
  private readonly hasPositionIds: boolean;
  private readonly hasCacheBranch: boolean;
  /** Every output but the hidden states our graphs add for embeddings: generation never reads them, so they are not copied out. */
  private readonly fetches: string[];

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly config: DecoderConfig,
  ) {
    this.hasPositionIds = session.inputNames.includes('position_ids');
    this.hasCacheBranch = session.inputNames.includes('use_cache_branch');
    this.fetches = session.outputNames.filter((n) => n !== LAST_HIDDEN_STATE);
    for (let i = 0; i < config.layers; i++) {
      if (!session.inputNames.includes(`past_key_values.${i}.key`)) {
        throw new Error(`ONNX model has no KV-cache input past_key_values.${i}.key; a model exported with past is required`);
      }
    }
  }

  static async create(onnxFile: string, config: DecoderConfig, threads: number, spinning = false): Promise<ModelRunner> {
    const session = await ort.InferenceSession.create(onnxFile, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      extra: { session: { intra_op: { allow_spinning: spinning ? '1' : '0' } } },
    });
    return new ModelRunner(session, config);
  }

  /** A zero-length cache for `batch` rows. */
  emptyCache(batch: number): KvCache {
    const { layers, kvHeads, headDim } = this.config;
    const out: KvCache = [];
    for (let i = 0; i < 2 * layers; i++) {
      out.push(new ort.Tensor('float32', new Float32Array(0), [batch, kvHeads, 0, headDim]));
    }
    return out;
  }

  async forward(input: ForwardInput): Promise<ForwardOutput> {
    const { batch, seq } = input;
    const past = input.past ?? this.emptyCache(batch);
    const pastLen = past[0]!.dims[2]!;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', input.inputIds, [batch, seq]),
      attention_mask: new ort.Tensor('int64', input.attentionMask, [batch, pastLen + seq]),
    };
    if (this.hasPositionIds) feeds.position_ids = new ort.Tensor('int64', input.positionIds, [batch, seq]);
    if (this.hasCacheBranch) feeds.use_cache_branch = new ort.Tensor('bool', [pastLen > 0], [1]);
    for (let i = 0; i < this.config.layers; i++) {
      feeds[`past_key_values.${i}.key`] = past[2 * i]!;
      feeds[`past_key_values.${i}.value`] = past[2 * i + 1]!;
    }
    const out = await this.session.run(feeds, this.fetches);
    const logits = out.logits!;
    const vocab = logits.dims[2]!;
    const data = logits.data as Float32Array;
    const lastLogits: Float32Array[] = [];
    for (let b = 0; b < batch; b++) {
      const start = (b * seq + seq - 1) * vocab;
      // A copy, so sampling may modify it and the big logits buffer can be freed.
      lastLogits.push(data.slice(start, start + vocab));
    }
    const present: KvCache = [];
    for (let i = 0; i < this.config.layers; i++) {
      present.push(out[`present.${i}.key`]!, out[`present.${i}.value`]!);
    }
    return { lastLogits, present };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
