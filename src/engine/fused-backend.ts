import type { BatchBackend } from './batch-backend.js';
import { KvBatch } from './kv-batch.js';
import type { DecoderConfig } from './model-config.js';

/**
 * The batch for this project's own fused graph (onnx/model_fused.onnx): one
 * preallocated KV buffer per layer shared by all rows, each row with its own
 * length, so rows of different lengths need no padding and joining or
 * leaving the batch copies only the moving row's cache (see KvBatch).
 */
export class FusedBackend implements BatchBackend {
  private constructor(private readonly batch: KvBatch) {}

  static async create(onnxFile: string, config: DecoderConfig, maxBatch: number, threads: number, spinning = false): Promise<FusedBackend> {
    const batch = await KvBatch.create(
      onnxFile,
      {
        dim: config.hiddenSize,
        hiddenDim: 0,
        nLayers: config.layers,
        nHeads: config.attentionHeads,
        nKvHeads: config.kvHeads,
        vocabSize: config.vocabSize,
        maxSeqLen: config.contextWindow,
        ropeTheta: 0,
        normEps: 0,
      },
      {
        maxBatch,
        sessionOptions: {
          executionProviders: ['cpu'],
          graphOptimizationLevel: 'all',
          intraOpNumThreads: threads,
          interOpNumThreads: 1,
          extra: { session: { intra_op: { allow_spinning: spinning ? '1' : '0' } } },
        },
      },
    );
    return new FusedBackend(batch);
  }

  get capacity(): number {
    return this.batch.capacity;
  }

  get size(): number {
    return this.batch.size;
  }

  append(prompts: readonly (readonly number[])[]): Promise<Float32Array[]> {
    return this.batch.append(prompts.map((p) => [...p]));
  }

  /** Runs each stretch of consecutive rows that have a token as one run (rows being prefilled are skipped). */
  async step(tokens: readonly (number | null)[]): Promise<(Float32Array | null)[]> {
    if (!tokens.includes(null)) return this.batch.step(tokens as number[]);
    const out: (Float32Array | null)[] = new Array<Float32Array | null>(tokens.length).fill(null);
    let r = 0;
    while (r < tokens.length) {
      if (tokens[r] === null) {
        r++;
        continue;
      }
      const first = r;
      const run: number[] = [];
      while (r < tokens.length && tokens[r] !== null) run.push(tokens[r++]!);
      const logits = await this.batch.stepRange(first, run);
      logits.forEach((l, i) => (out[first + i] = l));
    }
    return out;
  }

  extend(row: number, tokens: readonly number[]): Promise<Float32Array> {
    return this.batch.extend(row, [...tokens]);
  }

  remove(rows: readonly number[]): number[] {
    const mapping = this.batch.remove([...rows]);
    const order = new Array<number>(this.batch.size);
    mapping.forEach((to, from) => {
      if (to >= 0) order[to] = from;
    });
    return order;
  }

  reset(): void {
    const all = Array.from({ length: this.batch.size }, (_, i) => i);
    if (all.length > 0) this.batch.remove(all);
  }

  async close(): Promise<void> {
    await this.batch.dispose();
  }
}
