/**
 * The RAG service over a real SQLite store and a fake embedder: builds from
 * upload to ready, failed documents, resumed builds, rebuilds, retrieval in
 * every mode with filters, and the errors each surface maps.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ModelNotLoadedError } from '../../src/engine/errors.js';
import type { RequestContext } from '../../src/services/context.js';
import { DatasetService } from '../../src/services/datasets/service.js';
import type { Embedder } from '../../src/services/embeddings/types.js';
import { publicError } from '../../src/services/errors.js';
import type { EmbedderSource } from '../../src/services/rag/index-builder.js';
import { RagService } from '../../src/services/rag/service.js';
import { BuildRagIndexSchema, RagSearchSchema } from '../../src/services/rag-schema.js';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import type { RagIndex, Storage } from '../../src/storage/types.js';
import { FakeEmbedder } from '../helpers/fake-embedder.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rag-service-'));
let dirs = 0;
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const silent = { info() {}, warn() {}, error() {}, debug() {} } as never;
const ctx = (): RequestContext => ({ requestId: 'r', keyId: null, signal: new AbortController().signal });

/** An embedding host stand-in whose model can be swapped, or held loading. */
class Source implements EmbedderSource {
  state: 'loading' | 'ready' | 'failed' = 'ready';
  private waiters: Array<(e: Embedder) => void> = [];
  constructor(public embedder: Embedder) {}
  require(): Embedder {
    if (this.state !== 'ready') throw new ModelNotLoadedError('loading', undefined, 'embedding model');
    return this.embedder;
  }
  whenReady(): Promise<Embedder> {
    return this.state === 'ready' ? Promise.resolve(this.embedder) : new Promise((r) => this.waiters.push(r));
  }
  becomeReady(): void {
    this.state = 'ready';
    for (const w of this.waiters.splice(0)) w(this.embedder);
  }
}

const DOCS = [
  { doc_id: 'gzip', text: 'gzip compresses files. Use gzip -d or gunzip to decompress a .gz file.', metadata: { pkg: 'gzip', section: 1 } },
  { doc_id: 'tar', text: 'tar creates archives. tar -x extracts files from an archive; tar -c creates one.', metadata: { pkg: 'tar', section: 1 } },
  { doc_id: 'cron', text: 'cron runs scheduled jobs. Edit the crontab to schedule a job every minute or hour.', metadata: { pkg: 'cron', section: 8 } },
  { doc_id: 'ssh', text: 'ssh opens a secure shell on a remote host. Keys live in the .ssh directory.', metadata: { pkg: 'openssh', section: 1 } },
];

/** Long enough to need several chunks at 16 tokens. */
const LONG = {
  doc_id: 'long',
  text: Array.from({ length: 30 }, (_, i) => `Sentence number ${i} talks about topic${i} at some length here.`).join(' '),
  metadata: { pkg: 'long' },
};

describe('RagService', () => {
  let storage: Storage;
  let embedder: FakeEmbedder;
  let source: Source;
  let rag: RagService;
  let datasets: DatasetService;

  const open = async (e = new FakeEmbedder({ dimensions: 64 })) => {
    embedder = e;
    source = new Source(e);
    rag = new RagService(storage, source, silent, { limits: { concurrency: 2, embedBatch: 4, attempts: 2 } });
    datasets = new DatasetService(storage, rag);
  };

  beforeEach(async () => {
    storage = await openSqliteStorage(path.join(root, `db${dirs++}`));
    await open();
  });
  afterEach(async () => {
    await rag.stop();
    await storage.close();
  });

  const upload = async (records: unknown[], type: 'rag_corpus' | 'eval_set' = 'rag_corpus') =>
    datasets.create({ fields: { name: 'docs', type }, records });

  /** Polls until the index leaves processing. */
  const settled = async (id: string): Promise<RagIndex> => {
    for (let i = 0; i < 500; i++) {
      const index = await rag.get(id);
      if (index.status !== 'processing') return index;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('index never settled');
  };

  const search = (body: Record<string, unknown>) => rag.search(RagSearchSchema.parse(body), ctx());

  it('builds the index of an uploaded corpus and retrieves from it in every mode', async () => {
    const { dataset, indexId } = await upload(DOCS);
    expect(indexId).toMatch(/^ri_[0-9a-f]{24}$/);
    const index = await settled(indexId!);
    expect(index).toMatchObject({
      datasetId: dataset.id,
      status: 'ready',
      documentsTotal: 4,
      documentsIndexed: 4,
      documentsFailed: 0,
      chunkCount: 4,
      embeddingModel: 'fake-bow',
      embeddingDimensions: 64,
      options: { chunk_tokens: 256, chunk_overlap: 32 },
      error: null,
    });
    expect(index.startedAt).not.toBeNull();
    expect(index.completedAt).not.toBeNull();
    // Both retrievers find every pseudo-query's document here: plain RRF.
    expect(index.fusion).toEqual({ lexical: 1, dense: 1, queries: 4, lexicalMrr: 1, denseMrr: 1 });

    for (const mode of ['hybrid', 'lexical', 'dense'] as const) {
      const r = await search({ query: 'how do I decompress a gz file', dataset_id: dataset.id, mode, top_k: 3 });
      expect(r.results[0]!.chunk.docId).toBe('gzip');
      expect(r.results.length).toBeLessThanOrEqual(3);
      expect(r).toMatchObject({ mode, topK: 3, index: { id: indexId } });
    }
    const hybrid = await search({ query: 'extract files from an archive', index_id: indexId });
    const top = hybrid.results[0]!;
    expect(top.chunk).toMatchObject({ docId: 'tar', start: 0, end: DOCS[1]!.text.length, text: DOCS[1]!.text, metadata: { pkg: 'tar', section: 1 } });
    expect(top.lexicalRank).toBe(1);
    expect(top.denseRank).toBe(1);
    expect(top.score).toBeCloseTo(2 / 61, 10);
    expect(hybrid.candidates.lexical).toBeGreaterThan(0);
    expect(hybrid.candidates.dense).toBe(4);
    expect(hybrid.denseMethod).toBe('exact');

    const lexical = await search({ query: 'extract files from an archive', index_id: indexId, mode: 'lexical' });
    expect(lexical.results.every((h) => h.denseRank === null)).toBe(true);
    expect(lexical.embeddingMs).toBe(0);
    expect(lexical.denseMethod).toBeNull();
    const dense = await search({ query: 'extract files from an archive', index_id: indexId, mode: 'dense' });
    expect(dense.results).toHaveLength(4);
    expect(dense.results[0]!.score).toBeGreaterThan(dense.results[1]!.score);
  });

  it('weighs a dense retriever no better than chance near zero, so hybrid keeps the lexical order', async () => {
    /** Vectors that say nothing about the text: a seeded random unit vector per text. */
    class NoiseEmbedder extends FakeEmbedder {
      override vector(text: string): Float32Array {
        let seed = [...text].reduce((h, c) => (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0, 7);
        const v = Float32Array.from({ length: this.info.dimensions }, () => {
          seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
          return seed / 2 ** 32 - 0.5;
        });
        const n = Math.hypot(...v);
        return v.map((x) => x / n);
      }
    }
    await open(new NoiseEmbedder({ dimensions: 64 }));
    const docs = Array.from({ length: 60 }, (_, i) => ({ doc_id: `n${i}`, text: `Note ${i} explains the term alpha${i} in plain words. It also covers beta${i} and gamma${i}.` }));
    const { indexId } = await upload(docs);
    const index = await settled(indexId!);
    expect(index.fusion!.queries).toBe(60);
    expect(index.fusion!.lexical).toBe(1);
    expect(index.fusion!.dense).toBeLessThan(0.3);
    for (const i of [3, 17, 42]) {
      const lexical = await search({ query: `what is beta${i}`, index_id: indexId, mode: 'lexical', top_k: 3 });
      const hybrid = await search({ query: `what is beta${i}`, index_id: indexId, top_k: 3 });
      expect(hybrid.results[0]!.chunk.docId).toBe(`n${i}`);
      expect(hybrid.results[0]!.chunk.docId).toBe(lexical.results[0]!.chunk.docId);
    }
  });

  it('filters both retrievers on document metadata', async () => {
    const { indexId } = await upload(DOCS);
    await settled(indexId!);
    const all = await search({ query: 'files', index_id: indexId, top_k: 10 });
    expect(all.results.map((h) => h.chunk.docId).sort()).toEqual(['cron', 'gzip', 'ssh', 'tar']);
    for (const mode of ['hybrid', 'lexical', 'dense'] as const) {
      const r = await search({ query: 'files', index_id: indexId, mode, top_k: 10, filter: { section: 1, pkg: 'tar' } });
      expect(r.results.map((h) => h.chunk.docId)).toEqual(['tar']);
    }
    expect((await search({ query: 'files', index_id: indexId, filter: { section: '1' } })).results).toEqual([]);
  });

  it('cuts long documents into chunks with spans and stable ids', async () => {
    const { indexId, dataset } = await upload([LONG]);
    const first = await settled(indexId!);
    expect(first.chunkCount).toBeGreaterThan(1);
    const r = await search({ query: 'topic7', index_id: indexId, mode: 'lexical', top_k: 50 });
    const hit = r.results[0]!;
    expect([...LONG.text].slice(hit.chunk.start, hit.chunk.end).join('')).toBe(hit.chunk.text);
    expect(hit.chunk.text).toContain('topic7');

    // Another index of the same dataset with the same options cuts the same chunks.
    const again = await rag.build(BuildRagIndexSchema.parse({ dataset_id: dataset.id, chunk_tokens: 256, chunk_overlap: 32 }));
    expect(again.id).toBe(indexId);
    await settled(indexId!);
    const r2 = await search({ query: 'topic7', index_id: indexId, mode: 'lexical', top_k: 50 });
    expect(r2.results.map((h) => h.chunk.chunkId)).toEqual(r.results.map((h) => h.chunk.chunkId));
  });

  it('fails a document that cannot be embedded, not the index; fails the index when every document fails', async () => {
    await open(new FakeEmbedder({ failOn: (t) => t.includes('POISON') }));
    const { indexId } = await upload([...DOCS, { doc_id: 'bad', text: 'POISON pill text', metadata: {} }]);
    const index = await settled(indexId!);
    expect(index).toMatchObject({ status: 'ready', documentsIndexed: 4, documentsFailed: 1, documentsTotal: 5 });
    expect((await search({ query: 'pill', index_id: indexId, mode: 'lexical' })).results).toEqual([]);

    const { indexId: allBad } = await upload([{ doc_id: 'x', text: 'POISON one' }, { doc_id: 'y', text: 'POISON two' }]);
    const failed = await settled(allBad!);
    expect(failed).toMatchObject({ status: 'failed', documentsFailed: 2, documentsIndexed: 0, error: 'every document failed' });
    await expect(search({ query: 'x', index_id: allBad })).rejects.toSatisfy((err: unknown) => {
      const e = publicError(err);
      return e.code === 'conflict' && (e.details as { status: string; error: string }).status === 'failed' && (e.details as { error: string }).error === 'every document failed';
    });
  });

  it('answers 409 with the progress while processing, 404 for unknown indexes and datasets, 400 for an eval set', async () => {
    await open(new FakeEmbedder({ delayMs: 200 }));
    const { indexId, dataset } = await upload(DOCS);
    const err = await search({ query: 'gzip', index_id: indexId }).catch((e: unknown) => publicError(e));
    expect(err).toMatchObject({ code: 'conflict', details: { index_id: indexId, status: 'processing', progress: { total: 4, completed: 0, failed: 0 } } });
    // By dataset too: its only index is processing.
    expect(await search({ query: 'gzip', dataset_id: dataset.id }).catch((e: unknown) => publicError(e).code)).toBe('conflict');

    expect(await rag.get('ri_nope').catch((e: unknown) => publicError(e))).toMatchObject({ code: 'not_found', details: { index_id: 'ri_nope' } });
    expect(await search({ query: 'q', dataset_id: 'ds_nope' }).catch((e: unknown) => publicError(e))).toMatchObject({ code: 'not_found', details: { dataset_id: 'ds_nope' } });
    const evals = await upload([{ input: { prompt: 'hi' } }], 'eval_set');
    expect(evals.indexId).toBeNull();
    expect(await search({ query: 'q', dataset_id: evals.dataset.id }).catch((e: unknown) => publicError(e))).toMatchObject({
      code: 'invalid_request',
      details: { field: 'dataset_id', dataset_type: 'eval_set' },
    });
    expect(await rag.build(BuildRagIndexSchema.parse({ dataset_id: evals.dataset.id })).catch((e: unknown) => publicError(e).code)).toBe('invalid_request');
  });

  it('resumes a build a restart interrupted, without embedding finished documents again or duplicating chunks', async () => {
    await open(new FakeEmbedder({ delayMs: 30 }));
    const docs = Array.from({ length: 24 }, (_, i) => ({ doc_id: `d${i}`, text: `Document ${i} is about subject${i}.` }));
    const { indexId } = await upload(docs);
    for (let i = 0; i < 500 && (await rag.get(indexId!)).documentsIndexed < 6; i++) await new Promise((r) => setTimeout(r, 10));
    await rag.stop();
    const stopped = await rag.get(indexId!);
    expect(stopped.status).toBe('processing');
    expect(stopped.documentsIndexed).toBeGreaterThanOrEqual(6);
    expect(stopped.documentsIndexed).toBeLessThan(24);

    await open(new FakeEmbedder());
    expect(await rag.resumeAll()).toBe(1);
    const done = await settled(indexId!);
    expect(done).toMatchObject({ status: 'ready', documentsIndexed: 24, chunkCount: 24 });
    // What this run embedded: the documents not done before, and the calibration's pseudo-queries.
    expect(embedder.embedded.length - done.fusion!.queries).toBeLessThanOrEqual(24 - stopped.documentsIndexed);
    expect(await storage.rag.vectors(indexId!, -1, 100)).toHaveLength(24);
    expect((await search({ query: 'subject17', index_id: indexId })).results[0]!.chunk.docId).toBe('d17');
  });

  it('rebuilds with the same options in place, reusing vectors; other options make another index', async () => {
    const { indexId, dataset } = await upload(DOCS);
    await settled(indexId!);
    const embeddedOnce = embedder.embedded.length;
    const rebuilt = await rag.build(BuildRagIndexSchema.parse({ dataset_id: dataset.id }));
    expect(rebuilt).toMatchObject({ id: indexId, status: 'processing', documentsIndexed: 0, completedAt: null });
    const again = await settled(indexId!);
    expect(again).toMatchObject({ status: 'ready', documentsIndexed: 4, chunkCount: 4 });
    // No chunk embedded again: only the new calibration's pseudo-queries.
    expect(embedder.embedded.length).toBe(embeddedOnce + again.fusion!.queries);

    const other = await rag.build(BuildRagIndexSchema.parse({ dataset_id: dataset.id, chunk_tokens: 64, chunk_overlap: 8 }));
    expect(other.id).not.toBe(indexId);
    expect(other.options).toEqual({ chunk_tokens: 64, chunk_overlap: 8 });
    // While the new one builds, the dataset is searched through its ready one.
    expect((await search({ query: 'cron', dataset_id: dataset.id })).index.id).toBe(indexId);
    await settled(other.id);
    const page = await rag.list({ dataset_id: dataset.id, limit: 10 });
    expect(page.items.map((i) => i.id)).toEqual([other.id, indexId]);
    // Building it again while it builds returns it as it is.
    await open(new FakeEmbedder({ delayMs: 100 }));
    const third = await rag.build(BuildRagIndexSchema.parse({ dataset_id: dataset.id, chunk_tokens: 32, chunk_overlap: 0 }));
    expect((await rag.build(BuildRagIndexSchema.parse({ dataset_id: dataset.id, chunk_tokens: 32, chunk_overlap: 0 }))).id).toBe(third.id);
  });

  it('starts over when the embedding model changed, and refuses dense search with vectors of another model', async () => {
    const { indexId, dataset } = await upload(DOCS);
    await settled(indexId!);
    await rag.stop();
    await open(new FakeEmbedder({ model: 'other-model', dimensions: 32 }));
    const err = await search({ query: 'gzip', index_id: indexId }).catch((e: unknown) => publicError(e));
    expect(err).toMatchObject({ code: 'conflict', details: { index_model: 'fake-bow', embedding_model: 'other-model' } });
    expect((await search({ query: 'gzip', index_id: indexId, mode: 'lexical' })).results[0]!.chunk.docId).toBe('gzip');
    await rag.build(BuildRagIndexSchema.parse({ dataset_id: dataset.id }));
    const rebuilt = await settled(indexId!);
    expect(rebuilt).toMatchObject({ status: 'ready', embeddingModel: 'other-model', embeddingDimensions: 32, chunkCount: 4 });
    expect(embedder.embedded).toHaveLength(4 + rebuilt.fusion!.queries);
    expect((await search({ query: 'gzip', index_id: indexId })).results[0]!.chunk.docId).toBe('gzip');
  });

  it('waits for the embedding model; dense search meanwhile is a 503, lexical needs no model', async () => {
    source.state = 'loading';
    const { indexId } = await upload(DOCS);
    await new Promise((r) => setTimeout(r, 50));
    expect(await rag.get(indexId!)).toMatchObject({ status: 'processing', embeddingModel: null, startedAt: null });
    source.becomeReady();
    await settled(indexId!);
    source.state = 'loading';
    expect(await search({ query: 'gzip', index_id: indexId }).catch((e: unknown) => publicError(e).code)).toBe('service_unavailable');
    expect((await search({ query: 'gzip', index_id: indexId, mode: 'lexical' })).results).not.toHaveLength(0);
  });

  it('deletes indexes (a build under way stops first) and refuses to delete a dataset while its index builds', async () => {
    await open(new FakeEmbedder({ delayMs: 100 }));
    const { indexId, dataset } = await upload(DOCS);
    expect(await datasets.delete(dataset.id).catch((e: unknown) => publicError(e))).toMatchObject({ code: 'conflict', details: { dataset_id: dataset.id } });
    await rag.delete(indexId!);
    expect(await rag.get(indexId!).catch((e: unknown) => publicError(e).code)).toBe('not_found');
    expect(await storage.rag.vectors(indexId!, -1, 10)).toEqual([]);
    expect(await rag.delete(indexId!).catch((e: unknown) => publicError(e).code)).toBe('not_found');

    const { indexId: second, dataset: d2 } = await upload(DOCS);
    await settled(second!);
    await datasets.delete(d2.id);
    expect(await rag.get(second!).catch((e: unknown) => publicError(e).code)).toBe('not_found');
    await datasets.delete(dataset.id);
  });
});
