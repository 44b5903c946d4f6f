/**
 * Index builds: every document of a rag_corpus dataset chunked with the
 * embedding model's tokenizer, embedded (through the shared batching
 * embedder, so builds and live queries share encoder runs), and stored with
 * its chunks in one transaction per document. Resumable: a document's
 * outcome is stored once it is done, and a build left `processing` by a
 * restart goes on from the documents not yet done. Idempotent per chunk id:
 * a document stored twice keeps one copy of each chunk, and a rebuild with
 * the same model reuses the vectors of chunks it already has.
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

export class IndexBuilder {
  private readonly active = new Map<string, { controller: AbortController; done: Promise<void> }>();
  private stopping = false;

  constructor(
    private readonly storage: Storage,
    private readonly embedder: EmbedderSource,
    private readonly log: Log,
    private readonly finish: FinishBuild,
    /** Called when a build ends ready (to load its vectors). */
    private readonly onReady: (index: RagIndex) => void,
    private readonly limits: BuildLimits = DEFAULT_BUILD_LIMITS,
  ) {}

  isBuilding(indexId: string): boolean {
    return this.active.has(indexId);
  }

  /** Starts (or resumes) the build of a `processing` index in the background. */
  launch(index: RagIndex): void {
    if (this.active.has(index.id) || this.stopping) return;
    const controller = new AbortController();
    const done = this.execute(index, controller.signal)
      .catch(async (err: unknown) => {
        if (controller.signal.aborted) return;
        this.log.error({ err, index_id: index.id }, 'RAG index build failed');
        const now = new Date().toISOString();
        await this.storage.rag
          .updateIndex(index.id, { status: 'failed', error: reasonOf(err), completedAt: now, updatedAt: now })
          .catch((e: unknown) => this.log.error({ err: e, index_id: index.id }, 'could not record the failed build'));
      })
      .finally(() => this.active.delete(index.id));
    this.active.set(index.id, { controller, done });
  }

  /** Stops a build and waits until it writes no more (before its index is deleted or started over). */
  async cancel(indexId: string): Promise<void> {
    const job = this.active.get(indexId);
    if (!job) return;
    job.controller.abort();
    await job.done;
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

  private async execute(start: RagIndex, signal: AbortSignal): Promise<void> {
    // A build started (or resumed) while the model loads begins once it is ready.
    const embedder = await Promise.race([
      this.embedder.whenReady(),
      new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(new GenerationCancelledError()), { once: true })),
    ]);
    if (signal.aborted) return;
    const index = await this.prepare(start, embedder, signal);
    if (!index || signal.aborted) return;
    const done = await this.storage.rag.doneDocuments(index.id);
    const { tokens, overhead } = contentTokenCounter((t) => embedder.countTokens(t));
    // The chunk budget: the index's option, within what the model reads (its special tokens included).
    const maxTokens = Math.max(1, Math.min(index.options.chunk_tokens, embedder.info.maxTokens - overhead));
    const overlap = Math.min(index.options.chunk_overlap, Math.floor(maxTokens / 2));

    const inFlight = new Set<Promise<void>>();
    let after = -1;
    for (;;) {
      const records = await this.storage.datasets.records(index.datasetId, after, PAGE);
      if (records.length === 0) break;
      for (const r of records) {
        if (signal.aborted) break;
        if (done.has(r.index)) continue;
        const p = this.document(index, r, embedder, { maxTokens, overlap, tokens }, signal).finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= this.limits.concurrency) await Promise.race(inFlight);
      }
      if (signal.aborted) break;
      after = records.at(-1)!.index;
    }
    await Promise.all(inFlight);
    if (signal.aborted) return;
    const final = await this.storage.rag.getIndex(index.id);
    if (!final || final.status !== 'processing') return;
    const now = new Date().toISOString();
    const ready = final.documentsIndexed > 0;
    let extra: Partial<Pick<RagIndex, 'fusion'>> = {};
    if (ready) {
      await this.storage.rag.indexWritten(index.id);
      extra = await this.finish({ ...final, completedAt: now }, embedder, signal).catch((err: unknown) => {
        if (!signal.aborted) this.log.error({ err, index_id: index.id }, 'RAG fusion calibration failed: plain RRF');
        return { fusion: null };
      });
      if (signal.aborted) return;
    }
    const ended = await this.storage.rag.updateIndex(index.id, {
      status: ready ? 'ready' : 'failed',
      error: ready ? null : final.documentsTotal === 0 ? 'the dataset has no documents' : 'every document failed',
      ...extra,
      completedAt: now,
      updatedAt: now,
    });
    this.log.info(
      { index_id: index.id, status: ended?.status, documents: final.documentsIndexed, failed: final.documentsFailed, chunks: final.chunkCount, fusion: ended?.fusion },
      'RAG index build finished',
    );
    if (ended?.status === 'ready') this.onReady(ended);
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
    chunking: { maxTokens: number; overlap: number; tokens: (t: string) => number },
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
