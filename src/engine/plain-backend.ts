import type { BatchBackend } from './batch-backend.js';
import type { ModelRunner } from './runner.js';
import * as ort from 'onnxruntime-node';

/**
 * The batch for a plain decoder graph (past_key_values in, present out), as
 * text-generation-inference's causal-LM batch does it: every row's cache is
 * left-padded to the batch's length L, with the attention mask hiding the
 * padding and position ids counting real tokens only. New rows are prefilled
 * together, then their caches are padded and concatenated into the batch;
 * dropped rows are filtered out and padding no row needs is trimmed.
 * Works with any transformers.js decoder export; the fused backend is faster.
 */
export class PlainBackend implements BatchBackend {
  /** Per layer and K/V: [size, kvHeads, L, headDim]. */
  private cache: Float32Array[] = [];
  /** Real tokens in each row (its cache holds them in the last `lengths[r]` of L positions). */
  private lengths: number[] = [];
  private maxLen = 0;
  private readonly kvHeads: number;
  private readonly headDim: number;

  constructor(
    private readonly runner: ModelRunner,
    readonly capacity: number,
    private readonly padTokenId = 0,
  ) {
    ({ kvHeads: this.kvHeads, headDim: this.headDim } = runner.config);
  }

  get size(): number {
    return this.lengths.length;
  }

  async append(prompts: readonly (readonly number[])[]): Promise<Float32Array[]> {
    const k = prompts.length;
    const s = Math.max(...prompts.map((p) => p.length));
    const inputIds = new BigInt64Array(k * s).fill(BigInt(this.padTokenId));
    const mask = new BigInt64Array(k * s);
    const positions = new BigInt64Array(k * s);
    prompts.forEach((p, b) => {
      const pad = s - p.length;
      for (let i = 0; i < p.length; i++) {
        inputIds[b * s + pad + i] = BigInt(p[i]!);
        mask[b * s + pad + i] = 1n;
        positions[b * s + pad + i] = BigInt(i);
      }
    });
    const out = await this.runner.forward({ batch: k, seq: s, inputIds, attentionMask: mask, positionIds: positions, past: null });
    this.concat(out.present, prompts.map((p) => p.length), s);
    return out.lastLogits;
  }

  async step(tokens: readonly (number | null)[]): Promise<(Float32Array | null)[]> {
    if (tokens.some((t) => t === null)) throw new Error('the plain backend prefills prompts whole: no row can be skipped');
    const n = this.size;
    const L = this.maxLen;
    const mask = new BigInt64Array(n * (L + 1));
    const positions = new BigInt64Array(n);
    for (let r = 0; r < n; r++) {
      const len = this.lengths[r]!;
      mask.fill(1n, r * (L + 1) + (L - len), (r + 1) * (L + 1));
      positions[r] = BigInt(len);
    }
    const dims = [n, this.kvHeads, L, this.headDim];
    const past = this.cache.map((data) => new ort.Tensor('float32', data, dims));
    const out = await this.runner.forward({
      batch: n,
      seq: 1,
      inputIds: BigInt64Array.from(tokens as number[], BigInt),
      attentionMask: mask,
      positionIds: positions,
      past,
    });
    this.cache = out.present.map((t) => t.data as Float32Array);
    this.maxLen = L + 1;
    for (let r = 0; r < n; r++) this.lengths[r]! += 1;
    return out.lastLogits;
  }

  remove(rows: readonly number[]): number[] {
    const drop = new Set(rows);
    const keep = this.lengths.map((_, i) => i).filter((i) => !drop.has(i));
    const newLen = keep.reduce((m, r) => Math.max(m, this.lengths[r]!), 0);
    const oldL = this.maxLen;
    const rowSize = (L: number) => this.kvHeads * L * this.headDim;
    this.cache = this.cache.map((data) => {
      const next = new Float32Array(keep.length * rowSize(newLen));
      keep.forEach((r, i) => this.copyRow(data, r, oldL, next, i, newLen));
      return next;
    });
    this.lengths = keep.map((r) => this.lengths[r]!);
    this.maxLen = newLen;
    return keep;
  }

  reset(): void {
    this.cache = [];
    this.lengths = [];
    this.maxLen = 0;
  }

  async close(): Promise<void> {
    await this.runner.release();
  }

  /** Joins freshly prefilled rows (left-padded to `s`) to the batch, padding whichever side is shorter. */
  private concat(present: ort.Tensor[], lengths: number[], s: number): void {
    const n = this.size;
    const k = lengths.length;
    const newL = Math.max(this.maxLen, s);
    const rowSize = this.kvHeads * newL * this.headDim;
    this.cache = present.map((t, i) => {
      const next = new Float32Array((n + k) * rowSize);
      const old = this.cache[i];
      for (let r = 0; r < n; r++) this.copyRow(old!, r, this.maxLen, next, r, newL);
      const fresh = t.data as Float32Array;
      for (let r = 0; r < k; r++) this.copyRow(fresh, r, s, next, n + r, newL);
      return next;
    });
    this.lengths.push(...lengths);
    this.maxLen = newL;
  }

  /**
   * Copies row `from` of a [*, kv, fromL, hd] cache into row `to` of a
   * [*, kv, toL, hd] one, right-aligned: the last min(fromL, toL) positions,
   * which hold every real token of the row.
   */
  private copyRow(src: Float32Array, from: number, fromL: number, dst: Float32Array, to: number, toL: number): void {
    const hd = this.headDim;
    const keepL = Math.min(fromL, toL);
    for (let h = 0; h < this.kvHeads; h++) {
      const srcStart = ((from * this.kvHeads + h) * fromL + (fromL - keepL)) * hd;
      const dstStart = ((to * this.kvHeads + h) * toL + (toL - keepL)) * hd;
      dst.set(src.subarray(srcStart, srcStart + keepL * hd), dstStart);
    }
  }
}
