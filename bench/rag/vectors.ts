/**
 * The HNSW libraries against exact search, on the same vectors: build time
 * (and the longest single add call, which is what would stall an event
 * loop), query latency, recall@10 against exact, and memory. Also the
 * production index classes (src/services/rag/vector-index.ts) at the same
 * sizes.
 *
 * Vectors: n x 384, L2-normalised, from a synthetic model with the shape of
 * sentence embeddings (a low intrinsic dimension: 200 cluster centres plus
 * a 32-dimensional random subspace, plus a little isotropic noise); queries
 * are perturbed data points, as a question is near its answer.
 */
import hnswlib from 'hnswlib-node';
import { ExactIndex } from '../../src/services/rag/exact-index.js';
import { HNSW_PARAMS } from '../../src/services/rag/vector-index.js';
import { round, summarize } from '../lib/stats.js';

export const DIMENSIONS = 384;

/** A seeded PRNG (mulberry32) and a normal deviate from it. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const gauss = () => Math.sqrt(-2 * Math.log(next() + 1e-12)) * Math.cos(2 * Math.PI * next());
  return { next, gauss };
}

function normalize(v: Float32Array, o = 0, d = v.length): void {
  let s = 0;
  for (let j = 0; j < d; j++) s += v[o + j]! * v[o + j]!;
  const inv = 1 / Math.sqrt(s || 1);
  for (let j = 0; j < d; j++) v[o + j]! *= inv;
}

/** n synthetic embedding-like vectors (see the module comment), row-major. */
export function syntheticVectors(n: number, d = DIMENSIONS, seed = 7): Float32Array {
  const r = rng(seed);
  const CENTRES = 200;
  const RANK = 32;
  const centres = Float32Array.from({ length: CENTRES * d }, () => r.gauss());
  const basis = Float32Array.from({ length: RANK * d }, () => r.gauss() / Math.sqrt(RANK));
  const out = new Float32Array(n * d);
  const z = new Float32Array(RANK);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(r.next() * CENTRES);
    for (let k = 0; k < RANK; k++) z[k] = r.gauss() * 1.5;
    const o = i * d;
    for (let j = 0; j < d; j++) {
      let x = centres[c * d + j]! * 0.6 + r.gauss() * 0.15;
      for (let k = 0; k < RANK; k++) x += basis[k * d + j]! * z[k]!;
      out[o + j] = x;
    }
    normalize(out, o, d);
  }
  return out;
}

/** `q` queries near random data points. */
export function syntheticQueries(data: Float32Array, q: number, d = DIMENSIONS, seed = 11): Float32Array[] {
  const r = rng(seed);
  const n = data.length / d;
  return Array.from({ length: q }, () => {
    const i = Math.floor(r.next() * n);
    const v = Float32Array.from({ length: d }, (_, j) => data[i * d + j]! + r.gauss() * 0.03);
    normalize(v);
    return v;
  });
}

const rss = () => process.memoryUsage().rss / 2 ** 20;

export interface VectorResult {
  n: number;
  dimensions: number;
  queries: number;
  exact: { p50_ms: number; p95_ms: number };
  libraries: Array<{
    name: string;
    params: Record<string, number>;
    build_s: number;
    longest_add_call_ms: number;
    query_p50_ms: number;
    query_p95_ms: number;
    recall_at_10: number;
    rss_growth_mb: number;
  }>;
}

/**
 * Measures exact search, usearch and hnswlib-node at n vectors. usearch is
 * loaded only here (the server uses hnswlib-node): without the package the
 * comparison reports hnswlib-node alone.
 */
export async function compareVectorIndexes(n: number, queries = 300, log: (s: string) => void = () => {}): Promise<VectorResult> {
  const d = DIMENSIONS;
  const K = 10;
  const data = syntheticVectors(n, d);
  const qs = syntheticQueries(data, queries, d);
  const exact = new ExactIndex(data, d);
  const exactTimes: number[] = [];
  const truth = qs.map((q) => {
    const t = performance.now();
    const hits = exact.search(q, K);
    exactTimes.push(performance.now() - t);
    return new Set(hits.map((h) => h.slot));
  });
  const ex = summarize(exactTimes);
  log(`  exact n=${n}: p50 ${round(ex.p50, 2)} ms, p95 ${round(ex.p95, 2)} ms`);
  const out: VectorResult = { n, dimensions: d, queries, exact: { p50_ms: round(ex.p50, 3), p95_ms: round(ex.p95, 3) }, libraries: [] };
  const BLOCK = 1000;
  const { m, efConstruction, efSearch } = HNSW_PARAMS;

  const usearch = await import('usearch').catch(() => null);
  if (!usearch) log('  usearch is not installed: comparing hnswlib-node with exact search only');
  else {
    const { Index: USearchIndex, MetricKind, ScalarKind } = usearch;
    const before = rss();
    const t0 = performance.now();
    const index = new USearchIndex({ dimensions: d, metric: MetricKind.IP, quantization: ScalarKind.F32, connectivity: m, expansion_add: efConstruction, expansion_search: efSearch, multi: false });
    let longest = 0;
    const keys = new BigUint64Array(n);
    for (let i = 0; i < n; i++) keys[i] = BigInt(i);
    for (let s = 0; s < n; s += BLOCK) {
      const t = performance.now();
      const e = Math.min(n, s + BLOCK);
      index.add(keys.subarray(s, e), data.subarray(s * d, e * d), 0);
      longest = Math.max(longest, performance.now() - t);
    }
    const build = (performance.now() - t0) / 1000;
    const times: number[] = [];
    let hit = 0;
    qs.forEach((q, i) => {
      const t = performance.now();
      const r = index.search(q, K, 1);
      times.push(performance.now() - t);
      for (const k of r.keys) if (truth[i]!.has(Number(k))) hit++;
    });
    const s = summarize(times);
    out.libraries.push({
      name: 'usearch',
      params: { connectivity: m, expansion_add: efConstruction, expansion_search: efSearch, threads: 0 },
      build_s: round(build, 2),
      longest_add_call_ms: round(longest, 1),
      query_p50_ms: round(s.p50, 3),
      query_p95_ms: round(s.p95, 3),
      recall_at_10: round(hit / (queries * K), 4),
      rss_growth_mb: round(rss() - before, 1),
    });
    log(`  usearch: ${JSON.stringify(out.libraries.at(-1))}`);
  }
  {
    const before = rss();
    const t0 = performance.now();
    const index = new hnswlib.HierarchicalNSW('ip', d);
    index.initIndex({ maxElements: n, m, efConstruction, randomSeed: 100 });
    let longest = 0;
    for (let s = 0; s < n; s += BLOCK) {
      const t = performance.now();
      for (let i = s; i < Math.min(n, s + BLOCK); i++) index.addPoint(Array.from(data.subarray(i * d, (i + 1) * d)), i);
      longest = Math.max(longest, performance.now() - t);
    }
    const build = (performance.now() - t0) / 1000;
    index.setEf(efSearch);
    const times: number[] = [];
    let hit = 0;
    qs.forEach((q, i) => {
      const t = performance.now();
      const r = index.searchKnn(Array.from(q), K);
      times.push(performance.now() - t);
      for (const k of r.neighbors) if (truth[i]!.has(k)) hit++;
    });
    const s = summarize(times);
    out.libraries.push({
      name: 'hnswlib-node',
      params: { M: m, efConstruction, ef: efSearch, threads: 1 },
      build_s: round(build, 2),
      longest_add_call_ms: round(longest, 1),
      query_p50_ms: round(s.p50, 3),
      query_p95_ms: round(s.p95, 3),
      recall_at_10: round(hit / (queries * K), 4),
      rss_growth_mb: round(rss() - before, 1),
    });
    log(`  hnswlib-node: ${JSON.stringify(out.libraries.at(-1))}`);
  }
  return out;
}
