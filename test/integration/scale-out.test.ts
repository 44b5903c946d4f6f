import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeaders, postJson, readSse, startServer, type RunningServer } from '../helpers/server.js';
import { storiesModel } from '../helpers/models.js';

/**
 * Issue 13: two API replicas (ROLE=api) and two workers (ROLE=worker) on one
 * PostgreSQL (a fresh database per run) and one Redis (a fresh key prefix).
 */
const ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

const PROMPTS = ['Once upon a time', "Lily's mom said", 'One day, a big bear', 'Tom had a red ball', 'The sun was hot'];
const records = (n: number) =>
  Array.from({ length: n }, (_, i) => ({
    record_id: `rec-${i}`,
    input: { prompt: PROMPTS[i % PROMPTS.length]! },
    reference: { answer: i % 2 === 0 ? 'there was a little girl named Lily.' : 'Quantum chromodynamics.' },
    expected: { required_criteria: ['accuracy'] },
  }));

/** Documents for an index: each names its own widget, so a search can find exactly one. */
const corpus = (n: number, tag: string) =>
  Array.from({ length: n }, (_, i) => ({
    doc_id: `${tag}-${i}`,
    text: Array.from({ length: 6 }, (_, j) => `Paragraph ${j} of ${tag} document ${i} mentions widget${i} and gadget${j}.`).join('\n\n'),
  }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const get = async (url: string, p: string) => {
  const r = await fetch(url + p, { headers: authHeaders });
  return { status: r.status, json: (await r.json()) as any };
};
const withoutRequestId = (j: any) => {
  const { request_id: _ignored, ...rest } = j;
  return rest;
};

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe.skipIf(!storiesModel.present)(storiesModel.title('scale-out: API replicas and workers on BullMQ and PostgreSQL'), () => {
  const dbName = `scaleout_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  const dbUrl = (() => {
    const u = new URL(ADMIN_URL);
    u.pathname = `/${dbName}`;
    return u.toString();
  })();
  const prefix = `test-scaleout-${randomUUID()}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  let db: pg.Client;
  let a: RunningServer;
  let b: RunningServer;
  let w1: RunningServer;
  let w2: RunningServer;

  beforeAll(async () => {
    await admin.connect();
    await admin.query(`CREATE DATABASE ${dbName}`);
    const shared = {
      DATABASE_URL: dbUrl,
      REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      // A killed worker's jobs are taken up again after about this long.
      JOB_LOCK_SECONDS: '3',
      SHUTDOWN_GRACE_SECONDS: '5',
      // The test polls progress every 50 ms; limits (shared through Redis) are another test's subject.
      RATE_LIMIT_PER_MINUTE: '0',
    };
    const worker = { ...shared, ROLE: 'worker', WORKER_PORT: '0', MAX_BATCH_SIZE: '4' };
    // The first process migrates the fresh database; the others find it done.
    a = await startServer({ ...shared, ROLE: 'api' });
    [b, w1, w2] = await Promise.all([startServer({ ...shared, ROLE: 'api' }), startServer(worker), startServer(worker)]);
    // A process that dies on its own says why (the test's own kills are expected).
    for (const [name, p] of Object.entries({ a, b, w1, w2 })) {
      p.proc.on('exit', (code, signal) => {
        if (signal !== 'SIGKILL' && signal !== 'SIGTERM' && code !== 0) console.error(`${name} exited (${code ?? signal}):\n${p.logs.slice(-40).join('\n')}`);
      });
    }
    db = new pg.Client({ connectionString: dbUrl });
    await db.connect();
  }, 180_000);

  afterAll(async () => {
    // A process killed by a signal has no exit code; stop() would wait for an exit that already happened.
    const alive = [a, b, w1, w2].filter((s) => s && s.proc.exitCode === null && s.proc.signalCode === null);
    await Promise.allSettled(alive.map((s) => s.stop()));
    await db?.end().catch(() => {});
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => {});
    await admin.end().catch(() => {});
    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  it('a worker serves only its probes and metrics', async () => {
    expect((await fetch(`${w2.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${w2.url}/readyz`)).status).toBe(200);
    const m = await fetch(`${w2.url}/metrics`);
    expect(m.status).toBe(200);
    expect(await m.text()).toContain('# TYPE');
    expect((await fetch(`${w2.url}/v1/health`)).status).toBe(404);
  });

  it('queue counts in /v1/health and in Prometheus', async () => {
    const h = await get(a.url, '/v1/health');
    const counts = { waiting: expect.any(Number), active: expect.any(Number), completed: expect.any(Number), failed: expect.any(Number), delayed: expect.any(Number), stalled: expect.any(Number) };
    expect(h.json.queues).toEqual({ 'batch-records': counts, 'rag-builds': counts });
    const text = await (await fetch(`${w2.url}/metrics`)).text();
    for (const queue of ['batch-records', 'rag-builds']) {
      for (const state of ['waiting', 'active', 'completed', 'failed', 'delayed']) {
        expect(text).toContain(`job_queue_jobs{queue="${queue}",state="${state}"}`);
      }
    }
  });

  it('100 records started on A: a worker SIGKILLed midway, every record ends with exactly one result, the same summary on A and B', async () => {
    const ds = await postJson(`${a.url}/v1/datasets`, { name: 'hundred', type: 'eval_set', records: records(100) });
    expect(ds.status, ds.text).toBe(201);
    const start = await postJson(`${a.url}/v1/batch-evals`, {
      dataset_id: ds.json.dataset_id,
      criteria: ['accuracy'],
      concurrency: 8,
      max_new_tokens: 16,
      temperature: 0,
    });
    expect(start.status, start.text).toBe(202);
    const id = start.json.batch_eval_id;
    // A client on B follows the run started on A (its records are done by the workers).
    const subscribed = fetch(`${b.url}/graphql`, {
      method: 'POST',
      headers: { ...authHeaders, accept: 'text/event-stream' },
      body: JSON.stringify({
        query: 'subscription P($id: ID!) { batchEvalProgress(id: $id) { status progress { total completed failed } } }',
        variables: { id },
      }),
    }).then(readSse);

    // Midway (some results stored through the workers, read through B), one worker dies without a word.
    await waitFor('the first results', async () => (await get(b.url, `/v1/batch-evals/${id}`)).json.progress.completed >= 15);
    const atKill = (await get(b.url, `/v1/batch-evals/${id}`)).json.progress.completed;
    await w1.stop('SIGKILL');
    expect(atKill).toBeLessThan(100);

    await waitFor('the run to finish', async () => !['queued', 'running'].includes((await get(a.url, `/v1/batch-evals/${id}`)).json.status));
    const runA = await get(a.url, `/v1/batch-evals/${id}`);
    expect(runA.json.status).toBe('completed');
    expect(runA.json.progress).toEqual({ total: 100, completed: 100, failed: 0 });

    const rows = await db.query<{ n: string; distinct_idx: string }>(
      'SELECT count(*) AS n, count(DISTINCT idx) AS distinct_idx FROM batch_items WHERE batch_id = $1',
      [id],
    );
    expect(rows.rows[0]).toEqual({ n: '100', distinct_idx: '100' });

    const resultA = await get(a.url, `/v1/batch-evals/${id}/result`);
    const resultB = await get(b.url, `/v1/batch-evals/${id}/result`);
    expect(resultA.status).toBe(200);
    expect(resultA.json.summary.total_items).toBe(100);
    expect(withoutRequestId(resultB.json)).toEqual(withoutRequestId(resultA.json));
    expect(withoutRequestId((await get(b.url, `/v1/batch-evals/${id}`)).json)).toEqual(withoutRequestId(runA.json));
    const events = (await subscribed).filter((e) => e.event === 'next').map((e) => e.data.data.batchEvalProgress);
    expect(events.at(-1)).toEqual({ status: 'COMPLETED', progress: { total: 100, completed: 100, failed: 0 } });
    const seen = events.map((e) => e.progress.completed);
    // Progress as it happened: many steps, never backwards.
    expect(new Set(seen).size).toBeGreaterThan(5);
    expect(seen).toEqual([...seen].sort((x, y) => x - y));
    // The surviving worker timed its jobs.
    const text = await (await fetch(`${w2.url}/metrics`)).text();
    expect(text).toMatch(/job_duration_seconds_count\{queue="batch-records",outcome="completed"\} [1-9]/);
    // ...and found the killed worker's jobs stalled and took them up again; /v1/health counts them for every worker.
    expect(text).toMatch(/job_queue_stalled_total\{queue="batch-records"\} [1-9]/);
    expect((await get(b.url, '/v1/health')).json.queues['batch-records'].stalled).toBeGreaterThanOrEqual(1);
  }, 240_000);

  it('a RAG index uploaded on A is built by the workers: progress on B to READY, one outcome per document, searchable on B', async () => {
    const up = await postJson(`${a.url}/v1/datasets`, { name: 'corpus', type: 'rag_corpus', records: corpus(120, 'queued') });
    expect(up.status, up.text).toBe(201);
    const id = up.json.index_id;
    const subscribed = fetch(`${b.url}/graphql`, {
      method: 'POST',
      headers: { ...authHeaders, accept: 'text/event-stream' },
      body: JSON.stringify({
        query: 'subscription P($id: ID!) { ragIndexProgress(id: $id) { status progress { total completed failed } } }',
        variables: { id },
      }),
    }).then(readSse);
    await waitFor('the index to be built', async () => (await get(a.url, `/v1/rag/indexes/${id}`)).json.status !== 'processing');
    const index = (await get(b.url, `/v1/rag/indexes/${id}`)).json;
    expect(index.status).toBe('ready');
    expect(index.progress).toEqual({ total: 120, completed: 120, failed: 0 });
    const docs = await db.query<{ n: string; distinct_idx: string }>('SELECT count(*) AS n, count(DISTINCT idx) AS distinct_idx FROM rag_documents WHERE index_id = $1', [id]);
    expect(docs.rows[0]).toEqual({ n: '120', distinct_idx: '120' });
    const chunks = await db.query<{ n: string }>('SELECT count(*) AS n FROM rag_chunks WHERE index_id = $1', [id]);
    expect(Number(chunks.rows[0]!.n)).toBe(index.chunk_count);

    // The jobs were a worker's (the API replicas only queued them).
    const workerMetrics = await (await fetch(`${w2.url}/metrics`)).text();
    expect(workerMetrics).toMatch(/job_duration_seconds_count\{queue="rag-builds",outcome="completed"\} [1-9]/);

    const events = (await subscribed).filter((e) => e.event === 'next').map((e) => e.data.data.ragIndexProgress);
    expect(events.at(-1)).toMatchObject({ status: 'READY', progress: { total: 120, completed: 120, failed: 0 } });
    const seen = events.map((e) => e.progress.completed);
    expect(new Set(seen).size).toBeGreaterThan(3);
    expect(seen).toEqual([...seen].sort((x, y) => x - y));

    // B loads the vectors the workers stored and answers from them.
    const search = await postJson(`${b.url}/v1/rag/search`, { index_id: id, query: 'widget77', mode: 'lexical', top_k: 3 });
    expect(search.status, search.text).toBe(200);
    expect(search.json.results[0].doc_id).toBe('queued-77');
    const hybrid = await postJson(`${b.url}/v1/rag/search`, { index_id: id, query: 'widget77 gadget3', top_k: 3 });
    expect(hybrid.status, hybrid.text).toBe(200);
  }, 240_000);

  it('an index deleted on B while the workers build it: the build stops and nothing of it is left', async () => {
    const up = await postJson(`${a.url}/v1/datasets`, { name: 'doomed', type: 'rag_corpus', records: corpus(400, 'doomed') });
    expect(up.status, up.text).toBe(201);
    const id = up.json.index_id;
    await waitFor('the first documents', async () => (await get(a.url, `/v1/rag/indexes/${id}`)).json.progress.completed >= 10);
    const del = await fetch(`${b.url}/v1/rag/indexes/${id}`, { method: 'DELETE', headers: authHeaders });
    expect(del.status).toBe(200);
    expect((await get(a.url, `/v1/rag/indexes/${id}`)).status).toBe(404);
    await sleep(3000);
    const left = await db.query<{ n: string }>(
      'SELECT (SELECT count(*) FROM rag_chunks WHERE index_id = $1) + (SELECT count(*) FROM rag_documents WHERE index_id = $1) AS n',
      [id],
    );
    expect(left.rows[0]!.n).toBe('0');
    // The build's jobs are gone or end at once: the queue holds none of it waiting.
    await waitFor('the queue to drain', async () => (await get(a.url, '/v1/health')).json.queues['rag-builds'].waiting === 0, 30_000);
  }, 120_000);

  it('cancel from B stops a run started on A', async () => {
    const ds = await postJson(`${a.url}/v1/datasets`, { name: 'to cancel', type: 'eval_set', records: records(100) });
    expect(ds.status, ds.text).toBe(201);
    const start = await postJson(`${a.url}/v1/batch-evals`, {
      dataset_id: ds.json.dataset_id,
      criteria: ['accuracy'],
      concurrency: 8,
      max_new_tokens: 48,
      temperature: 0,
    });
    expect(start.status, start.text).toBe(202);
    const id = start.json.batch_eval_id;
    await waitFor('the first results', async () => (await get(a.url, `/v1/batch-evals/${id}`)).json.progress.completed >= 2);

    const cancel = await postJson(`${b.url}/v1/batch-evals/${id}/cancel`, {});
    expect(cancel.status, cancel.text).toBe(200);
    expect(cancel.json.status).toBe('cancelled');

    // Waiting jobs are gone and active ones stopped: the stored results stop growing well short of 100.
    await sleep(1500);
    const count = async () => Number((await db.query('SELECT count(*) AS n FROM batch_items WHERE batch_id = $1', [id])).rows[0].n);
    const settled = await count();
    await sleep(3000);
    expect(await count()).toBe(settled);
    expect(settled).toBeLessThan(100);
    const onA = await get(a.url, `/v1/batch-evals/${id}`);
    expect(onA.json.status).toBe('cancelled');
  }, 120_000);

  it('an API replica whose Redis is away answers 503 to a start, and the run is marked failed (no run left waiting forever)', async () => {
    const lonely = await startServer({ DATABASE_URL: dbUrl, REDIS_URL: 'redis://127.0.0.1:1', REDIS_KEY_PREFIX: prefix, ROLE: 'api', RATE_LIMIT_PER_MINUTE: '0' });
    try {
      const ds = await postJson(`${lonely.url}/v1/datasets`, { name: 'no redis', type: 'eval_set', records: records(3) });
      expect(ds.status, ds.text).toBe(201);
      const start = await postJson(`${lonely.url}/v1/batch-evals`, { dataset_id: ds.json.dataset_id, criteria: ['accuracy'], max_new_tokens: 4 });
      expect(start.status, start.text).toBe(503);
      const id = start.json.error.details.batch_eval_id;
      expect((await get(a.url, `/v1/batch-evals/${id}`)).json).toMatchObject({ status: 'failed', error: 'job queue unavailable' });
    } finally {
      await lonely.stop();
    }
  }, 60_000);

  it('a worker stops on SIGTERM while working, within SHUTDOWN_GRACE_SECONDS, and exits 0', async () => {
    const ds = await postJson(`${a.url}/v1/datasets`, { name: 'drain', type: 'eval_set', records: records(100) });
    const start = await postJson(`${a.url}/v1/batch-evals`, { dataset_id: ds.json.dataset_id, criteria: ['accuracy'], max_new_tokens: 48, temperature: 0 });
    expect(start.status, start.text).toBe(202);
    const id = start.json.batch_eval_id;
    await waitFor('the first results', async () => (await get(a.url, `/v1/batch-evals/${id}`)).json.progress.completed >= 2);
    const started = Date.now();
    expect(await w2.stop('SIGTERM')).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000 + 3000);
    expect(w2.logs.join('\n')).toContain('shutting down');
    // What it finished is stored once; the rest waits in the queue for another worker.
    const rows = await db.query<{ n: string; distinct_idx: string }>('SELECT count(*) AS n, count(DISTINCT idx) AS distinct_idx FROM batch_items WHERE batch_id = $1', [id]);
    expect(rows.rows[0]!.n).toBe(rows.rows[0]!.distinct_idx);
    expect(Number(rows.rows[0]!.n)).toBeLessThan(100);
    expect((await get(b.url, `/v1/batch-evals/${id}`)).json.status).toBe('running');
    expect((await postJson(`${b.url}/v1/batch-evals/${id}/cancel`, {})).status).toBe(200);
  }, 60_000);
});
