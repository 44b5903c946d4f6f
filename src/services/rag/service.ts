/**
 * RAG indexes and retrieval: what REST (/v1/rag/...) and GraphQL (ragIndex,
 * ragIndexes, ragSearch, buildRagIndex, deleteRagIndex) call. The answering
 * half (POST /v1/rag) builds on resolveIndex and retrieve.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Log } from '../../observability/log.js';
import type { Dataset, RagIndex, Storage } from '../../storage/types.js';
import type { RequestContext } from '../context.js';
import type { CorpusIndexer } from '../datasets/service.js';
import { newId } from '../ids.js';
import type { Page } from '../paging.js';
import type { BuildRagIndexRequest, RagIndexListQuery, RagSearchRequest } from '../rag-schema.js';
import type { Embedder } from '../embeddings/types.js';
import { calibrateFusion } from './calibration.js';
import { DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_TOKENS } from './chunker.js';
import { DenseIndexes } from './dense-indexes.js';
import { NotACorpusError, RagDatasetNotFoundError, RagIndexNotFoundError, RagIndexNotReadyError } from './errors.js';
import { IndexBuilder, type BuildDispatch, type BuildJob, type BuildLimits, type EmbedderSource } from './index-builder.js';
import { ProgressEvents, watchChanges } from '../progress-events.js';
import { lexicalOptions } from './lexical.js';
import { Retriever, type Retrieval } from './retrieval.js';

/** Chunks deleted per statement when an index goes; the event loop gets a turn between batches. */
const DELETE_BATCH = 2000;
/** Indexes read per page when looking through a dataset's. */
const INDEX_PAGE = 100;

export interface RagSearchResult extends Retrieval {
  index: RagIndex;
  mode: RagSearchRequest['mode'];
  topK: number;
  /** Whole retrieval, query embedding included, in milliseconds. */
  latencyMs: number;
}

export interface RagOptions {
  /** Index builds' concurrency, batch size and retries (DEFAULT_BUILD_LIMITS). */
  limits?: BuildLimits;
  /** Indexes with more vectors than this get an HNSW graph (EXACT_MAX_VECTORS; benchmarks vary it). */
  graphAbove?: number;
  /** Indexes with more chunks than this prune lexical search (LEXICAL_EXACT_MAX; benchmarks vary it). */
  lexicalExactMax?: number;
  /** Queue mode (ROLE=api): builds are prepared here and run by workers (src/jobs/rag-queue.ts). */
  dispatch?: BuildDispatch | null;
  /** "This index changed" events (Redis pub/sub in split roles); in process by default. */
  events?: ProgressEvents;
}

export class RagService implements CorpusIndexer {
  private readonly dense: DenseIndexes;
  private readonly builder: IndexBuilder;
  private readonly retriever: Retriever;
  private readonly events: ProgressEvents;

  constructor(
    private readonly storage: Storage,
    embedder: EmbedderSource,
    log: Log,
    opts: RagOptions = {},
  ) {
    this.dense = new DenseIndexes(storage.rag, log, opts.graphAbove);
    this.events = opts.events ?? new ProgressEvents();
    // A finished build loads its vectors (kept for searches: the stamp is the final completedAt) and calibrates its fusion.
    const finish = async (index: RagIndex, e: Embedder, signal: AbortSignal) => ({
      fusion: await calibrateFusion({
        storage: storage.rag,
        index,
        dense: await this.dense.get(index),
        embedder: e,
        lexical: lexicalOptions(index.chunkCount, opts.lexicalExactMax),
        signal,
      }),
    });
    const hooks = { onReady: (index: RagIndex) => this.dense.warm(index), onProgress: (id: string) => this.events.ragChanged(id) };
    this.builder = new IndexBuilder(storage, embedder, log, finish, hooks, opts.limits, opts.dispatch ?? null);
    this.retriever = new Retriever(storage.rag, this.dense, embedder, opts.lexicalExactMax);
  }

  /** A new rag_corpus dataset: its index, with the default chunking, starts building at once. */
  async indexCorpus(dataset: Dataset): Promise<string> {
    const index = await this.create(dataset, { chunk_tokens: DEFAULT_CHUNK_TOKENS, chunk_overlap: DEFAULT_CHUNK_OVERLAP });
    return index.id;
  }

  /**
   * Builds an index of the dataset with these chunking options: a new one,
   * or, when the dataset already has one with the same options, that one
   * again (same id; documents are chunked and stored anew, and chunks whose
   * id and model are unchanged keep their vectors). A build under way is
   * returned as it is.
   */
  async build(req: BuildRagIndexRequest): Promise<RagIndex> {
    const dataset = await this.corpus(req.dataset_id);
    const options = { chunk_tokens: req.chunk_tokens, chunk_overlap: req.chunk_overlap };
    const same = (await this.indexesOf(dataset.id)).find(
      (i) => i.options.chunk_tokens === options.chunk_tokens && i.options.chunk_overlap === options.chunk_overlap,
    );
    if (!same) return this.create(dataset, options);
    if (same.status === 'processing') return same;
    await this.builder.cancel(same);
    this.dense.drop(same.id);
    const now = new Date().toISOString();
    const reset = await this.storage.rag.resetIndex(same.id, {
      status: 'processing',
      fusion: null,
      error: null,
      startedAt: null,
      completedAt: null,
      updatedAt: now,
    });
    if (!reset) throw new RagIndexNotFoundError({ indexId: same.id });
    this.events.ragChanged(reset.id);
    this.builder.launch(reset);
    return reset;
  }

  async get(id: string): Promise<RagIndex> {
    const index = await this.storage.rag.getIndex(id);
    if (!index) throw new RagIndexNotFoundError({ indexId: id });
    return index;
  }

  /** A page of indexes, newest first. */
  list(q: RagIndexListQuery): Promise<Page<RagIndex>> {
    return this.storage.rag.listIndexes({
      limit: q.limit,
      ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
      ...(q.dataset_id !== undefined ? { datasetId: q.dataset_id } : {}),
      ...(q.status !== undefined ? { status: q.status } : {}),
    });
  }

  /** Deletes an index with its chunks; a build under way stops first. */
  async delete(id: string): Promise<void> {
    await this.remove(await this.get(id));
  }

  /**
   * An index's progress: the index now, then each change (documents stored,
   * status) until its build ends; on any replica, whichever process builds
   * it (events through Redis in split roles). Also re-read every `recheckMs`,
   * so a lost event only delays an update.
   */
  watch(id: string, signal: AbortSignal, recheckMs = 2000): AsyncGenerator<RagIndex> {
    return watchChanges(
      {
        events: this.events.watchRag(id),
        read: () => this.get(id),
        key: (i) => `${i.status}:${i.documentsIndexed}:${i.documentsFailed}:${i.chunkCount}:${i.startedAt}`,
        ended: (i) => i.status !== 'processing',
      },
      signal,
      recheckMs,
    );
  }

  /**
   * A queued build job (ROLE=worker). A finished build's vectors, loaded to
   * calibrate its fusion, are not kept: a worker answers no searches.
   */
  async processJob(job: BuildJob, last: boolean, signal: AbortSignal): Promise<void> {
    try {
      await this.builder.processJob(job, last, signal);
    } finally {
      if (job.kind === 'finish') this.dense.drop(job.indexId);
    }
  }

  /** A queued build job the queue gave up on (ROLE=worker). */
  giveUpJob(job: BuildJob, err: Error): Promise<void> {
    return this.builder.giveUp(job, err.message.includes('stalled') ? 'the worker building it stopped too often' : 'indexing failed');
  }

  /** Before a dataset is deleted: its indexes go, chunk batch by chunk batch (CorpusIndexer). */
  async deleteIndexesOf(datasetId: string): Promise<void> {
    for (const index of await this.indexesOf(datasetId)) await this.remove(index);
  }

  /**
   * The index a request names: by id, or the dataset's newest ready index
   * (if none is ready, its newest one, for the conflict to report). Ready or
   * not: see requireReady.
   */
  async resolveIndex(ref: { index_id?: string | undefined; dataset_id?: string | undefined }): Promise<RagIndex> {
    if (ref.index_id !== undefined) return this.get(ref.index_id);
    const dataset = await this.corpus(ref.dataset_id!);
    const indexes = await this.indexesOf(dataset.id);
    const chosen = indexes.find((i) => i.status === 'ready') ?? indexes.find((i) => i.status === 'processing') ?? indexes[0];
    if (!chosen) throw new RagIndexNotFoundError({ datasetId: dataset.id });
    return chosen;
  }

  /** Retrieval without generation (POST /v1/rag/search, GraphQL ragSearch). */
  async search(req: RagSearchRequest, ctx: RequestContext): Promise<RagSearchResult> {
    const started = performance.now();
    const index = requireReady(await this.resolveIndex(req));
    const retrieval = await this.retrieve(index, req, ctx.signal);
    return { ...retrieval, index, mode: req.mode, topK: req.top_k, latencyMs: performance.now() - started };
  }

  /** The top_k chunks of a ready index (what answers cite). */
  retrieve(index: RagIndex, req: Pick<RagSearchRequest, 'query' | 'top_k' | 'mode' | 'filter'>, signal?: AbortSignal): Promise<Retrieval> {
    return this.retriever.retrieve(index, { query: req.query, topK: req.top_k, mode: req.mode, filter: req.filter, ...(signal ? { signal } : {}) });
  }

  /** Resumes builds left processing by a restart. Called once at start-up. */
  resumeAll(): Promise<number> {
    return this.builder.resumeAll();
  }

  /** Loads every ready index's vectors (and builds graphs) in the background, one index at a time. Called once at start-up. */
  async warmUp(): Promise<number> {
    const ready = await this.storage.rag.indexesByStatus(['ready']);
    void (async () => {
      for (const index of ready) await this.dense.get(index).catch(() => {});
    })();
    return ready.length;
  }

  /** Stops builds (they resume at the next start) and graph builds. */
  async stop(): Promise<void> {
    await this.builder.stop();
    this.dense.stop();
  }

  private async create(dataset: Dataset, options: RagIndex['options']): Promise<RagIndex> {
    const now = new Date().toISOString();
    const index: RagIndex = {
      id: newId('ri'),
      datasetId: dataset.id,
      status: 'processing',
      options,
      embeddingModel: null,
      embeddingDimensions: null,
      documentsTotal: dataset.recordCount,
      documentsIndexed: 0,
      documentsFailed: 0,
      chunkCount: 0,
      fusion: null,
      error: null,
      createdAt: now,
      startedAt: null,
      updatedAt: now,
      completedAt: null,
    };
    await this.storage.rag.createIndex(index);
    this.builder.launch(index);
    return index;
  }

  private async remove(index: RagIndex): Promise<void> {
    const id = index.id;
    await this.builder.cancel(index);
    this.dense.drop(id);
    // A large index goes in batches, so no single statement holds the event loop (SQLite) for long.
    while ((await this.storage.rag.deleteChunks(id, DELETE_BATCH)) > 0) await yieldToLoop();
    await this.storage.rag.deleteIndex(id);
    this.events.ragChanged(id);
  }

  /** A rag_corpus dataset, or the typed error that says why not. */
  private async corpus(datasetId: string): Promise<Dataset> {
    const dataset = await this.storage.datasets.get(datasetId);
    if (!dataset) throw new RagDatasetNotFoundError(datasetId);
    if (dataset.type !== 'rag_corpus') throw new NotACorpusError(datasetId, dataset.type);
    return dataset;
  }

  /** Every index of a dataset, newest first. */
  private async indexesOf(datasetId: string): Promise<RagIndex[]> {
    const out: RagIndex[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.storage.rag.listIndexes({ datasetId, limit: INDEX_PAGE, ...(cursor ? { cursor } : {}) });
      out.push(...page.items);
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    return out;
  }
}

/** The index if it can answer; RagIndexNotReadyError (409, with its progress) if it is processing or failed. */
export function requireReady(index: RagIndex): RagIndex {
  if (index.status !== 'ready') throw new RagIndexNotReadyError(index);
  return index;
}
