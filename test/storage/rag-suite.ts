/**
 * The RAG repository's tests, part of the storage suite (suite.ts calls
 * ragRepositoryTests inside each store's describe), so SQLite and
 * PostgreSQL are held to the same behaviour: documents and chunks,
 * counters, vectors, lexical search with filters, deletion.
 */
import { randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import { InvalidCursorError } from '../../src/storage/errors.js';
import type { Dataset, NewRagChunk, RagDocument, RagIndex, Storage } from '../../src/storage/types.js';

const uid = (prefix: string) => `${prefix}_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
const at = (ms: number) => new Date(Date.UTC(2025, 0, 1) + ms).toISOString();

async function corpus(s: Storage, over: Partial<Dataset> = {}): Promise<Dataset> {
  const d: Dataset = {
    id: uid('ds'),
    name: 'corpus',
    type: 'rag_corpus',
    status: 'ready',
    recordCount: 0,
    metadata: {},
    error: null,
    createdAt: at(0),
    updatedAt: at(0),
    ...over,
  };
  await s.datasets.create(d, []);
  return d;
}

function makeIndex(datasetId: string, over: Partial<RagIndex> = {}): RagIndex {
  return {
    id: uid('ri'),
    datasetId,
    status: 'processing',
    options: { chunk_tokens: 256, chunk_overlap: 32 },
    embeddingModel: 'fake-embedder',
    embeddingDimensions: 4,
    documentsTotal: 3,
    documentsIndexed: 0,
    documentsFailed: 0,
    chunkCount: 0,
    fusion: null,
    error: null,
    createdAt: at(0),
    startedAt: null,
    updatedAt: at(0),
    completedAt: null,
    ...over,
  };
}

const outcome = (indexId: string, docIndex: number, chunkCount: number, over: Partial<RagDocument> = {}): RagDocument => ({
  indexId,
  docIndex,
  docId: `doc-${docIndex}`,
  status: 'indexed',
  chunkCount,
  error: null,
  ...over,
});

function chunk(indexId: string, docIndex: number, ordinal: number, text: string, over: Partial<NewRagChunk> = {}): NewRagChunk {
  return {
    indexId,
    chunkId: `ch-${docIndex}-${ordinal}-${text.length}`,
    docIndex,
    docId: `doc-${docIndex}`,
    ordinal,
    start: ordinal * 100,
    end: ordinal * 100 + text.length,
    tokens: text.split(/\s+/).length,
    text,
    metadata: { lang: 'en', n: docIndex },
    vector: Float32Array.from([0.1 * (docIndex + 1), 0.2, -0.3, ordinal]),
    ...over,
  };
}

const without = <T extends object>(ch: T) => {
  const { vector: _v, ...rest } = ch as T & { vector?: unknown };
  return rest;
};

/** `s()` is the storage of the running test (fresh for each). */
export function ragRepositoryTests(s: () => Storage): void {
  it('creates, reads, updates and lists indexes newest first, by dataset and status, a page at a time', async () => {
    const a = await corpus(s());
    const b = await corpus(s());
    const indexes = [
      makeIndex(a.id, { createdAt: at(1), updatedAt: at(1) }),
      makeIndex(b.id, { createdAt: at(2), updatedAt: at(2), status: 'ready' }),
      makeIndex(a.id, { createdAt: at(3), updatedAt: at(3), status: 'failed', error: 'every document failed' }),
    ];
    for (const i of indexes) await s().rag.createIndex(i);
    expect(await s().rag.getIndex(indexes[0]!.id)).toEqual(indexes[0]);
    expect(await s().rag.getIndex('ri_missing')).toBeNull();

    const first = await s().rag.listIndexes({ limit: 2 });
    expect(first.items.map((i) => i.id)).toEqual([indexes[2]!.id, indexes[1]!.id]);
    const second = await s().rag.listIndexes({ limit: 2, cursor: first.nextCursor! });
    expect(second.items.map((i) => i.id)).toEqual([indexes[0]!.id]);
    expect(second.nextCursor).toBeNull();
    expect((await s().rag.listIndexes({ limit: 10, datasetId: a.id })).items.map((i) => i.id)).toEqual([indexes[2]!.id, indexes[0]!.id]);
    expect((await s().rag.listIndexes({ limit: 10, status: 'ready' })).items.map((i) => i.id)).toEqual([indexes[1]!.id]);
    await expect(s().rag.listIndexes({ limit: 10, cursor: 'bogus' })).rejects.toBeInstanceOf(InvalidCursorError);
    expect((await s().rag.indexesByStatus(['processing', 'failed'])).map((i) => i.id)).toEqual([indexes[0]!.id, indexes[2]!.id]);
    expect(await s().rag.indexesByStatus([])).toEqual([]);

    const fusion = { lexical: 1, dense: 0.25, queries: 64, lexicalMrr: 0.96, denseMrr: 0.24 };
    const updated = await s().rag.updateIndex(indexes[0]!.id, {
      status: 'ready',
      embeddingModel: 'other',
      embeddingDimensions: 8,
      fusion,
      startedAt: at(5),
      completedAt: at(9),
      updatedAt: at(9),
    });
    const expected = { ...indexes[0], status: 'ready', embeddingModel: 'other', embeddingDimensions: 8, fusion, startedAt: at(5), completedAt: at(9), updatedAt: at(9) };
    expect(updated).toEqual(expected);
    expect(await s().rag.getIndex(indexes[0]!.id)).toEqual(expected);
    expect(await s().rag.updateIndex(indexes[0]!.id, { fusion: null })).toMatchObject({ fusion: null });
    expect(await s().rag.updateIndex('ri_missing', { status: 'failed' })).toBeNull();
    // Compare-and-set: a build that is no longer processing is not ended again.
    expect(await s().rag.updateIndex(indexes[0]!.id, { status: 'failed', error: 'late' }, ['processing'])).toBeNull();
    expect(await s().rag.getIndex(indexes[0]!.id)).toMatchObject({ status: 'ready', error: null });
    expect(await s().rag.updateIndex(indexes[0]!.id, { status: 'failed', error: 'now' }, ['ready', 'processing'])).toMatchObject({ status: 'failed', error: 'now' });
  });

  it('stores documents with their chunks, moves the counters, and is idempotent per document', async () => {
    const d = await corpus(s());
    const index = makeIndex(d.id);
    await s().rag.createIndex(index);
    const doc0 = [chunk(index.id, 0, 0, 'The quick brown fox.'), chunk(index.id, 0, 1, 'It jumps over the lazy dog.')];
    await s().rag.putDocument(outcome(index.id, 0, 2), doc0);
    await s().rag.putDocument(outcome(index.id, 0, 2), doc0);
    await s().rag.putDocument(outcome(index.id, 1, 0, { status: 'failed', error: 'embedding failed' }), []);
    expect(await s().rag.getIndex(index.id)).toMatchObject({ documentsIndexed: 1, documentsFailed: 1, chunkCount: 2 });
    expect([...(await s().rag.doneDocuments(index.id))].sort()).toEqual([0, 1]);

    // A rebuild of document 0 keeps the unchanged chunk's row (and key), drops the other.
    const before = await s().rag.vectors(index.id, -1, 10);
    const doc0b = [doc0[0]!, chunk(index.id, 0, 1, 'It sleeps.'), chunk(index.id, 0, 2, 'The end.')];
    await s().rag.putDocument(outcome(index.id, 0, 3), doc0b);
    expect(await s().rag.getIndex(index.id)).toMatchObject({ documentsIndexed: 1, documentsFailed: 1, chunkCount: 3 });
    const after = await s().rag.vectors(index.id, -1, 10);
    expect(after).toHaveLength(3);
    expect(after[0]!.key).toBe(before[0]!.key);
    const stored = await s().rag.chunks(index.id, after.map((v) => v.key));
    expect(stored.map(without).sort((x, y) => x.ordinal - y.ordinal)).toEqual(
      doc0b.map((c, i) => ({ ...without(c), key: after[i]!.key })),
    );

    // The failed document succeeds on a retry; then document 0 fails.
    await s().rag.putDocument(outcome(index.id, 1, 1), [chunk(index.id, 1, 0, 'Second document.')]);
    expect(await s().rag.getIndex(index.id)).toMatchObject({ documentsIndexed: 2, documentsFailed: 0, chunkCount: 4 });
    await s().rag.putDocument(outcome(index.id, 0, 0, { status: 'failed', error: 'x' }), []);
    expect(await s().rag.getIndex(index.id)).toMatchObject({ documentsIndexed: 1, documentsFailed: 1, chunkCount: 1 });
    expect(await s().rag.vectors(index.id, -1, 10)).toHaveLength(1);
    expect(await s().rag.lexicalSearch(index.id, ['fox'], undefined, 10)).toEqual([]);
  });

  it('refuses chunks of another document, wrong counts, and documents of a missing index', async () => {
    const d = await corpus(s());
    const index = makeIndex(d.id);
    await s().rag.createIndex(index);
    await expect(s().rag.putDocument(outcome(index.id, 0, 1), [chunk(index.id, 1, 0, 'x')])).rejects.toThrow(/belongs/);
    await expect(s().rag.putDocument(outcome(index.id, 0, 2), [chunk(index.id, 0, 0, 'x')])).rejects.toThrow(/chunks/);
    await expect(s().rag.putDocument(outcome('ri_missing', 0, 1), [chunk('ri_missing', 0, 0, 'x')])).rejects.toThrow(/not found/);
    expect(await s().rag.getIndex(index.id)).toMatchObject({ documentsIndexed: 0, chunkCount: 0 });
  });

  it('returns vectors exactly as float32, in key order, a page at a time, and by chunk id', async () => {
    const d = await corpus(s());
    const index = makeIndex(d.id);
    await s().rag.createIndex(index);
    const v = Float32Array.from([Math.PI, -0, 1e-30, -123.456]);
    const chunks = [0, 1, 2].map((i) => chunk(index.id, 0, i, `chunk ${i}`, { vector: i === 1 ? v : Float32Array.from([i, i, i, i]) }));
    await s().rag.putDocument(outcome(index.id, 0, 3), chunks);
    const page1 = await s().rag.vectors(index.id, -1, 2);
    const page2 = await s().rag.vectors(index.id, page1.at(-1)!.key, 2);
    const all = [...page1, ...page2];
    expect(all).toHaveLength(3);
    expect(all.map((x) => x.key)).toEqual([...all.map((x) => x.key)].sort((a, b) => a - b));
    const byVector = all.find((x) => x.vector[0] === v[0]);
    expect(byVector && Array.from(byVector.vector)).toEqual(Array.from(v));
    expect(all[0]).toMatchObject({ docIndex: 0, metadata: { lang: 'en', n: 0 } });
    const reuse = await s().rag.chunkVectors(index.id, [chunks[1]!.chunkId, 'missing']);
    expect([...reuse.keys()]).toEqual([chunks[1]!.chunkId]);
    expect(Array.from(reuse.get(chunks[1]!.chunkId)!)).toEqual(Array.from(v));
    expect((await s().rag.chunkVectors(index.id, [])).size).toBe(0);
  });

  it('searches lexically: stemmed, ranked, within one index, any term', async () => {
    const d = await corpus(s());
    const index = makeIndex(d.id);
    const other = makeIndex(d.id);
    await s().rag.createIndex(index);
    await s().rag.createIndex(other);
    const texts = [
      'The server compresses files with gzip before sending them.',
      'Running tests: the runner starts a server and runs every test file.',
      'Kittens sleep all day long in the sun.',
    ];
    for (const [i, text] of texts.entries()) {
      await s().rag.putDocument(outcome(index.id, i, 1), [chunk(index.id, i, 0, text)]);
    }
    await s().rag.putDocument(outcome(other.id, 0, 1), [chunk(other.id, 0, 0, 'gzip gzip gzip compresses')]);
    const keys = await s().rag.vectors(index.id, -1, 10);
    const keyOf = (docIndex: number) => keys.find((k) => k.docIndex === docIndex)!.key;

    const gzip = await s().rag.lexicalSearch(index.id, ['gzip'], undefined, 10);
    expect(gzip.map((r) => r.key)).toEqual([keyOf(0)]);
    expect(gzip[0]!.score).toBeGreaterThan(0);
    // "run" matches "Running", "runner"? (stemming differs) and "runs": document 1 either way.
    expect((await s().rag.lexicalSearch(index.id, ['run'], undefined, 10)).map((r) => r.key)).toEqual([keyOf(1)]);
    // Any term: both server documents, the one with more matching terms first.
    const server = await s().rag.lexicalSearch(index.id, ['server', 'tests', 'runs'], undefined, 10);
    expect(server.map((r) => r.key)).toEqual([keyOf(1), keyOf(0)]);
    expect(server[0]!.score).toBeGreaterThan(server[1]!.score);
    expect(await s().rag.lexicalSearch(index.id, ['server'], undefined, 1)).toHaveLength(1);
    expect(await s().rag.lexicalSearch(index.id, ['nothingmatches'], undefined, 10)).toEqual([]);
    expect(await s().rag.lexicalSearch(index.id, [], undefined, 10)).toEqual([]);
  });

  it('prunes on request: chunks holding only common terms are skipped, the others keep their scores', async () => {
    const d = await corpus(s());
    const index = makeIndex(d.id);
    await s().rag.createIndex(index);
    // "widget" is in 8 of 10 chunks, "sprocket" in 2 (one of them with "widget"), "gear" in 1.
    const texts = Array.from({ length: 10 }, (_, i) =>
      [i < 8 ? 'widget parts list' : 'other parts', i === 2 || i === 9 ? 'sprocket' : '', i === 5 ? 'gear' : '', `filler${i}`].join(' '),
    );
    for (const [i, text] of texts.entries()) await s().rag.putDocument(outcome(index.id, i, 1), [chunk(index.id, i, 0, text)]);
    await s().rag.indexWritten(index.id);
    const keys = await s().rag.vectors(index.id, -1, 20);
    const docOf = new Map(keys.map((k) => [k.key, k.docIndex]));
    const terms = ['widget', 'sprocket', 'gear'];
    const full = await s().rag.lexicalSearch(index.id, terms, undefined, 20);
    expect(full.map((r) => docOf.get(r.key)).sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 9]);
    const pruned = await s().rag.lexicalSearch(index.id, terms, undefined, 20, { commonDocs: 5 });
    expect(pruned.map((r) => docOf.get(r.key)).sort()).toEqual([2, 5, 9]);
    for (const r of pruned) expect(r.score).toBeCloseTo(full.find((f) => f.key === r.key)!.score, 5);
    // Every term common: the least common ("widget", in 8 of 10) is taken as rare; none common: nothing to prune.
    const allCommon = await s().rag.lexicalSearch(index.id, ['widget', 'parts'], undefined, 20, { commonDocs: 5 });
    expect(allCommon.map((r) => docOf.get(r.key)).sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect((await s().rag.lexicalSearch(index.id, ['sprocket', 'gear'], undefined, 20, { commonDocs: 5 })).map((r) => docOf.get(r.key)).sort()).toEqual([2, 5, 9]);
    // With a filter too, and a limit.
    const filtered = await s().rag.lexicalSearch(index.id, terms, { n: 5 }, 20, { commonDocs: 5 });
    expect(filtered.map((r) => docOf.get(r.key))).toEqual([5]);
    expect(await s().rag.lexicalSearch(index.id, terms, undefined, 2, { commonDocs: 5 })).toEqual(pruned.slice(0, 2));
  });

  it('never reads query terms as search syntax', async () => {
    const d = await corpus(s());
    const index = makeIndex(d.id);
    await s().rag.createIndex(index);
    await s().rag.putDocument(outcome(index.id, 0, 1), [chunk(index.id, 0, 0, 'NEAR the AND gate, OR else: a "quoted" star*')]);
    for (const terms of [['and'], ['or'], ['near'], ['"quoted'], ['star*'], ['a"b', ')'], ['index_key'], ['-', '^', ':']]) {
      await expect(s().rag.lexicalSearch(index.id, terms, undefined, 10)).resolves.toBeInstanceOf(Array);
    }
    expect(await s().rag.lexicalSearch(index.id, ['gate'], undefined, 10)).toHaveLength(1);
  });

  it('filters lexical matches on document metadata: strings, numbers, booleans, null, several keys', async () => {
    const d = await corpus(s());
    const index = makeIndex(d.id);
    await s().rag.createIndex(index);
    const metas = [
      { pkg: 'gzip', year: 2020, stable: true, owner: null, 'odd "key".x': 'v' },
      { pkg: 'tar', year: 2021.0, stable: false, tags: ['gzip'] },
      { pkg: 'gzip', year: '2020', stable: 'true', nested: { pkg: 'gzip' } },
    ];
    for (const [i, metadata] of metas.entries()) {
      await s().rag.putDocument(outcome(index.id, i, 1), [chunk(index.id, i, 0, 'compression tools and archives', { metadata })]);
    }
    const keys = await s().rag.vectors(index.id, -1, 10);
    const docs = async (filter: Record<string, string | number | boolean | null>) => {
      const found = await s().rag.lexicalSearch(index.id, ['compression'], filter, 10);
      const byKey = new Map(keys.map((k) => [k.key, k.docIndex]));
      return found.map((r) => byKey.get(r.key)).sort();
    };
    expect(await docs({})).toEqual([0, 1, 2]);
    expect(await docs({ pkg: 'gzip' })).toEqual([0, 2]);
    expect(await docs({ year: 2020 })).toEqual([0]);
    expect(await docs({ year: 2021 })).toEqual([1]);
    expect(await docs({ year: '2020' })).toEqual([2]);
    expect(await docs({ stable: true })).toEqual([0]);
    expect(await docs({ stable: false })).toEqual([1]);
    expect(await docs({ owner: null })).toEqual([0]);
    expect(await docs({ pkg: 'gzip', stable: true })).toEqual([0]);
    expect(await docs({ 'odd "key".x': 'v' })).toEqual([0]);
    expect(await docs({ tags: 'gzip' })).toEqual([]);
    expect(await docs({ missing: 'x' })).toEqual([]);
  });

  it('starts an index over, deletes chunks a batch at a time, and deletes indexes with everything in them', async () => {
    const d = await corpus(s());
    const index = makeIndex(d.id);
    await s().rag.createIndex(index);
    for (let i = 0; i < 3; i++) await s().rag.putDocument(outcome(index.id, i, 2), [chunk(index.id, i, 0, `alpha ${i}`), chunk(index.id, i, 1, `beta ${i}`)]);
    expect(await s().rag.getIndex(index.id)).toMatchObject({ documentsIndexed: 3, chunkCount: 6 });

    const reset = await s().rag.resetIndex(index.id, { status: 'processing', error: null, completedAt: null, updatedAt: at(50) });
    expect(reset).toMatchObject({ documentsIndexed: 0, documentsFailed: 0, chunkCount: 0, status: 'processing', updatedAt: at(50) });
    expect((await s().rag.doneDocuments(index.id)).size).toBe(0);
    // The chunks stay until their documents are stored again (their vectors can be reused).
    expect(await s().rag.vectors(index.id, -1, 10)).toHaveLength(6);
    expect(await s().rag.deleteChunks(index.id, 4)).toBe(4);
    expect(await s().rag.deleteChunks(index.id, 4)).toBe(2);
    expect(await s().rag.deleteChunks(index.id, 4)).toBe(0);
    expect(await s().rag.lexicalSearch(index.id, ['alpha'], undefined, 10)).toEqual([]);

    await s().rag.putDocument(outcome(index.id, 0, 1), [chunk(index.id, 0, 0, 'gamma')]);
    expect(await s().rag.datasetBuilding(d.id)).toBe(true);
    await s().rag.updateIndex(index.id, { status: 'ready' });
    expect(await s().rag.datasetBuilding(d.id)).toBe(false);
    expect(await s().rag.deleteIndex(index.id)).toBe(true);
    expect(await s().rag.deleteIndex(index.id)).toBe(false);
    expect(await s().rag.getIndex(index.id)).toBeNull();
    expect(await s().rag.vectors(index.id, -1, 10)).toEqual([]);
    expect(await s().rag.lexicalSearch(index.id, ['gamma'], undefined, 10)).toEqual([]);
  });

  it("goes with its dataset, and a new index never finds another's chunks", async () => {
    const d = await corpus(s());
    const index = makeIndex(d.id);
    await s().rag.createIndex(index);
    await s().rag.putDocument(outcome(index.id, 0, 1), [chunk(index.id, 0, 0, 'delta epsilon')]);
    const keys = (await s().rag.vectors(index.id, -1, 10)).map((v) => v.key);
    expect(await s().datasets.delete(d.id)).toBe(true);
    expect(await s().rag.getIndex(index.id)).toBeNull();
    expect(await s().rag.chunks(index.id, keys)).toEqual([]);
    const d2 = await corpus(s());
    const fresh = makeIndex(d2.id);
    await s().rag.createIndex(fresh);
    await s().rag.putDocument(outcome(fresh.id, 0, 1), [chunk(fresh.id, 0, 0, 'zeta')]);
    expect(await s().rag.lexicalSearch(fresh.id, ['delta'], undefined, 10)).toEqual([]);
    expect(await s().rag.chunks(fresh.id, keys)).toEqual([]);
  });

  it('cleans text it cannot store faithfully, like every other table', async () => {
    const d = await corpus(s());
    const index = makeIndex(d.id);
    await s().rag.createIndex(index);
    await s().rag.putDocument(outcome(index.id, 0, 1), [chunk(index.id, 0, 0, 'bad \u0000 byte \ud800 here', { metadata: { k: 'x\u0000' } })]);
    const [v] = await s().rag.vectors(index.id, -1, 10);
    const [c] = await s().rag.chunks(index.id, [v!.key]);
    expect(c).toMatchObject({ text: 'bad \uFFFD byte \uFFFD here', metadata: { k: 'x\uFFFD' } });
  });
}
