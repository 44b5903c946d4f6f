import { describe, expect, it } from 'vitest';
import { EXACT_MAX_VECTORS, HnswGraph, sharedMatrix, VectorIndex } from '../../src/services/rag/vector-index.js';

/** n clustered unit vectors of d dimensions (seeded), in a shared matrix. */
function vectors(n: number, d: number, seed = 1): Float32Array {
  let a = seed;
  const rand = () => {
    a = (a * 1664525 + 1013904223) >>> 0;
    return a / 2 ** 32 - 0.5;
  };
  const centres = Array.from({ length: 50 }, () => Array.from({ length: d }, rand));
  const m = sharedMatrix(n, d);
  for (let i = 0; i < n; i++) {
    const c = centres[i % 50]!;
    let norm = 0;
    for (let j = 0; j < d; j++) {
      const x = c[j]! + rand() * 0.6;
      m[i * d + j] = x;
      norm += x * x;
    }
    for (let j = 0; j < d; j++) m[i * d + j]! /= Math.sqrt(norm);
  }
  return m;
}

describe('VectorIndex', () => {
  it('is exact below the threshold, and answers with chunk keys', () => {
    const d = 8;
    const m = vectors(500, d);
    const keys = Float64Array.from({ length: 500 }, (_, i) => 1000 + i);
    const index = new VectorIndex(m, d, keys);
    expect(index.wantsGraph).toBe(false);
    expect(index.method).toBe('exact');
    const q = m.slice(7 * d, 8 * d);
    const hits = index.search(q, 5);
    expect(hits[0]).toEqual({ key: 1007, score: expect.closeTo(1, 5) });
    expect(index.search(q, 5, { allow: (slot) => slot % 2 === 0, allowed: 250 }).every((h) => (h.key - 1000) % 2 === 0)).toBe(true);
    expect(index.search(q, 5, { allow: () => false, allowed: 0 })).toEqual([]);
    expect(() => index.search(Float32Array.from([1]), 1)).toThrow(RangeError);
  });

  it('builds an HNSW graph in a worker above the threshold, with recall@10 close to exact, filters included', async () => {
    const d = 16;
    const n = EXACT_MAX_VECTORS + 500;
    const m = vectors(n, d, 7);
    const index = new VectorIndex(m, d, Float64Array.from({ length: n }, (_, i) => i));
    expect(index.wantsGraph).toBe(true);
    const queries = Array.from({ length: 50 }, (_, i) => m.slice(i * 397 * d, (i * 397 + 1) * d));
    const exact = queries.map((q) => index.search(q, 10).map((h) => h.key));
    await index.buildGraph();
    expect(index.method).toBe('hnsw');
    let found = 0;
    queries.forEach((q, i) => {
      const got = new Set(index.search(q, 10).map((h) => h.key));
      found += exact[i]!.filter((k) => got.has(k)).length;
    });
    expect(found / (queries.length * 10)).toBeGreaterThan(0.95);
    // A wide filter goes through the graph's own label filter; a narrow one is exact over its rows.
    const wide = index.search(queries[0]!, 10, { allow: (slot) => slot % 2 === 1, allowed: Math.floor(n / 2) });
    expect(wide).toHaveLength(10);
    expect(wide.every((h) => h.key % 2 === 1)).toBe(true);
    const narrow = index.search(queries[0]!, 10, { allow: (slot) => slot < 30, allowed: 30 });
    expect(narrow.every((h) => h.key < 30)).toBe(true);
  });

  it('refuses a graph build over memory a worker cannot share, and stops when aborted', async () => {
    await expect(HnswGraph.build(new Float32Array(16), 4)).rejects.toThrow(/SharedArrayBuffer/);
    const controller = new AbortController();
    const building = HnswGraph.build(vectors(30_000, 32), 32, controller.signal);
    controller.abort();
    await expect(building).rejects.toThrow(/aborted/);
  });
});
