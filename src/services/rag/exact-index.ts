import { TopK } from './top-k.js';

/** A search hit: the row's slot (its position in the index) and its similarity. */
export interface VectorHit {
  slot: number;
  score: number;
}

/**
 * Exact nearest neighbours by inner product over a dense row-major matrix
 * (cosine similarity, since stored and query vectors are L2-normalised).
 * Every search reads every row once: about 2 x n x d floating-point
 * operations, which is the price and the whole of the method.
 */
export class ExactIndex {
  readonly size: number;

  constructor(
    /** n x dimensions, row-major. */
    readonly matrix: Float32Array,
    readonly dimensions: number,
  ) {
    if (matrix.length % dimensions !== 0) throw new RangeError('matrix length is not a multiple of dimensions');
    this.size = matrix.length / dimensions;
  }

  /** The row `slot` (a view, not a copy). */
  row(slot: number): Float32Array {
    return this.matrix.subarray(slot * this.dimensions, (slot + 1) * this.dimensions);
  }

  /** The k rows most similar to `query`, best first; only rows `allow` admits, when given. */
  search(query: Float32Array, k: number, allow?: (slot: number) => boolean): VectorHit[] {
    if (query.length !== this.dimensions) throw new RangeError(`query has ${query.length} dimensions, the index ${this.dimensions}`);
    const top = new TopK(Math.min(k, this.size));
    const m = this.matrix;
    const d = this.dimensions;
    const d4 = d - (d % 4);
    for (let slot = 0, o = 0; slot < this.size; slot++, o += d) {
      if (allow && !allow(slot)) continue;
      // Four accumulators: independent chains the JIT can keep in registers.
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let j = 0;
      for (; j < d4; j += 4) {
        s0 += m[o + j]! * query[j]!;
        s1 += m[o + j + 1]! * query[j + 1]!;
        s2 += m[o + j + 2]! * query[j + 2]!;
        s3 += m[o + j + 3]! * query[j + 3]!;
      }
      for (; j < d; j++) s0 += m[o + j]! * query[j]!;
      const score = s0 + s1 + s2 + s3;
      if (score > top.threshold) top.push(slot, score);
    }
    return top.sorted();
  }
}
