/**
 * Scale-out throughput (issue 13): batch-evaluation records per minute with
 * the single-process path (ROLE=all, SQLite), and through the BullMQ queue
 * with one API replica and one or two workers (PostgreSQL, Redis); and the
 * time a SIGKILLed worker's jobs take to be taken up again by another.
 *
 *   npx tsx bench/scale-out.ts [--records 1000] [--tokens 32] [--lock 5]
 *
 * Needs PostgreSQL (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test;
 * a fresh database per run) and Redis (BENCH_REDIS_URL, default redis://127.0.0.1:6379;
 * a fresh key prefix). Every process runs stories260K with ORT_INTRA_OP_THREADS=1.
 * Writes bench/results/<date>-scale-out.json.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Redis } from 'ioredis';
import { authHeaders, postJson, REPO, startServer, type RunningServer } from '../test/helpers/server.js';

const { values } = parseArgs({
  options: { records: { type: 'string', default: '1000' }, tokens: { type: 'string', default: '32' }, lock: { type: 'string', default: '5' } },
});
const N = Number(values.records);
const TOKENS = Number(values.tokens);
const LOCK = Number(values.lock);
const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PROMPTS = ['Once upon a time', "Lily's mom said", 'One day, a big bear', 'Tom had a red ball', 'The sun was hot'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const records = Array.from({ length: N }, (_, i) => ({
  record_id: `r${i}`,
  input: { prompt: PROMPTS[i % PROMPTS.length]! },
  reference: { answer: 'there was a little girl named Lily.' },
  expected: { required_criteria: ['accuracy'] },
}));

async function runOnce(api: string, onProgress?: (completed: number) => Promise<void>): Promise<{ seconds: number; recordsPerMinute: number; status: string }> {
  const ds = await postJson(`${api}/v1/datasets`, { name: 'bench', type: 'eval_set', records });
  if (ds.status !== 201) throw new Error(ds.text);
  const started = performance.now();
  const start = await postJson(`${api}/v1/batch-evals`, { dataset_id: ds.json.dataset_id, criteria: ['accuracy'], concurrency: 16, max_new_tokens: TOKENS, temperature: 0 });
  if (start.status !== 202) throw new Error(start.text);
  for (;;) {
    const r = (await (await fetch(`${api}/v1/batch-evals/${start.json.batch_eval_id}`, { headers: authHeaders })).json()) as any;
    await onProgress?.(r.progress.completed);
    if (!['queued', 'running'].includes(r.status)) {
      const seconds = (performance.now() - started) / 1000;
      return { seconds: Math.round(seconds * 100) / 100, recordsPerMinute: Math.round((N / seconds) * 60), status: r.status };
    }
    await sleep(50);
  }
}

async function withDatabase<T>(fn: (url: string, prefix: string) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  const name = `bench_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  await admin.query(`CREATE DATABASE ${name}`);
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  const prefix = `bench-${randomUUID()}`;
  try {
    return await fn(u.toString(), prefix);
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
    await admin.end();
    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
  }
}

const stopAll = (ps: RunningServer[]) => Promise.allSettled(ps.filter((p) => p.proc.exitCode === null && p.proc.signalCode === null).map((p) => p.stop()));

async function queued(workers: number, killOne: boolean) {
  return withDatabase(async (url, prefix) => {
    const shared = { DATABASE_URL: url, REDIS_URL, REDIS_KEY_PREFIX: prefix, JOB_LOCK_SECONDS: String(LOCK), RATE_LIMIT_PER_MINUTE: '0' };
    const api = await startServer({ ...shared, ROLE: 'api' });
    const ws = await Promise.all(Array.from({ length: workers }, () => startServer({ ...shared, ROLE: 'worker', WORKER_PORT: '0' })));
    try {
      let killedAt: number | null = null;
      let pickupSeconds: number | null = null;
      const r = await runOnce(api.url, async (completed) => {
        if (!killOne) return;
        if (killedAt === null && completed >= N / 4) {
          await ws[0]!.stop('SIGKILL');
          killedAt = performance.now();
        } else if (killedAt !== null && pickupSeconds === null) {
          const text = await (await fetch(`${ws[1]!.url}/metrics`)).text();
          if (/job_queue_stalled_total\{queue="batch-records"\} [1-9]/.test(text)) pickupSeconds = Math.round((performance.now() - killedAt) / 10) / 100;
        }
      });
      return { ...r, ...(killOne ? { pickupSeconds } : {}) };
    } finally {
      await stopAll([api, ...ws]);
    }
  });
}

async function main() {
  const results: Record<string, unknown> = {};
  const single = await startServer({ RATE_LIMIT_PER_MINUTE: '0' });
  try {
    results.singleProcess = await runOnce(single.url);
  } finally {
    await stopAll([single]);
  }
  console.log('single process', results.singleProcess);
  results.queueOneWorker = await queued(1, false);
  console.log('queue, 1 worker', results.queueOneWorker);
  results.queueTwoWorkers = await queued(2, false);
  console.log('queue, 2 workers', results.queueTwoWorkers);
  results.queueTwoWorkersOneKilled = await queued(2, true);
  console.log('queue, 2 workers, one SIGKILLed at 25%', results.queueTwoWorkersOneKilled);
  const out = {
    date: new Date().toISOString(),
    machine: { cpus: os.availableParallelism(), loadavg: os.loadavg(), node: process.version },
    setup: { model: 'stories260K', records: N, maxNewTokens: TOKENS, jobLockSeconds: LOCK, ortThreadsPerProcess: 1, workerConcurrency: 16 },
    results,
  };
  const file = path.join(REPO, 'bench/results', `${out.date.slice(0, 10)}-scale-out.json`);
  fs.writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`wrote ${path.relative(REPO, file)}`);
}

await main();
