/**
 * The vectors of ready indexes, in memory: loaded from storage on first use
 * (or at start-up), reloaded when the index was rebuilt since, dropped when
 * it is deleted. Indexes above EXACT_MAX_VECTORS get their HNSW graph built
 * in the background, one at a time, while exact search answers.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Log } from '../../observability/log.js';
import type { MetadataFilter, RagIndex, RagRepository } from '../../storage/types.js';
import { matchesFilter } from './filter.js';
import { EXACT_MAX_VECTORS, sharedMatrix, VectorIndex } from './vector-index.js';

/** Vectors read from storage per query while loading; the event loop gets a turn between pages. */
const LOAD_PAGE = 2000;

/** One index's vectors and what filters need: each slot's document and each document's metadata. */
export class DenseIndex {
  constructor(
    readonly vectors: VectorIndex,
    /** slot → document (record index). */
    private readonly docOfSlot: Int32Array,
    /** document → its metadata and how many slots it has. */
    private readonly docs: Map<number, { metadata: Record<string, unknown>; slots: number }>,
  ) {}

  /** chunk key → its document (record index). */
  documentsByKey(): Map<number, number> {
    const out = new Map<number, number>();
    for (let slot = 0; slot < this.vectors.size; slot++) out.set(this.vectors.keys[slot]!, this.docOfSlot[slot]!);
    return out;
  }

  /** The k nearest chunk keys to `query` among the documents `filter` admits. */
  search(query: Float32Array, k: number, filter?: MetadataFilter): Array<{ key: number; score: number }> {
    if (!filter || Object.keys(filter).length === 0) return this.vectors.search(query, k);
    const admitted = new Set<number>();
    let allowed = 0;
    for (const [doc, d] of this.docs) {
      if (matchesFilter(d.metadata, filter)) {
        admitted.add(doc);
        allowed += d.slots;
      }
    }
    return this.vectors.search(query, k, { allow: (slot) => admitted.has(this.docOfSlot[slot]!), allowed });
  }
}

interface Entry {
  /** The index's completedAt when loaded: a rebuild changes it, and the entry is stale. */
  stamp: string | null;
  loading: Promise<DenseIndex>;
  controller: AbortController;
}

export class DenseIndexes {
  private readonly entries = new Map<string, Entry>();
  /** Graph builds run one after another: each takes both cores for a while. */
  private graphs: Promise<void> = Promise.resolve();

  constructor(
    private readonly storage: RagRepository,
    private readonly log: Log,
    /** Indexes with more vectors than this get an HNSW graph (default EXACT_MAX_VECTORS). */
    private readonly graphAbove = EXACT_MAX_VECTORS,
  ) {}

  /** The index's vectors (loading them, or waiting for a load under way). Only for ready indexes. */
  get(index: RagIndex): Promise<DenseIndex> {
    const entry = this.entries.get(index.id);
    if (entry && entry.stamp === index.completedAt) return entry.loading;
    if (entry) this.drop(index.id);
    const controller = new AbortController();
    const loading = this.load(index, controller.signal);
    const fresh: Entry = { stamp: index.completedAt, loading, controller };
    this.entries.set(index.id, fresh);
    // A failed load is forgotten, so the next search tries again.
    loading.catch((err: unknown) => {
      if (this.entries.get(index.id) === fresh) this.entries.delete(index.id);
      if (!controller.signal.aborted) this.log.error({ err, index_id: index.id }, 'loading RAG vectors failed');
    });
    return loading;
  }

  /** Loads now (at start-up, or when a build finishes), without waiting. */
  warm(index: RagIndex): void {
    void this.get(index).catch(() => {});
  }

  /** Forgets the index's vectors (deleted, or about to be rebuilt); stops its graph build. */
  drop(indexId: string): void {
    const entry = this.entries.get(indexId);
    if (!entry) return;
    entry.controller.abort();
    this.entries.delete(indexId);
  }

  /** Stops every graph build (shutdown). */
  stop(): void {
    for (const id of [...this.entries.keys()]) this.drop(id);
  }

  private async load(index: RagIndex, signal: AbortSignal): Promise<DenseIndex> {
    const d = index.embeddingDimensions;
    if (d === null) throw new Error(`RAG index ${index.id} has no embedding dimensions`);
    const started = performance.now();
    let capacity = Math.max(1, index.chunkCount);
    let matrix = sharedMatrix(capacity, d);
    let keys = new Float64Array(capacity);
    let docOfSlot = new Int32Array(capacity);
    const docs = new Map<number, { metadata: Record<string, unknown>; slots: number }>();
    let n = 0;
    let after = -1;
    for (;;) {
      const page = await this.storage.vectors(index.id, after, LOAD_PAGE);
      if (signal.aborted) throw new Error('load aborted');
      for (const v of page) {
        if (v.vector.length !== d) throw new Error(`chunk ${v.key} of ${index.id} has ${v.vector.length} dimensions, not ${d}`);
        if (n === capacity) {
          // More rows than the index counted (written since): grow.
          capacity *= 2;
          const bigger = sharedMatrix(capacity, d);
          bigger.set(matrix);
          matrix = bigger;
          keys = grow(keys, capacity, Float64Array);
          docOfSlot = grow(docOfSlot, capacity, Int32Array);
        }
        matrix.set(v.vector, n * d);
        keys[n] = v.key;
        docOfSlot[n] = v.docIndex;
        const doc = docs.get(v.docIndex);
        if (doc) doc.slots++;
        else docs.set(v.docIndex, { metadata: v.metadata, slots: 1 });
        n++;
      }
      if (page.length < LOAD_PAGE) break;
      after = page.at(-1)!.key;
      await yieldToLoop();
    }
    const vectors = new VectorIndex(matrix.subarray(0, n * d), d, keys.subarray(0, n), this.graphAbove);
    this.log.info({ index_id: index.id, vectors: n, load_ms: Math.round(performance.now() - started) }, 'RAG vectors loaded');
    if (vectors.wantsGraph) this.queueGraph(index.id, vectors, signal);
    return new DenseIndex(vectors, docOfSlot.subarray(0, n), docs);
  }

  private queueGraph(indexId: string, vectors: VectorIndex, signal: AbortSignal): void {
    this.graphs = this.graphs.then(async () => {
      if (signal.aborted) return;
      const started = performance.now();
      try {
        await vectors.buildGraph(signal);
        this.log.info({ index_id: indexId, vectors: vectors.size, build_ms: Math.round(performance.now() - started) }, 'RAG HNSW graph ready');
      } catch (err) {
        if (!signal.aborted) this.log.error({ err, index_id: indexId }, 'RAG HNSW graph build failed; exact search goes on');
      }
    });
  }
}

function grow<T extends Float64Array | Int32Array>(a: T, capacity: number, Ctor: new (n: number) => T): T {
  const out = new Ctor(capacity);
  out.set(a);
  return out;
}
