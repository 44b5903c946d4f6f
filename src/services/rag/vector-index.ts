/**
 * Dense search over one index's vectors, held in memory. Exact (every row's
 * inner product) up to EXACT_MAX_VECTORS rows; above that an HNSW graph
 * (hnswlib-node), built in a worker thread so a large build never stalls the
 * event loop; exact search answers until the graph is ready. Filtered
 * searches that admit at most EXACT_MAX_VECTORS rows are exact over those
 * rows; wider ones use the graph with hnswlib's label filter.
 *
 * Why these numbers (bench/rag.ts, `vectors`, on the 2-core development
 * machine, 384 dimensions): exact search costs 0.4-0.7 ms per 1,000 rows
 * (4-5 ms at 10k, 45-70 ms at 100k), so it stays near 10 ms up to 20k rows;
 * the graph answers in about half a millisecond at 100k, recall@10 0.94 on
 * the benchmark's synthetic vectors (0.99 at 10k). hnswlib-node rather than
 * usearch: usearch declares Node 22 or later, has no filtered search in its
 * JavaScript API and only blocking save and load (bench/rag.ts compares them).
 */
import { createRequire } from 'node:module';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import hnswlib from 'hnswlib-node';
import { ExactIndex, type VectorHit } from './exact-index.js';

/** Above this many vectors an index also gets an HNSW graph. */
export const EXACT_MAX_VECTORS = 20_000;

/** HNSW graph parameters: degree M, build beam efConstruction, search beam ef. */
export const HNSW_PARAMS = { m: 16, efConstruction: 128, efSearch: 64 } as const;

const HNSWLIB_PATH = createRequire(import.meta.url).resolve('hnswlib-node');

/**
 * The worker's script, as plain JavaScript run with `eval`, so it needs no
 * TypeScript loader in whatever process starts it (tsx, vitest, node). It
 * reads the vectors from the shared buffer, builds the graph, writes it to
 * `file` and exits.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const hnswlib = require(workerData.modulePath);
const { matrix, dimensions, file, params } = workerData;
(async () => {
  const n = matrix.length / dimensions;
  const index = new hnswlib.HierarchicalNSW('ip', dimensions);
  index.initIndex({ maxElements: Math.max(1, n), m: params.m, efConstruction: params.efConstruction, randomSeed: 100 });
  const row = new Array(dimensions);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < dimensions; j++) row[j] = matrix[i * dimensions + j];
    index.addPoint(row, i);
  }
  await index.writeIndex(file);
  parentPort.postMessage({ ok: true });
})().catch((err) => parentPort.postMessage({ ok: false, message: String(err && err.message || err) }));
`;

/** An HNSW graph over slots 0..n-1 of a matrix. */
export class HnswGraph {
  private constructor(private readonly index: hnswlib.HierarchicalNSW) {}

  /**
   * Builds the graph of `matrix` (n x dimensions, in a SharedArrayBuffer so
   * the worker reads it without a copy) in a worker thread, then loads it
   * here (hnswlib reads the file off the event loop).
   */
  static async build(matrix: Float32Array, dimensions: number, signal?: AbortSignal): Promise<HnswGraph> {
    if (!(matrix.buffer instanceof SharedArrayBuffer)) throw new TypeError('HnswGraph.build needs a matrix in a SharedArrayBuffer');
    const file = path.join(os.tmpdir(), `rag-hnsw-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.bin`);
    try {
      await new Promise<void>((resolve, reject) => {
        const worker = new Worker(WORKER_SOURCE, {
          eval: true,
          workerData: { matrix, dimensions, file, params: HNSW_PARAMS, modulePath: HNSWLIB_PATH },
        });
        const onAbort = () => void worker.terminate();
        signal?.addEventListener('abort', onAbort, { once: true });
        worker.once('message', (m: { ok: boolean; message?: string }) => (m.ok ? resolve() : reject(new Error(`HNSW build failed: ${m.message}`))));
        worker.once('error', reject);
        worker.once('exit', (code) => {
          signal?.removeEventListener('abort', onAbort);
          reject(new Error(signal?.aborted ? 'HNSW build aborted' : `HNSW worker exited with ${code}`));
        });
      });
      const index = new hnswlib.HierarchicalNSW('ip', dimensions);
      await index.readIndex(file);
      index.setEf(HNSW_PARAMS.efSearch);
      return new HnswGraph(index);
    } finally {
      await fs.rm(file, { force: true });
    }
  }

  /** Approximate k nearest slots, best first; only slots `allow` admits, when given. */
  search(query: Float32Array, k: number, allow?: (slot: number) => boolean): VectorHit[] {
    const n = this.index.getCurrentCount();
    const r = this.index.searchKnn(Array.from(query), Math.min(k, n), allow);
    // hnswlib's 'ip' distance is 1 - inner product.
    return r.neighbors.map((slot, i) => ({ slot, score: 1 - r.distances[i]! })).sort((a, b) => b.score - a.score || a.slot - b.slot);
  }
}

/**
 * One index's vectors in memory: the exact matrix always, the graph once
 * built (for indexes above EXACT_MAX_VECTORS). Slots are rows in storage
 * key order; `keys` maps them back to chunk keys.
 */
export class VectorIndex {
  private graph: HnswGraph | null = null;
  readonly exact: ExactIndex;

  constructor(
    /** n x dimensions, row-major, in a SharedArrayBuffer. */
    matrix: Float32Array,
    readonly dimensions: number,
    /** slot → chunk key. */
    readonly keys: Float64Array,
    /** Above this many vectors the index gets a graph (EXACT_MAX_VECTORS; benchmarks vary it). */
    private readonly graphAbove = EXACT_MAX_VECTORS,
  ) {
    this.exact = new ExactIndex(matrix, dimensions);
    if (keys.length !== this.exact.size) throw new RangeError('one key per vector');
  }

  get size(): number {
    return this.exact.size;
  }

  /** 'hnsw' once the graph answers, else 'exact'. */
  get method(): 'exact' | 'hnsw' {
    return this.graph ? 'hnsw' : 'exact';
  }

  /** Whether this index should get a graph at all. */
  get wantsGraph(): boolean {
    return this.size > this.graphAbove;
  }

  /** Builds the graph in a worker; until it is done, searches are exact. */
  async buildGraph(signal?: AbortSignal): Promise<void> {
    if (!this.wantsGraph || this.graph) return;
    this.graph = await HnswGraph.build(this.exact.matrix, this.dimensions, signal);
  }

  /**
   * The k best chunk keys for `query`, with their similarity. `allow` (by
   * slot) restricts the search; `allowed` is how many slots it admits.
   */
  search(query: Float32Array, k: number, filter?: { allow: (slot: number) => boolean; allowed: number }): Array<{ key: number; score: number }> {
    if (query.length !== this.dimensions) throw new RangeError(`query has ${query.length} dimensions, the index ${this.dimensions}`);
    let hits: VectorHit[];
    if (!filter) hits = this.graph ? this.graph.search(query, k) : this.exact.search(query, k);
    else if (filter.allowed === 0) hits = [];
    else if (!this.graph || filter.allowed <= this.graphAbove) hits = this.exact.search(query, k, filter.allow);
    else hits = this.graph.search(query, k, filter.allow);
    return hits.map((h) => ({ key: this.keys[h.slot]!, score: h.score }));
  }
}

/** A matrix of n x dimensions that a worker can read without a copy. */
export const sharedMatrix = (n: number, dimensions: number) => new Float32Array(new SharedArrayBuffer(Math.max(1, n * dimensions) * 4), 0, n * dimensions);
