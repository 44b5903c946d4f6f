import * as ort from 'onnxruntime-node';
import { FUSED_INPUTS, newKeyName, newValueName } from './onnx-graph-fused.js';
import { pastKeyName, pastValueName, type LlamaConfig } from './onnx-graph.js';

/** Options of {@link KvBatch.create}. */
export interface KvBatchOptions {
  /** Most rows held at once. */
  maxBatch: number;
  /**
   * Positions reserved per row when the buffers are first allocated
   * (default 256, at most the model's context). Each decode step reads every
   * row's whole reservation, so it follows the longest row: it grows (to a
   * quarter more than needed, in multiples of 64) when a row needs more, and
   * shrinks back (not below this) when the longest row leaves.
   */
  initialCapacity?: number;
  /** ONNX Runtime session options (defaults: graphOptimizationLevel 'all'). */
  sessionOptions?: ort.InferenceSession.SessionOptions;
}

const i64 = (values: ArrayLike<number>, dims: number[]): ort.Tensor => {
  const data = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) data[i] = BigInt(values[i]!);
  return new ort.Tensor('int64', data, dims);
};

/**
 * A batch of token sequences decoded together over one session of the fused
 * graph ({@link buildLlamaOnnxFused}, 'external' attention), owning their KV
 * cache: per layer, one key and one value buffer `[maxBatch, kvHeads,
 * capacity, headDim]` (Float32Array, allocated once, regrown only when a row
 * outgrows the capacity), plus each row's length.
 *
 * Live rows are always 0..size-1. {@link append} adds rows after them,
 * {@link remove} compacts (moves the last rows into the holes and returns the
 * old-to-new index mapping), so the caller maps its requests to rows and
 * updates that map after each removal. Each run feeds a view of the rows it
 * touches; the graph reads the cache in place and returns only the new
 * tokens' keys and values, which are copied into the buffers here.
 *
 * The logits returned are views into the run's `logits` output, valid
 * until the caller drops them. No logits buffer is preallocated: with
 * onnxruntime-node 1.30 a preallocated fetch is filled in place and then
 * copied into a fresh buffer anyway (see onnx-graph-fused.ts), so it would
 * only add a copy.
 *
 * Calls must not overlap: await each before the next.
 */
export class KvBatch {
  private readonly headDim: number;
  private readonly lengths: number[] = [];
  private keys: Float32Array[];
  private values: Float32Array[];
  private stride: number;
  private running = false;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly config: LlamaConfig,
    readonly capacity: number,
    private readonly initialStride: number,
  ) {
    this.headDim = config.dim / config.nHeads;
    this.stride = initialStride;
    const size = capacity * config.nKvHeads * initialStride * this.headDim;
    this.keys = Array.from({ length: config.nLayers }, () => new Float32Array(size));
    this.values = Array.from({ length: config.nLayers }, () => new Float32Array(size));
  }

  /** Creates the session for `model` (the fused graph's bytes or file path) and allocates the buffers. */
  static async create(model: Uint8Array | string, config: LlamaConfig, options: KvBatchOptions): Promise<KvBatch> {
    if (!Number.isInteger(options.maxBatch) || options.maxBatch < 1) throw new Error(`maxBatch must be a positive integer, got ${options.maxBatch}`);
    const sessionOptions: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', ...options.sessionOptions };
    const session =
      typeof model === 'string' ? await ort.InferenceSession.create(model, sessionOptions) : await ort.InferenceSession.create(model, sessionOptions);
    if (!session.inputNames.includes(FUSED_INPUTS.pastLengths)) {
      await session.release();
      throw new Error(`model is not a fused graph with external attention (no ${FUSED_INPUTS.pastLengths} input)`);
    }
    const stride = Math.min(config.maxSeqLen, Math.max(1, options.initialCapacity ?? 256));
    return new KvBatch(session, config, options.maxBatch, stride);
  }

  /** Number of live rows (0..size-1). */
  get size(): number {
    return this.lengths.length;
  }

  /** Positions currently reserved per row (grows on demand up to the model's context). */
  get reserved(): number {
    return this.stride;
  }

  /** Tokens cached in `row`. */
  length(row: number): number {
    const len = this.lengths[row];
    if (len === undefined) throw new RangeError(`row ${row} is not live (size ${this.size})`);
    return len;
  }

  /**
   * Prefills `prompts` as new rows size..size+k-1 in one run (right-padded
   * to the longest) and returns each new row's last-position logits [vocab].
   */
  async append(prompts: number[][]): Promise<Float32Array[]> {
    if (prompts.length === 0) return [];
    if (this.size + prompts.length > this.capacity) {
      throw new RangeError(`cannot add ${prompts.length} rows to ${this.size} (capacity ${this.capacity})`);
    }
    for (const p of prompts) this.checkLength(p.length, 0);
    const first = this.size;
    for (const p of prompts) this.lengths.push(0);
    try {
      return await this.run(first, prompts);
    } catch (err) {
      this.lengths.length = first;
      throw err;
    }
  }

  /**
   * Appends `tokens` to existing `row` (a chunk of a long prompt, or several
   * known tokens at once) and returns that row's new last-position logits.
   */
  async extend(row: number, tokens: number[]): Promise<Float32Array> {
    this.checkLength(tokens.length, this.length(row));
    const [logits] = await this.run(row, [tokens]);
    return logits!;
  }

  /** One decode step: `tokens[r]` is appended to row r for every live row; returns each row's logits [vocab]. */
  async step(tokens: number[]): Promise<Float32Array[]> {
    if (tokens.length !== this.size) throw new RangeError(`step needs one token per row: ${tokens.length} tokens for ${this.size} rows`);
    return this.stepRange(0, tokens);
  }

  /** One decode step for rows first..first+tokens.length-1 only (the others are left as they are). */
  async stepRange(first: number, tokens: number[]): Promise<Float32Array[]> {
    if (tokens.length === 0) return [];
    if (first < 0 || first + tokens.length > this.size) throw new RangeError(`rows ${first}..${first + tokens.length - 1} are not all live (size ${this.size})`);
    for (let r = 0; r < tokens.length; r++) this.checkLength(1, this.lengths[first + r]!);
    return this.run(
      first,
      tokens.map((t) => [t]),
    );
  }

  /**
   * Drops `rows` and compacts: each hole below the new size is filled by
   * moving the highest surviving row into it (only its cached positions are
   * copied). Returns `mapping` with `mapping[old] = new index` (-1 for
   * dropped rows), over the old size.
   */
  remove(rows: number[]): number[] {
    this.assertIdle();
    const oldSize = this.size;
    const drop = new Set(rows);
    for (const r of drop) if (!(r >= 0 && r < oldSize && Number.isInteger(r))) throw new RangeError(`row ${r} is not live (size ${oldSize})`);
    const mapping = Array.from({ length: oldSize }, (_, i) => (drop.has(i) ? -1 : i));
    const newSize = oldSize - drop.size;
    let src = oldSize - 1;
    for (let hole = 0; hole < newSize; hole++) {
      if (!drop.has(hole)) continue;
      while (drop.has(src)) src--;
      this.moveRow(src, hole);
      this.lengths[hole] = this.lengths[src]!;
      mapping[src] = hole;
      src--;
    }
    this.lengths.length = newSize;
    this.maybeShrink();
    return mapping;
  }

  /** Forgets `row`'s tokens beyond the first `length` (e.g. to retry from an earlier point). */
  rewind(row: number, length: number): void {
    this.assertIdle();
    if (!(Number.isInteger(length) && length >= 0 && length <= this.length(row))) throw new RangeError(`cannot rewind row ${row} to ${length}`);
    this.lengths[row] = length;
  }

  /** Releases the session. */
  async dispose(): Promise<void> {
    await this.session.release();
  }

  private checkLength(adding: number, current: number): void {
    if (adding < 1) throw new RangeError('a row needs at least one new token');
    if (current + adding > this.config.maxSeqLen) {
      throw new RangeError(`row would hold ${current + adding} tokens, beyond the model's context of ${this.config.maxSeqLen}`);
    }
  }

  private assertIdle(): void {
    if (this.running) throw new Error('KvBatch: a run is in progress');
  }

  /**
   * Makes every row's reservation hold at least `need` positions, with some
   * headroom so that decoding does not regrow at every step: a quarter more,
   * rounded up to a multiple of 64, at most the model's context.
   */
  private reserve(need: number): void {
    if (need > this.stride) this.relayout(Math.min(this.config.maxSeqLen, Math.ceil((need * 1.25) / 64) * 64));
  }

  /** Shrinks the reservation when the longest live row uses less than half of it (never below the initial one). */
  private maybeShrink(): void {
    const longest = Math.max(0, ...this.lengths);
    const target = Math.max(this.initialStride, Math.ceil((longest * 1.25) / 64) * 64);
    if (longest * 2 < this.stride && target < this.stride) this.relayout(target);
  }

  /** Moves every row's cached positions into buffers of row stride `stride`. */
  private relayout(stride: number): void {
    const { nKvHeads } = this.config;
    const hd = this.headDim;
    const move = (old: Float32Array): Float32Array => {
      const next = new Float32Array(this.capacity * nKvHeads * stride * hd);
      for (let r = 0; r < this.size; r++) {
        const used = this.lengths[r]! * hd;
        for (let h = 0; h < nKvHeads; h++) {
          const from = (r * nKvHeads + h) * this.stride * hd;
          next.set(old.subarray(from, from + used), (r * nKvHeads + h) * stride * hd);
        }
      }
      return next;
    };
    this.keys = this.keys.map(move);
    this.values = this.values.map(move);
    this.stride = stride;
  }

  private moveRow(from: number, to: number): void {
    const { nKvHeads } = this.config;
    const hd = this.headDim;
    const used = this.lengths[from]! * hd;
    for (const buf of [...this.keys, ...this.values]) {
      for (let h = 0; h < nKvHeads; h++) {
        const src = (from * nKvHeads + h) * this.stride * hd;
        buf.copyWithin((to * nKvHeads + h) * this.stride * hd, src, src + used);
      }
    }
  }

  /** Runs rows first..first+chunks.length-1, appending chunks[i] to row first+i; returns last-position logits per row. */
  private async run(first: number, chunks: number[][]): Promise<Float32Array[]> {
    this.assertIdle();
    const n = chunks.length;
    const seq = Math.max(...chunks.map((ch) => ch.length));
    const past = this.lengths.slice(first, first + n);
    this.reserve(Math.max(...chunks.map((ch, i) => past[i]! + ch.length)));
    const { nKvHeads, nLayers, vocabSize } = this.config;
    const hd = this.headDim;

    const ids = new Array<number>(n * seq).fill(0);
    const index = new Array<number>(n);
    chunks.forEach((ch, i) => {
      for (let t = 0; t < ch.length; t++) ids[i * seq + t] = ch[t]!;
      index[i] = i * seq + ch.length - 1;
    });
    const feeds: Record<string, ort.Tensor> = {
      [FUSED_INPUTS.inputIds]: i64(ids, [n, seq]),
      [FUSED_INPUTS.pastLengths]: i64(past, [n]),
      [FUSED_INPUTS.logitsIndex]: i64(index, [n]),
    };
    // Rows with nothing cached (a fresh prefill) need no cache view: a
    // one-position dummy keeps the attention's cache part trivially small.
    const fresh = past.every((p) => p === 0);
    const view = fresh ? 1 : this.stride;
    const rowFloats = nKvHeads * this.stride * hd;
    const dummy = fresh ? new Float32Array(n * nKvHeads * hd) : undefined;
    for (let l = 0; l < nLayers; l++) {
      const k = dummy ?? this.keys[l]!.subarray(first * rowFloats, (first + n) * rowFloats);
      const v = dummy ?? this.values[l]!.subarray(first * rowFloats, (first + n) * rowFloats);
      feeds[pastKeyName(l)] = new ort.Tensor('float32', k, [n, nKvHeads, view, hd]);
      feeds[pastValueName(l)] = new ort.Tensor('float32', v, [n, nKvHeads, view, hd]);
    }

    this.running = true;
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await this.session.run(feeds);
    } finally {
      this.running = false;
    }

    // Store the new keys/values ([n, kv, seq, hd]) at each row's next positions.
    for (let l = 0; l < nLayers; l++) {
      for (const [name, buf] of [
        [newKeyName(l), this.keys[l]!],
        [newValueName(l), this.values[l]!],
      ] as const) {
        const data = out[name]!.data as Float32Array;
        for (let i = 0; i < n; i++) {
          const count = chunks[i]!.length * hd;
          for (let h = 0; h < nKvHeads; h++) {
            const src = (i * nKvHeads + h) * seq * hd;
            buf.set(data.subarray(src, src + count), ((first + i) * nKvHeads + h) * this.stride * hd + past[i]! * hd);
          }
        }
      }
    }
    for (let i = 0; i < n; i++) this.lengths[first + i] = past[i]! + chunks[i]!.length;

    const logits = out.logits!.data as Float32Array;
    return Array.from({ length: n }, (_, i) => logits.subarray(i * vocabSize, (i + 1) * vocabSize));
  }
}
