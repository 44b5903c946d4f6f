/**
 * Index builds: every document of a rag_corpus dataset chunked with the
 * embedding model's tokenizer, embedded (through the shared batching
 * embedder, so builds and live queries share encoder runs), and stored with
 * its chunks in one transaction per document. Resumable: a document's
 * outcome is stored once it is done, and a build left `processing` by a
 * restart goes on from the documents not yet done. Idempotent per chunk id:
 * a document stored twice keeps one copy of each chunk, and a rebuild with
 * the same model reuses the vectors of chunks it already has.
 *
 * Two ways to run a build: in this process (ROLE=all), or, with a `dispatch`
 * (ROLE=api), prepared here and handed to the job queue as groups of
 * documents and a finish step, which workers run (processJob) with the same
 * per-document code.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { EngineOverloadedError, GenerationCancelledError, ModelNotLoadedError } from '../../engine/errors.js';
import type { Log } from '../../observability/log.js';
import type { DatasetRecord, NewRagChunk, RagIndex, Storage } from '../../storage/types.js';
import type { CorpusRecordData } from '../datasets/validate.js';
import type { Embedder } from '../embeddings/types.js';
import { isExpected, publicError } from '../errors.js';
import { chunkId, chunkText, contentTokenCounter } from './chunker.js';

/** Where builds get their embedder: the embedding host (services/embeddings/host.ts) or a test's. */
export interface EmbedderSource {
  readonly state: 'loading' | 'ready' | 'failed';
  /** The embedder, or a typed error (ModelNotLoadedError) while loading or after a failed load. */
  require(): Embedder;
  /** Resolves once the model is ready; rejects if its load fails. */
  whenReady(): Promise<Embedder>;
}

export interface BuildLimits {
  /** Documents in flight at once. */
  concurrency: number;
  /** Chunks per embed() call. */
  embedBatch: number;
  /** Attempts per embed() call before the document fails (queue-full refusals wait and do not count). */
  attempts: number;
}

/** 4 documents x 32 chunks keeps at most 128 inputs of one build in the embedder's queue (1,024 by default). */
export const DEFAULT_BUILD_LIMITS: BuildLimits = { concurrency: 4, embedBatch: 32, attempts: 3 };

/** Documents per queued job (ROLE=api): small enough that a killed worker loses little, large enough that a job's overhead is noise. */
export const DOCUMENTS_PER_JOB = 16;

/** A queued job of a build (src/jobs/rag-queue.ts RagJobData fits it). */
export type BuildJob =
  | { kind: 'documents'; indexId: string; epoch: number; documents: number[] }
  | { kind: 'finish'; indexId: string; epoch: number };

/** Where builds go in queue mode (src/jobs/rag-queue.ts RagQueue). */
export interface BuildDispatch {
  enqueue(indexId: string, epoch: number, groups: number[][]): Promise<void>;
  /** True if this build is already in the queue (a restart must not queue it twice). */
  has(indexId: string, epoch: number): Promise<boolean>;
  cancel(indexId: string, epoch: number | null): Promise<void>;
}

/** Which build of an index a queued job belongs to: its start time in ms (null before it starts). */
export const epochOf = (index: Pick<RagIndex, 'startedAt'>): number | null => (index.startedAt === null ? null : Date.parse(index.startedAt));

/** A chunking plan for one build: the model's budget and the index's options. */
interface Chunking {
  maxTokens: number;
  overlap: number;
  tokens: (t: string) => number;
}

/** Records read from the dataset per page. */
const PAGE = 200;
/** Chunks deleted per statement when a model change empties an index. */
const DELETE_BATCH = 2000;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

/** A document that cannot be indexed: its reason is stored with it, and the build goes on. */
class DocumentFailure extends Error {}

/** A message fit for a client: typed errors as their contract message, anything else masked. */
const reasonOf = (err: unknown) => (err instanceof DocumentFailure ? err.message : isExpected(err) ? publicError(err).message : 'embedding failed');

/**
 * What happens between the last document and `ready`: given the index as it
 * will be (its completedAt set), the fields to store with the status (the
 * fusion weights). A failure here leaves those fields unset, not the build failed.
 */
export type FinishBuild = (index: RagIndex, embedder: Embedder, signal: AbortSignal) => Promise<Pick<RagIndex, 'fusion'>>;

export interface BuilderHooks {
  /** Called when a build ends ready (to load its vectors). */
  onReady(index: RagIndex): void;
  /** Called whenever a build's stored state moves (a document stored, a status change): progress events. */
  onProgress?(indexId: string): void;
}

export class IndexBuilder {
  private readonly active = new Map<string, { controller: AbortController; done: Promise<void> }>();
  private stopping = false;

  constructor(
    private readonly storage: Storage,
    private readonly embedder: EmbedderSource,
    private readonly log: Log,
    private readonly finish: FinishBuild,
    private readonly hooks: BuilderHooks,
    private readonly limits: BuildLimits = DEFAULT_BUILD_LIMITS,
    /** Queue mode (ROLE=api): builds are prepared here and run by workers. */
    private readonly dispatch: BuildDispatch | null = null,
  ) {}

  private changed(indexId: string): void {
    this.hooks.onProgress?.(indexId);
  }

  isBuilding(indexId: string): boolean {
    return this.active.has(indexId);
  }

  /**
   * Starts (or resumes) the build of a `processing` index in the background:
   * here, or in queue mode prepared here and handed to the workers.
   */
  launch(index: RagIndex): void {
    if (this.active.has(index.id) || this.stopping) return;
    const controller = new AbortController();
    const work = this.dispatch ? this.enqueue(index, controller.signal) : this.execute(index, controller.signal);
    const done = work
      .catch(async (err: unknown) => {
        if (controller.signal.aborted) return;
        this.log.error({ err, index_id: index.id }, 'RAG index build failed');
        await this.fail(index.id, reasonOf(err));
      })
      .finally(() => this.active.delete(index.id));
    this.active.set(index.id, { controller, done });
  }

  /**
   * Stops a build and waits until this process writes no more for it (before
   * its index is deleted or started over). In queue mode the workers are
   * told to stop and its waiting jobs go; a job already past its check may
   * still store one document, which the index's deletion or reset removes.
   */
  async cancel(index: RagIndex): Promise<void> {
    const job = this.active.get(index.id);
    if (job) {
      job.controller.abort();
      await job.done;
    }
    if (this.dispatch) {
      await this.dispatch.cancel(index.id, epochOf(index)).catch((err: unknown) => this.log.warn({ err, index_id: index.id }, 'could not cancel the queued build'));
    }
  }

  /** Ends a build as failed (unless it already ended). */
  private async fail(indexId: string, reason: string): Promise<void> {
    const now = new Date().toISOString();
    await this.storage.rag
      .updateIndex(indexId, { status: 'failed', error: reason, completedAt: now, updatedAt: now }, ['processing'])
      .catch((e: unknown) => this.log.error({ err: e, index_id: indexId }, 'could not record the failed build'));
    this.changed(indexId);
  }

  /** Resumes builds a crash or restart left `processing`. Called once at start-up. */
  async resumeAll(): Promise<number> {
    const indexes = await this.storage.rag.indexesByStatus(['processing']);
    for (const index of indexes) {
      this.log.info({ index_id: index.id, indexed: index.documentsIndexed, failed: index.documentsFailed, total: index.documentsTotal }, 'resuming RAG index build');
      this.launch(index);
    }
    return indexes.length;
  }

  /** Stops every build; they stay `processing` in storage and resume at the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    const jobs = [...this.active.values()];
    for (const j of jobs) j.controller.abort();
    await Promise.all(jobs.map((j) => j.done));
  }

  /** The embedder once it is ready (a build started while the model loads waits), or a cancellation. */
  private waitEmbedder(signal: AbortSignal): Promise<Embedder> {
    return Promise.race([
      this.embedder.whenReady(),
      new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(new GenerationCancelledError()), { once: true })),
    ]);
  }

  /** The chunk budget: the index's option, within what the model reads (its special tokens included). */
  private chunkingFor(index: RagIndex, embedder: Embedder): Chunking {
    const { tokens, overhead } = contentTokenCounter((t) => embedder.countTokens(t));
    const maxTokens = Math.max(1, Math.min(index.options.chunk_tokens, embedder.info.maxTokens - overhead));
    return { maxTokens, overlap: Math.min(index.options.chunk_overlap, Math.floor(maxTokens / 2)), tokens };
  }

  /** A build in this process: every document not done yet, then the finish. */
  private async execute(start: RagIndex, signal: AbortSignal): Promise<void> {
    const embedder = await this.waitEmbedder(signal);
    if (signal.aborted) return;
    const index = await this.prepare(start, embedder, signal);
    if (!index || signal.aborted) return;
    const done = await this.storage.rag.doneDocuments(index.id);
    const chunking = this.chunkingFor(index, embedder);

    const inFlight = new Set<Promise<void>>();
    let after = -1;
    for (;;) {
      const records = await this.storage.datasets.records(index.datasetId, after, PAGE);
      if (records.length === 0) break;
      for (const r of records) {
        if (signal.aborted) break;
        if (done.has(r.index)) continue;
        const p = this.document(index, r, embedder, chunking, signal).finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= this.limits.concurrency) await Promise.race(inFlight);
      }
      if (signal.aborted) break;
      after = records.at(-1)!.index;
    }
    await Promise.all(inFlight);
    if (signal.aborted) return;
    await this.finishBuild(index.id, embedder, signal);
  }

  /**
   * Queue mode: prepares the build here (the model it runs with, a reset if
   * the model changed) and queues the documents not done yet in groups,
   * then the finish. A build already in the queue (a restart) is left there.
   */
  private async enqueue(start: RagIndex, signal: AbortSignal): Promise<void> {
    const embedder = await this.waitEmbedder(signal);
    if (signal.aborted) return;
    const index = await this.prepare(start, embedder, signal);
    if (!index || signal.aborted) return;
    const epoch = epochOf(index)!;
    const dispatch = this.dispatch!;
    try {
      if (await dispatch.has(index.id, epoch)) return;
      const done = await this.storage.rag.doneDocuments(index.id);
      const groups: number[][] = [];
      let group: number[] = [];
      let after = -1;
      for (;;) {
        const records = await this.storage.datasets.records(index.datasetId, after, PAGE);
        if (records.length === 0) break;
        for (const r of records) {
          if (done.has(r.index)) continue;
          group.push(r.index);
          if (group.length === DOCUMENTS_PER_JOB) {
            groups.push(group);
            group = [];
          }
        }
        after = records.at(-1)!.index;
      }
      if (group.length > 0) groups.push(group);
      if (signal.aborted) return;
      await dispatch.enqueue(index.id, epoch, groups);
      this.log.info({ index_id: index.id, epoch, jobs: groups.length, documents: groups.reduce((n, g) => n + g.length, 0) }, 'RAG index build queued');
    } catch (err) {
      if (signal.aborted) return;
      // Redis away: the build cannot start; jobs already queued find it failed and do nothing.
      this.log.error({ err, index_id: index.id }, 'queueing the RAG index build failed');
      await this.fail(index.id, 'job queue unavailable');
    }
  }

  /**
   * A queued job (ROLE=worker): a group of documents, or the build's finish.
   * A job of a build that ended, was deleted or started over does nothing.
   * Errors that are not one document's (the model, storage) are thrown back
   * for a retry; on the last attempt the group's documents are stored as failed.
   */
  async processJob(job: BuildJob, last: boolean, signal: AbortSignal): Promise<void> {
    const index = await this.current(job);
    if (!index) return;
    const embedder = await this.waitEmbedder(signal);
    if (signal.aborted) return;
    if (job.kind === 'finish') {
      await this.finishBuild(index.id, embedder, signal);
      return;
    }
    try {
      const { model, dimensions } = embedder.info;
      if (index.embeddingModel !== model || index.embeddingDimensions !== dimensions) {
        throw new DocumentFailure(`the index is built with ${index.embeddingModel} (${index.embeddingDimensions} dimensions); this worker embeds with ${model} (${dimensions})`);
      }
      const chunking = this.chunkingFor(index, embedder);
      const wanted = new Set(job.documents);
      const first = Math.min(...job.documents);
      const records = (await this.storage.datasets.records(index.datasetId, first - 1, Math.max(...job.documents) - first + 1)).filter((r) => wanted.has(r.index));
      const inFlight = new Set<Promise<void>>();
      for (const r of records) {
        if (signal.aborted || !(await this.current(job))) return;
        const p = this.document(index, r, embedder, chunking, signal).finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= this.limits.concurrency) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
    } catch (err) {
      if (signal.aborted || !(await this.current(job).catch(() => null))) return;
      if (!last && !(err instanceof DocumentFailure)) throw err;
      await this.giveUp(job, reasonOf(err));
    }
  }

  /** A queued group the queue gave up on (its last attempt failed, or it stalled too often): its documents not stored yet fail. */
  async giveUp(job: BuildJob, reason: string): Promise<void> {
    const index = await this.current(job);
    if (!index) return;
    if (job.kind === 'finish') {
      await this.fail(index.id, reason);
      return;
    }
    const done = await this.storage.rag.doneDocuments(index.id);
    const first = Math.min(...job.documents);
    const records = await this.storage.datasets.records(index.datasetId, first - 1, Math.max(...job.documents) - first + 1);
    for (const r of records) {
      if (!job.documents.includes(r.index) || done.has(r.index)) continue;
      const doc = r.data as unknown as CorpusRecordData;
      await this.storage.rag.putDocument({ indexId: index.id, docIndex: r.index, docId: doc.doc_id, status: 'failed', chunkCount: 0, error: reason }, []);
      this.changed(index.id);
    }
  }

  /** The index a queued job is for, if that build is still the one under way. */
  private async current(job: BuildJob): Promise<RagIndex | null> {
    const index = await this.storage.rag.getIndex(job.indexId);
    return index && index.status === 'processing' && epochOf(index) === job.epoch ? index : null;
  }

  /**
   * Ends a build whose documents are all done: ready (with its fusion
   * weights) when any document was indexed, else failed. A compare-and-set
   * on `processing`, so a build cancelled or ended meanwhile stays as it is.
   */
  private async finishBuild(indexId: string, embedder: Embedder, signal: AbortSignal): Promise<void> {
    const final = await this.storage.rag.getIndex(indexId);
    if (!final || final.status !== 'processing') return;
    const now = new Date().toISOString();
    const ready = final.documentsIndexed > 0;
    let extra: Partial<Pick<RagIndex, 'fusion'>> = {};
    if (ready) {
      await this.storage.rag.indexWritten(indexId);
      extra = await this.finish({ ...final, completedAt: now }, embedder, signal).catch((err: unknown) => {
        if (!signal.aborted) this.log.error({ err, index_id: indexId }, 'RAG fusion calibration failed: plain RRF');
        return { fusion: null };
      });
      if (signal.aborted) return;
    }
    const ended = await this.storage.rag.updateIndex(
      indexId,
      {
        status: ready ? 'ready' : 'failed',
        error: ready ? null : final.documentsTotal === 0 ? 'the dataset has no documents' : 'every document failed',
        ...extra,
        completedAt: now,
        updatedAt: now,
      },
      ['processing'],
    );
    this.log.info(
      { index_id: indexId, status: ended?.status, documents: final.documentsIndexed, failed: final.documentsFailed, chunks: final.chunkCount, fusion: ended?.fusion },
      'RAG index build finished',
    );
    this.changed(indexId);
    if (ended?.status === 'ready') this.hooks.onReady(ended);
  }

  /**
   * Records the model the build runs with. An index built (partly) with
   * another model starts over empty: its vectors could not be compared with
   * this model's.
   */
  private async prepare(index: RagIndex, embedder: Embedder, signal: AbortSignal): Promise<RagIndex | null> {
    const { model, dimensions } = embedder.info;
    const now = new Date().toISOString();
    const patch = { embeddingModel: model, embeddingDimensions: dimensions, startedAt: index.startedAt ?? now, updatedAt: now };
    if (index.embeddingModel === null || (index.embeddingModel === model && index.embeddingDimensions === dimensions)) {
      return this.storage.rag.updateIndex(index.id, patch);
    }
    this.log.info({ index_id: index.id, from: index.embeddingModel, to: model }, 'embedding model changed: the index starts over');
    const reset = await this.storage.rag.resetIndex(index.id, patch);
    while (!signal.aborted && (await this.storage.rag.deleteChunks(index.id, DELETE_BATCH)) > 0) await yieldToLoop();
    return reset;
  }

  /** One document: chunk, embed what is not stored yet, store; or store why it failed. */
  private async document(
    index: RagIndex,
    record: DatasetRecord,
    embedder: Embedder,
    chunking: Chunking,
    signal: AbortSignal,
  ): Promise<void> {
    const doc = record.data as unknown as CorpusRecordData;
    const base = { indexId: index.id, docIndex: record.index, docId: doc.doc_id };
    try {
      // Chunking is synchronous; let requests in between documents.
      await yieldToLoop();
      const pieces = chunkText(doc.text, chunking);
      if (pieces.length === 0) throw new DocumentFailure('the document has no text');
      const ids = pieces.map((c) => chunkId(doc.doc_id, c));
      const known = await this.storage.rag.chunkVectors(index.id, ids);
      const vectors = ids.map((id) => known.get(id));
      const missing = vectors.flatMap((v, i) => (v === undefined ? [i] : []));
      for (let s = 0; s < missing.length; s += this.limits.embedBatch) {
        const batch = missing.slice(s, s + this.limits.embedBatch);
        const got = await this.embed(embedder, batch.map((i) => pieces[i]!.text), signal);
        if (signal.aborted) return;
        batch.forEach((i, j) => (vectors[i] = got[j]));
      }
      const chunks: NewRagChunk[] = pieces.map((c, i) => {
        const vector = vectors[i]!;
        if (vector.length !== embedder.info.dimensions || !vector.every(Number.isFinite)) {
          throw new DocumentFailure(`chunk ${c.ordinal} embedded to an unusable vector`);
        }
        return { ...base, chunkId: ids[i]!, ordinal: c.ordinal, start: c.start, end: c.end, tokens: c.tokens, text: c.text, metadata: doc.metadata, vector };
      });
      if (signal.aborted) return;
      await this.storage.rag.putDocument({ ...base, status: 'indexed', chunkCount: chunks.length, error: null }, chunks);
    } catch (err) {
      if (signal.aborted || err instanceof GenerationCancelledError) return;
      this.log.warn({ err, index_id: index.id, doc_id: doc.doc_id }, 'RAG document failed');
      await this.storage.rag.putDocument({ ...base, status: 'failed', chunkCount: 0, error: reasonOf(err) }, []);
    }
    this.changed(index.id);
  }

  /**
   * Embeds a batch, retrying failures with backoff. A full queue (live
   * traffic first) and a model that went away wait without using up
   * attempts; other errors fail the document after `attempts`.
   */
  private async embed(embedder: Embedder, texts: string[], signal: AbortSignal): Promise<Float32Array[]> {
    let attempts = 0;
    let waits = 0;
    for (;;) {
      try {
        // Chunks fit the model by construction; truncation only guards against a tokenizer that counts otherwise.
        return (await embedder.embed(texts, { truncate: true, signal })).vectors;
      } catch (err) {
        if (signal.aborted) throw new GenerationCancelledError();
        const busy = err instanceof EngineOverloadedError || (err instanceof ModelNotLoadedError && err.state === 'loading');
        if (busy) waits++;
        else attempts++;
        if (attempts >= this.limits.attempts) throw err;
        await sleep(Math.min(5000, 100 * 2 ** Math.min(busy ? waits : attempts, 6)), signal);
      }
    }
  }
}
