import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageUnavailableError } from '../../src/storage/errors.js';
import { openPostgresStorage } from '../../src/storage/postgres.js';
import type { BatchItem } from '../../src/storage/types.js';
import { storiesModel } from '../helpers/models.js';
import {
  canRunPrivatePostgres,
  canRunPrivateRedis,
  startPrivatePostgres,
  startPrivateRedis,
  type PrivatePostgres,
  type PrivateRedis,
} from '../helpers/private-services.js';
import { authHeaders, postJson, startServer, type RunningServer } from '../helpers/server.js';

/**
 * Fault drill (issue 15): the PostgreSQL server restarted, and crashed, while
 * a batch run (ROLE=all, in process) is storing results. The run pauses while
 * the database is away (records whose answer cannot be stored wait and try
 * again; nothing is marked failed for it), then completes with exactly one
 * stored result per record. A private cluster on its own port: the machine's
 * shared PostgreSQL is never stopped.
 */
const PROMPTS = ['Once upon a time', "Lily's mom said", 'One day, a big bear', 'Tom had a red ball', 'The sun was hot'];
const N = 120;
const records = Array.from({ length: N }, (_, i) => ({
  record_id: `rec-${i}`,
  input: { prompt: PROMPTS[i % PROMPTS.length]! },
  reference: { answer: 'there was a little girl named Lily.' },
}));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Said in the test's name when it is skipped for want of PostgreSQL here. */
const noPostgres = canRunPrivatePostgres() ? '' : ' (skipped: no initdb/pg_ctl under /usr/lib/postgresql, or no postgres user to run them as)';

/** The run as GET answers it; undefined while the server cannot read it (the database is away). */
async function runNow(url: string, id: string): Promise<any | undefined> {
  const r = await fetch(`${url}/v1/batch-evals/${id}`, { headers: authHeaders }).catch(() => undefined);
  return r?.status === 200 ? r.json() : undefined;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** One private cluster for this file (each drill its own schema or database objects). */
let db: PrivatePostgres | undefined;
beforeAll(async () => {
  if (canRunPrivatePostgres()) db = await startPrivatePostgres();
}, 60_000);
afterAll(async () => {
  await db?.destroy();
});

describe.skipIf(!storiesModel.present || !canRunPrivatePostgres())(
  storiesModel.title('fault drill: PostgreSQL restarted and crashed during a batch run') + noPostgres,
  () => {
    let server: RunningServer;
    let exited: string | null = null;

    beforeAll(async () => {
      server = await startServer({ DATABASE_URL: db!.url, RATE_LIMIT_PER_MINUTE: '0', CHAT_CACHE_TTL_SECONDS: '0', SHUTDOWN_GRACE_SECONDS: '5' });
      server.proc.on('exit', (code, signal) => {
        exited = `${code ?? signal}`;
        if (code !== 0) console.error(`server exited (${exited}):\n${server.logs.slice(-30).join('\n')}`);
      });
    }, 120_000);

    afterAll(async () => {
      await server?.stop();
    });

    it('the run pauses while the database is away and completes with one result per record', async () => {
      const cluster = db!;
      const ds = await postJson(`${server.url}/v1/datasets`, { name: 'drill', type: 'eval_set', records });
      expect(ds.status, ds.text).toBe(201);
      const start = await postJson(`${server.url}/v1/batch-evals`, {
        dataset_id: ds.json.dataset_id,
        criteria: ['accuracy'],
        concurrency: 4,
        max_new_tokens: 48,
        temperature: 0,
      });
      expect(start.status, start.text).toBe(202);
      const id: string = start.json.batch_eval_id;

      // 1. A clean restart (sessions terminated, 57P01) once some results are stored.
      await waitFor('the first results', async () => ((await runNow(server.url, id))?.progress.completed ?? 0) >= 10);
      await cluster.stop('fast');
      // While it is down: the process stays up, and a read answers 503 naming the database, not a 500.
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      const down = await fetch(`${server.url}/v1/batch-evals/${id}`, { headers: authHeaders });
      const downBody = (await down.json()) as any;
      expect(down.status, JSON.stringify(downBody)).toBe(503);
      expect(downBody.error.code).toBe('service_unavailable');
      expect(downBody.error.details.reason).toMatch(/database/i);
      // Generation needs no storage: chat goes on being answered.
      const chat = await postJson(`${server.url}/v1/chat`, { prompt: 'Once upon a time', max_new_tokens: 8, temperature: 0 });
      expect(chat.status, chat.text).toBe(200);
      // Long enough for in-flight records to finish generating and fail to store (more than the 3 tries of a generation error).
      await sleep(2500);
      await cluster.start();

      // 2. A crash (immediate stop: no shutdown, recovery at start) later in the run.
      const before = (await runNow(server.url, id))!;
      expect(before.status).toBe('running');
      expect(before.progress.failed).toBe(0);
      await waitFor('more results', async () => ((await runNow(server.url, id))?.progress.completed ?? 0) >= before.progress.completed + 10);
      await cluster.stop('immediate');
      await sleep(1500);
      await cluster.start();

      await waitFor('the run to end', async () => !['queued', 'running'].includes((await runNow(server.url, id))?.status ?? 'running'), 120_000);
      const run = (await runNow(server.url, id))!;
      expect(run.status).toBe('completed');
      expect(run.progress).toEqual({ total: N, completed: N, failed: 0 });

      // No result lost or stored twice: one row for every record index, each a success.
      const c = new pg.Client({ connectionString: cluster.url });
      await c.connect();
      try {
        const { rows } = await c.query<{ idx: number; n: string; status: string }>(
          'SELECT idx, count(*) AS n, min(status) AS status FROM batch_items WHERE batch_id = $1 GROUP BY idx ORDER BY idx',
          [id],
        );
        expect(rows.map((r) => r.idx)).toEqual(Array.from({ length: N }, (_, i) => i));
        expect(rows.every((r) => r.n === '1' && r.status === 'succeeded')).toBe(true);
      } finally {
        await c.end();
      }
      const result = await fetch(`${server.url}/v1/batch-evals/${id}/result`, { headers: authHeaders });
      expect(result.status).toBe(200);
      expect(((await result.json()) as any).summary.total_items).toBe(N);
      expect(exited).toBeNull();
      // Each outage paused the run once (one warning however many records waited) and resumed it once.
      const messages = server.logs.map((l) => (l.startsWith('{') ? JSON.parse(l).msg : l));
      expect(messages.filter((m) => m === 'storage unavailable; batch evaluations paused until it answers again')).toHaveLength(2);
      expect(messages.filter((m) => m === 'storage available again; batch evaluations resumed')).toHaveLength(2);
    }, 180_000);
  },
);

describe.skipIf(!storiesModel.present || !canRunPrivatePostgres() || !canRunPrivateRedis())(
  storiesModel.title('fault drill: PostgreSQL restarted during a queued batch run (ROLE=api and ROLE=worker)') +
    noPostgres +
    (canRunPrivateRedis() ? '' : ' (skipped: no redis-server on PATH)'),
  () => {
    let redis: PrivateRedis;
    let api: RunningServer;
    let worker: RunningServer;
    const Q = 60;

    beforeAll(async () => {
      redis = await startPrivateRedis();
      const admin = new pg.Client({ connectionString: db!.url });
      await admin.connect();
      await admin.query('CREATE DATABASE drill_queue');
      await admin.end();
      const shared = {
        DATABASE_URL: db!.url.replace(/\/postgres$/, '/drill_queue'),
        REDIS_URL: redis.url,
        RATE_LIMIT_PER_MINUTE: '0',
        SHUTDOWN_GRACE_SECONDS: '5',
      };
      api = await startServer({ ...shared, ROLE: 'api' });
      worker = await startServer({ ...shared, ROLE: 'worker', WORKER_PORT: '0', MAX_BATCH_SIZE: '4' });
    }, 180_000);

    afterAll(async () => {
      await Promise.allSettled([api, worker].filter(Boolean).map((s) => s.stop()));
      await redis?.destroy();
    });

    it("the worker's records wait for the database without spending their job attempts; one result per record", async () => {
      const cluster = db!;
      const ds = await postJson(`${api.url}/v1/datasets`, { name: 'queued drill', type: 'eval_set', records: records.slice(0, Q) });
      expect(ds.status, ds.text).toBe(201);
      const start = await postJson(`${api.url}/v1/batch-evals`, {
        dataset_id: ds.json.dataset_id,
        criteria: ['accuracy'],
        concurrency: 4,
        max_new_tokens: 48,
        temperature: 0,
      });
      expect(start.status, start.text).toBe(202);
      const id: string = start.json.batch_eval_id;
      await waitFor('the first results', async () => ((await runNow(api.url, id))?.progress.completed ?? 0) >= 10);
      await cluster.stop('fast');
      // Longer than the three attempts' backoff (200 + 400 ms): records retried by the queue alone would be failed by now.
      await sleep(2500);
      await cluster.start();
      await waitFor('the run to end', async () => !['queued', 'running'].includes((await runNow(api.url, id))?.status ?? 'running'), 120_000);
      const run = (await runNow(api.url, id))!;
      expect(run.status).toBe('completed');
      expect(run.progress).toEqual({ total: Q, completed: Q, failed: 0 });
      const c = new pg.Client({ connectionString: cluster.url.replace(/\/postgres$/, '/drill_queue') });
      await c.connect();
      try {
        const { rows } = await c.query<{ n: string; distinct_idx: string; failed: string }>(
          "SELECT count(*) AS n, count(DISTINCT idx) AS distinct_idx, count(*) FILTER (WHERE status <> 'succeeded') AS failed FROM batch_items WHERE batch_id = $1",
          [id],
        );
        expect(rows[0]).toEqual({ n: String(Q), distinct_idx: String(Q), failed: '0' });
      } finally {
        await c.end();
      }
      expect(worker.logs.join('\n')).toContain('storage unavailable; batch evaluations paused');
      expect(worker.proc.exitCode).toBeNull();
      expect(api.proc.exitCode).toBeNull();
    }, 180_000);
  },
);

describe.skipIf(!canRunPrivatePostgres())(`fault drill: PostgreSQL sessions cut in the middle of transactions${noPostgres}`, () => {
  it('every cut is a StorageUnavailableError to the caller, never an uncaught error; retried writes leave one row and one count each', async () => {
    // A checked-out client whose session ends emits 'error' after its query fails; with no listener that ended the process.
    const url = db!.url;
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    const storage = await openPostgresStorage(url, { schema: 'drill_cut', maxConnections: 4 });
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      const now = new Date().toISOString();
      const total = 200;
      await storage.batches.create({
        id: 'be_cut', datasetId: 'ds_cut', status: 'running', criteria: ['accuracy'],
        params: { model: 'm', concurrency: 4, max_new_tokens: 8, temperature: 0, seed: 1, judge: 'deterministic' },
        total, completed: 0, failed: 0, keyId: null, error: null, createdAt: now, startedAt: now, updatedAt: now, completedAt: null,
      });
      const item = (index: number): BatchItem => ({
        batchId: 'be_cut', index, recordId: `rec-${index}`, status: 'succeeded', response: 'r', promptTokens: 1, completionTokens: 1,
        latencyMs: 1, scores: [], passed: true, attempts: 1, reason: null, message: null, createdAt: now,
      });
      const other: unknown[] = [];
      let cuts = 0;
      // Four writers, each storing its share of the items, each store tried again until it answers.
      const writers = Array.from({ length: 4 }, async (_, w) => {
        for (let index = w; index < total; index += 4) {
          for (;;) {
            try {
              await storage.batches.putItem(item(index));
              break;
            } catch (err) {
              if (err instanceof StorageUnavailableError) cuts++;
              else other.push(err);
              await sleep(5);
            }
          }
        }
      });
      let done = false;
      const all = Promise.all(writers).finally(() => (done = true));
      // Meanwhile every client session is terminated, over and over (what a restart does to each connection).
      for (let round = 0; round < 40 && !done; round++) {
        await sleep(30);
        await admin.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
        );
      }
      await all;
      expect(other).toEqual([]);
      expect(cuts).toBeGreaterThan(0);
      const { rows } = await admin.query<{ n: string; distinct_idx: string }>(
        'SELECT count(*) AS n, count(DISTINCT idx) AS distinct_idx FROM drill_cut.batch_items WHERE batch_id = $1',
        ['be_cut'],
      );
      expect(rows[0]).toEqual({ n: String(total), distinct_idx: String(total) });
      // The run's counter counts each index once, even where a commit went through but its answer was lost.
      expect((await storage.batches.get('be_cut'))!.completed).toBe(total);
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
      await admin.end();
      await storage.close();
    }
  }, 60_000);
});
