/**
 * RAG indexes and retrieval through the real server: a rag_corpus upload
 * starts a build, REST and GraphQL report and search the index, errors
 * have the contract's codes, and a build a restart interrupts resumes.
 * The embedding model is whatever the server loads with no configuration
 * here: the decoder fallback (stories260K's mean-pooled hidden states).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storiesModel } from '../helpers/models.js';
import { authHeaders, gql, postJson, readSse, startServer, type RunningServer } from '../helpers/server.js';

const TOPICS = [
  { doc_id: 'gzip', text: 'gzip reduces the size of files. To decompress a .gz file run gunzip or gzip -d.', metadata: { pkg: 'gzip', kind: 'tool' } },
  { doc_id: 'tar', text: 'tar bundles many files into one archive. Extract an archive with tar -x and create one with tar -c.', metadata: { pkg: 'tar', kind: 'tool' } },
  { doc_id: 'cron', text: 'The cron daemon runs scheduled jobs. Each user edits a crontab to schedule commands.', metadata: { pkg: 'cron', kind: 'daemon' } },
  { doc_id: 'sshd', text: 'The OpenSSH daemon accepts secure shell logins. Its configuration lives in sshd_config.', metadata: { pkg: 'openssh', kind: 'daemon' } },
];

/** n filler documents, long enough to take a while to build. */
const filler = (n: number, tag = 'filler') =>
  Array.from({ length: n }, (_, i) => ({
    doc_id: `${tag}-${i}`,
    text: Array.from({ length: 12 }, (_, j) => `Paragraph ${j} of ${tag} document ${i} mentions widget${i} and gadget${j}.`).join('\n\n'),
  }));

describe.skipIf(!storiesModel.present)(storiesModel.title('RAG indexes and retrieval'), () => {
  let server: RunningServer;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rag-it-'));
  const get = async (p: string) => {
    const res = await fetch(`${server.url}${p}`, { headers: authHeaders });
    return { status: res.status, json: (await res.json()) as any };
  };
  const post = (p: string, body: unknown) => postJson(`${server.url}${p}`, body);
  const ready = async (indexId: string, timeoutMs = 120_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await get(`/v1/rag/indexes/${indexId}`);
      if (r.status !== 200) throw new Error(`GET index ${indexId}: ${r.status} ${JSON.stringify(r.json)}`);
      if (r.json.status !== 'processing') return r.json;
      if (Date.now() > deadline) throw new Error(`index ${indexId} still processing: ${JSON.stringify(r.json)}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  };

  // Builds are polled every 100 ms: no per-key rate limit here.
  const env = { DATA_DIR: dataDir, RATE_LIMIT_PER_MINUTE: '0' };
  beforeAll(async () => {
    server = await startServer(env);
  });
  afterAll(async () => {
    await server?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  let datasetId: string;
  let indexId: string;

  it('starts an index build with a rag_corpus upload and reports it until ready', async () => {
    const up = await post('/v1/datasets', { name: 'tools', type: 'rag_corpus', records: TOPICS });
    expect(up.status).toBe(201);
    expect(up.json.index_id).toMatch(/^ri_[0-9a-f]{24}$/);
    datasetId = up.json.dataset_id;
    indexId = up.json.index_id;
    const index = await ready(indexId);
    expect(index).toMatchObject({
      index_id: indexId,
      dataset_id: datasetId,
      status: 'ready',
      document_count: 4,
      chunk_count: 4,
      failed_document_count: 0,
      progress: { total: 4, completed: 4, failed: 0 },
      chunking: { chunk_tokens: 256, chunk_overlap: 32 },
      error: null,
    });
    expect(index.embedding_model).toEqual(expect.any(String));
    expect(index.embedding_dimensions).toBeGreaterThan(0);
    expect(index.fusion).toEqual({
      lexical_weight: expect.any(Number),
      dense_weight: expect.any(Number),
      calibration_queries: 4,
      lexical_mrr: expect.any(Number),
      dense_mrr: expect.any(Number),
    });
    expect(Math.max(index.fusion.lexical_weight, index.fusion.dense_weight)).toBe(1);
    for (const t of ['created_at', 'started_at', 'updated_at', 'completed_at']) expect(Date.parse(index[t])).not.toBeNaN();

    const evalSet = await post('/v1/datasets', { name: 'evals', type: 'eval_set', records: [{ input: { prompt: 'hi' } }] });
    expect(evalSet.json.index_id).toBeUndefined();
  });

  it('searches by index or dataset in each mode, with ranks, spans and metadata', async () => {
    const lexical = await post('/v1/rag/search', { query: 'how do I extract an archive', index_id: indexId, mode: 'lexical', top_k: 2 });
    expect(lexical.status).toBe(200);
    expect(lexical.json.results[0]).toEqual({
      doc_id: 'tar',
      chunk_id: expect.stringMatching(/^ch_[0-9a-f]{24}$/),
      score: expect.any(Number),
      text: TOPICS[1]!.text,
      lexical_rank: 1,
      dense_rank: null,
      span: { start: 0, end: TOPICS[1]!.text.length },
      metadata: { pkg: 'tar', kind: 'tool' },
    });
    expect(lexical.json.retrieval).toMatchObject({ index_id: indexId, dataset_id: datasetId, mode: 'lexical', top_k: 2, embedding_ms: 0, dense_method: null });
    expect(lexical.json.request_id).toEqual(expect.any(String));

    const hybrid = await post('/v1/rag/search', { query: 'how do I extract an archive', dataset_id: datasetId });
    expect(hybrid.status).toBe(200);
    expect(hybrid.json.retrieval).toMatchObject({ mode: 'hybrid', top_k: 5, candidates: { dense: 4 }, dense_method: 'exact' });
    expect(hybrid.json.results).toHaveLength(4);
    const tar = hybrid.json.results.find((r: any) => r.doc_id === 'tar');
    expect(tar.lexical_rank).toBe(1);
    expect(tar.dense_rank).toEqual(expect.any(Number));
    // Weighted RRF, with the index's calibrated weights.
    const { fusion } = (await get(`/v1/rag/indexes/${indexId}`)).json;
    expect(tar.score).toBeCloseTo(fusion.lexical_weight / 61 + fusion.dense_weight / (60 + tar.dense_rank), 10);

    const dense = await post('/v1/rag/search', { query: 'archive', index_id: indexId, mode: 'dense', top_k: 4 });
    expect(dense.json.results.map((r: any) => r.dense_rank)).toEqual([1, 2, 3, 4]);

    const filtered = await post('/v1/rag/search', { query: 'files jobs logins', index_id: indexId, filter: { kind: 'daemon' }, top_k: 10 });
    expect(filtered.json.results.map((r: any) => r.doc_id).sort()).toEqual(['cron', 'sshd']);
  });

  it('answers a question from the index, citing the chunks it read (POST /v1/rag and its alias)', async () => {
    const body = { query: 'How do I decompress a gz file?', index_id: indexId, top_k: 3, max_new_tokens: 24, temperature: 0 };
    const r = await post('/v1/rag', body);
    expect(r.status).toBe(200);
    expect(typeof r.json.answer).toBe('string');
    expect(r.json.citations.length).toBe(r.json.retrieval.used);
    expect(r.json.retrieval).toMatchObject({ index_id: indexId, dataset_id: datasetId, top_k: 3, retrieved: 3, mode: 'hybrid' });
    expect(r.json.retrieval.used).toBeGreaterThan(0);
    r.json.citations.forEach((c: any, i: number) => {
      expect(c).toMatchObject({ number: i + 1, doc_id: expect.any(String), chunk_id: expect.any(String), score: expect.any(Number), text: expect.any(String) });
      expect(typeof c.cited).toBe('boolean');
      expect('lexical_rank' in c && 'dense_rank' in c).toBe(true);
    });
    // Retrieval put the gzip document first, and the answer was generated by the served model.
    expect(r.json.citations[0].doc_id).toBe('gzip');
    expect(r.json.generation).toMatchObject({ model: 'stories260K', finish_reason: expect.stringMatching(/^(stop|length)$/), seed: null });
    expect(r.json.generation.prompt_tokens).toBeGreaterThan(0);
    expect(r.json.request_id).toEqual(expect.any(String));
    // Greedy: the alias and a dataset_id give the same answer.
    const again = await post('/v1/rag/query', { ...body, index_id: undefined, dataset_id: datasetId });
    expect(again.json.answer).toBe(r.json.answer);
  });

  it('never overflows the context window: the chunks that do not fit are left out, best first', async () => {
    // stories260K reads 512 tokens: with 400 of them kept for the answer, few sources fit.
    const r = await post('/v1/rag', { query: 'archive files', index_id: indexId, top_k: 4, max_new_tokens: 400, temperature: 0 });
    expect(r.status).toBe(200);
    expect(r.json.retrieval.used).toBeLessThan(r.json.retrieval.retrieved);
    expect(r.json.citations).toHaveLength(r.json.retrieval.used);
    expect(r.json.generation.prompt_tokens + r.json.generation.completion_tokens).toBeLessThanOrEqual(512);
  });

  it('streams an answer as chat does, over REST and GraphQL', async () => {
    const body = { query: 'Where is the sshd configuration?', index_id: indexId, max_new_tokens: 12, temperature: 0 };
    const whole = await post('/v1/rag', body);
    const res = await fetch(`${server.url}/v1/rag`, { method: 'POST', headers: authHeaders, body: JSON.stringify({ ...body, stream: true }) });
    const events = await readSse(res);
    const tokens = events.filter((e) => e.event === 'token').map((e) => e.data.token).join('');
    const done = events.find((e) => e.event === 'done')!;
    expect(tokens).toBe(whole.json.answer);
    expect(done.data.answer).toBe(whole.json.answer);
    const g = await gql(
      server.url,
      'mutation($i: RagInput!) { rag(input: $i) { answer citations { number cited hit { docId chunkId } } retrieval { used indexId } generation { model finishReason } } }',
      { i: { query: body.query, indexId, maxNewTokens: 12, temperature: 0 } },
    );
    expect(g.json.errors).toBeUndefined();
    expect(g.json.data.rag.answer).toBe(whole.json.answer);
    expect(g.json.data.rag.citations.map((c: any) => c.hit.chunkId)).toEqual(whole.json.citations.map((c: any) => c.chunk_id));
    const sub = await fetch(`${server.url}/graphql`, {
      method: 'POST',
      headers: { ...authHeaders, accept: 'text/event-stream' },
      body: JSON.stringify({
        query: 'subscription($i: RagInput!) { ragStream(input: $i) { token done result { answer } } }',
        variables: { i: { query: body.query, indexId, maxNewTokens: 12, temperature: 0 } },
      }),
    });
    const subEvents = (await readSse(sub)).filter((e) => e.event === 'next').map((e) => e.data.data.ragStream);
    expect(subEvents.filter((e: any) => !e.done).map((e: any) => e.token).join('')).toBe(whole.json.answer);
    expect(subEvents.at(-1).result.answer).toBe(whole.json.answer);
  });

  it('answers bad input with the contract codes', async () => {
    const unknown = await post('/v1/rag/search', { query: 'x', index_id: 'ri_000000000000000000000000' });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.code).toBe('not_found');
    expect((await get('/v1/rag/indexes/ri_nope')).status).toBe(404);
    const empty = await post('/v1/rag/search', { query: '   ', index_id: indexId });
    expect(empty.status).toBe(400);
    expect(empty.json.error.details.field).toBe('query');
    const evals = await post('/v1/datasets', { name: 'e', type: 'eval_set', records: [{ input: { prompt: 'p' } }] });
    const notCorpus = await post('/v1/rag/search', { query: 'x', dataset_id: evals.json.dataset_id });
    expect(notCorpus.status).toBe(400);
    expect(notCorpus.json.error.details.field).toBe('dataset_id');
    expect((await post('/v1/rag/indexes', { dataset_id: evals.json.dataset_id })).status).toBe(400);
    expect((await post('/v1/rag/search', { query: 'x' })).json.error.details.field).toBe('dataset_id');
    expect((await post('/v1/rag/search', { query: 'x', index_id: indexId, dataset_id: datasetId })).json.error.details.field).toBe('index_id');
    expect((await post('/v1/rag/search', { query: 'x', index_id: indexId, top_k: 51 })).json.error.details.field).toBe('top_k');
    expect((await post('/v1/rag/search', { query: 'x', index_id: indexId, mode: 'fuzzy' })).json.error.details.field).toBe('mode');
    expect((await post('/v1/rag/search', { query: 'x', index_id: indexId, filter: { a: [1] } })).json.error.details.field).toBe('filter');
    expect((await post('/v1/rag/indexes', { dataset_id: datasetId, chunk_tokens: 64, chunk_overlap: 40 })).json.error.details.field).toBe('chunk_overlap');
    // The same for answers: unknown index 404, eval_set 400, empty query 400.
    expect((await post('/v1/rag', { query: 'x', index_id: 'ri_000000000000000000000000' })).status).toBe(404);
    expect((await post('/v1/rag', { query: 'x', dataset_id: evals.json.dataset_id })).status).toBe(400);
    const blank = await post('/v1/rag', { query: '', index_id: indexId });
    expect(blank.status).toBe(400);
    expect(blank.json.error.details.field).toBe('query');
    expect((await post('/v1/rag', { query: 'x', index_id: indexId, max_new_tokens: 0 })).json.error.details.field).toBe('max_new_tokens');
  });

  it('answers 409 with the progress while an index is processing, and refuses to delete its dataset', async () => {
    const up = await post('/v1/datasets', { name: 'big', type: 'rag_corpus', records: filler(300) });
    expect(up.status).toBe(201);
    const r = await post('/v1/rag/search', { query: 'widget7', index_id: up.json.index_id });
    expect(r.status).toBe(409);
    expect(r.json.error).toMatchObject({ code: 'conflict', details: { index_id: up.json.index_id, status: 'processing', progress: { total: 300 } } });
    const answer = await post('/v1/rag', { query: 'widget7', index_id: up.json.index_id });
    expect(answer.status).toBe(409);
    expect(answer.json.error.details.progress.total).toBe(300);
    const del = await fetch(`${server.url}/v1/datasets/${up.json.dataset_id}`, { method: 'DELETE', headers: authHeaders });
    expect(del.status).toBe(409);
    // Deleting the index stops its build; then the dataset can go.
    const delIndex = await fetch(`${server.url}/v1/rag/indexes/${up.json.index_id}`, { method: 'DELETE', headers: authHeaders });
    expect(delIndex.status).toBe(200);
    expect((await get(`/v1/rag/indexes/${up.json.index_id}`)).status).toBe(404);
    expect((await fetch(`${server.url}/v1/datasets/${up.json.dataset_id}`, { method: 'DELETE', headers: authHeaders })).status).toBe(200);
  });

  it('lists indexes a page at a time, builds with other options, rebuilds in place, deletes', async () => {
    const built = await post('/v1/rag/indexes', { dataset_id: datasetId, chunk_tokens: 16, chunk_overlap: 4 });
    expect(built.status).toBe(202);
    expect(built.json).toMatchObject({ dataset_id: datasetId, status: 'processing', chunking: { chunk_tokens: 16, chunk_overlap: 4 } });
    const small = await ready(built.json.index_id);
    expect(small.chunk_count).toBeGreaterThan(4);

    const page1 = await get(`/v1/rag/indexes?dataset_id=${datasetId}&limit=1`);
    expect(page1.json.data.map((i: any) => i.index_id)).toEqual([built.json.index_id]);
    const page2 = await get(`/v1/rag/indexes?dataset_id=${datasetId}&limit=1&cursor=${page1.json.next_cursor}`);
    expect(page2.json.data.map((i: any) => i.index_id)).toEqual([indexId]);
    expect(page2.json.next_cursor).toBeNull();
    expect((await get('/v1/rag/indexes?status=bogus')).status).toBe(400);

    const again = await post('/v1/rag/indexes', { dataset_id: datasetId, chunk_tokens: 16, chunk_overlap: 4 });
    expect(again.status).toBe(202);
    expect(again.json.index_id).toBe(built.json.index_id);
    expect(await ready(built.json.index_id)).toMatchObject({ status: 'ready', chunk_count: small.chunk_count });

    const del = await fetch(`${server.url}/v1/rag/indexes/${built.json.index_id}`, { method: 'DELETE', headers: authHeaders });
    expect(await del.json()).toMatchObject({ index_id: built.json.index_id, deleted: true });
    expect((await get(`/v1/rag/indexes/${built.json.index_id}`)).status).toBe(404);
  });

  it('serves the same through GraphQL', async () => {
    const created = await gql(
      server.url,
      'mutation($input: CreateDatasetInput!) { createDataset(input: $input) { dataset { datasetId } indexId } }',
      { input: { name: 'gql', type: 'RAG_CORPUS', records: TOPICS } },
    );
    const gqlIndex: string = created.json.data.createDataset.indexId;
    expect(gqlIndex).toMatch(/^ri_/);
    await ready(gqlIndex);
    const q = await gql(
      server.url,
      `query($id: String!, $input: RagSearchInput!) {
        ragIndex(id: $id) { indexId status documentCount chunkCount failedDocumentCount progress { total completed failed } embeddingModel embeddingDimensions chunking { chunkTokens chunkOverlap } fusion { lexicalWeight denseWeight calibrationQueries lexicalMrr denseMrr } }
        ragIndexes(first: 1) { nodes { indexId } pageInfo { hasNextPage endCursor } }
        ragSearch(input: $input) { results { docId chunkId score text lexicalRank denseRank span { start end } metadata } retrieval { indexId mode topK latencyMs candidates { lexical dense } denseMethod } }
      }`,
      { id: gqlIndex, input: { query: 'edit a crontab to schedule jobs', indexId: gqlIndex, mode: 'LEXICAL', topK: 1 } },
    );
    expect(q.json.errors).toBeUndefined();
    expect(q.json.data.ragIndex).toMatchObject({
      indexId: gqlIndex,
      status: 'READY',
      documentCount: 4,
      progress: { total: 4, completed: 4, failed: 0 },
      chunking: { chunkTokens: 256, chunkOverlap: 32 },
      fusion: { calibrationQueries: 4 },
    });
    expect(q.json.data.ragIndexes.nodes).toEqual([{ indexId: gqlIndex }]);
    expect(q.json.data.ragSearch.results[0]).toMatchObject({ docId: 'cron', lexicalRank: 1, denseRank: null, metadata: { pkg: 'cron' } });
    expect(q.json.data.ragSearch.retrieval).toMatchObject({ indexId: gqlIndex, mode: 'LEXICAL', topK: 1, denseMethod: null });

    const bad = await gql(server.url, '{ ragSearch(input: {query: "", indexId: "x"}) { results { docId } } }');
    expect(bad.json.errors[0].extensions).toMatchObject({ code: 'invalid_request', details: { field: 'input.query' } });
    const missing = await gql(server.url, '{ ragIndex(id: "ri_nope") { indexId } }');
    expect(missing.json.errors[0].extensions.code).toBe('not_found');

    const rebuilt = await gql(server.url, 'mutation($input: BuildRagIndexInput!) { buildRagIndex(input: $input) { indexId status chunking { chunkTokens } } }', {
      input: { datasetId: created.json.data.createDataset.dataset.datasetId, chunkTokens: 32, chunkOverlap: 8 },
    });
    expect(rebuilt.json.data.buildRagIndex).toMatchObject({ status: 'PROCESSING', chunking: { chunkTokens: 32 } });
    const busy = await gql(server.url, '{ ragSearch(input: {query: "jobs", indexId: "' + rebuilt.json.data.buildRagIndex.indexId + '"}) { results { docId } } }');
    if (busy.json.errors) expect(busy.json.errors[0].extensions).toMatchObject({ code: 'conflict', details: { status: 'processing' } });
    const deleted = await gql(server.url, 'mutation($id: String!) { deleteRagIndex(id: $id) }', { id: rebuilt.json.data.buildRagIndex.indexId });
    expect(deleted.json.data.deleteRagIndex).toBe(true);
  });

  it('resumes a build that a restart interrupted, and serves ready indexes after it', async () => {
    const up = await post('/v1/datasets', { name: 'resume', type: 'rag_corpus', records: filler(400, 'resume') });
    const id: string = up.json.index_id;
    // Stop as soon as some documents are stored.
    for (let i = 0; i < 600; i++) {
      const s = await get(`/v1/rag/indexes/${id}`);
      if (s.json.progress.completed > 0 || s.json.status !== 'processing') break;
      await new Promise((res) => setTimeout(res, 20));
    }
    const before = (await get(`/v1/rag/indexes/${id}`)).json;
    await server.stop();
    server = await startServer(env);
    // 400 documents of 12 paragraphs take seconds to embed: the restart lands mid-build.
    expect(before).toMatchObject({ status: 'processing' });
    expect(before.progress.completed).toBeLessThan(400);
    expect(server.logs.some((l) => l.includes('resuming RAG index build') && l.includes(id))).toBe(true);
    const after = await ready(id);
    expect(after).toMatchObject({ status: 'ready', document_count: 400, failed_document_count: 0, progress: { total: 400, completed: 400, failed: 0 } });
    expect(after.chunk_count).toBeGreaterThanOrEqual(400);
    const r = await post('/v1/rag/search', { query: 'widget123 gadget3', index_id: id, mode: 'lexical', top_k: 1 });
    expect(r.json.results[0].doc_id).toBe('resume-123');
    // The first index, ready before the restart, answers again.
    const old = await post('/v1/rag/search', { query: 'decompress a gz file', index_id: indexId });
    expect(old.status).toBe(200);
    expect(old.json.results.map((x: any) => x.doc_id)).toContain('gzip');
  });
});
