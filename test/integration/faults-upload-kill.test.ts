import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { storiesModel } from '../helpers/models.js';
import { API_KEY, authHeaders, postJson, startServer, type RunningServer } from '../helpers/server.js';

/**
 * Fault drill (issue 15): the server SIGKILLed while a large multipart
 * upload is being stored (SQLite, the default store), then started again on
 * the same DATA_DIR. A large dataset is written a slice of records per
 * transaction under a `writing` mark that hides it until it is whole, and
 * start-up removes a marked one a crash left (src/storage/sqlite.ts): after
 * the restart no part of the killed upload is visible, none is left in the
 * file, every listed dataset holds exactly its record_count records, no
 * record is orphaned, and the database is intact and takes the same upload
 * whole. While the upload is being written it never shows in a listing.
 */
const N = 20_000;
const PROMPTS = ['Once upon a time', "Lily's mom said", 'One day, a big bear', 'Tom had a red ball', 'The sun was hot'];

/** The upload: N records, about 5.6 MB of JSONL (SQLite spills the open transaction to the WAL well before its commit). */
const jsonl = Array.from({ length: N }, (_, i) =>
  JSON.stringify({
    record_id: `big-${i}`,
    input: { prompt: `${PROMPTS[i % PROMPTS.length]} (record ${i}) ${'and then they played in the park. '.repeat(5)}` },
    reference: { answer: 'there was a little girl named Lily.' },
    tags: ['drill'],
  }),
).join('\n');

function bigUpload(): FormData {
  const form = new FormData();
  form.set('name', 'big upload');
  form.set('type', 'eval_set');
  form.set('file', new Blob([jsonl]), 'big.jsonl');
  return form;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const size = (f: string) => {
  try {
    return fs.statSync(f).size;
  } catch {
    return 0;
  }
};

async function listed(url: string): Promise<Array<{ dataset_id: string; name: string; record_count: number }>> {
  const r = await fetch(`${url}/v1/datasets?limit=100`, { headers: authHeaders });
  expect(r.status).toBe(200);
  return ((await r.json()) as any).data;
}

/** What the database file itself says: each dataset with its stored records, orphans, integrity. */
function inspect(dataDir: string) {
  const db = new Database(path.join(dataDir, 'server.db'), { readonly: true });
  try {
    const datasets = db
      .prepare('SELECT d.id, d.name, d.record_count AS declared, (SELECT count(*) FROM dataset_records r WHERE r.dataset_id = d.id) AS stored FROM datasets d ORDER BY d.created_at')
      .all() as Array<{ id: string; name: string; declared: number; stored: number }>;
    const orphans = (db.prepare('SELECT count(*) AS n FROM dataset_records WHERE dataset_id NOT IN (SELECT id FROM datasets)').get() as { n: number }).n;
    const integrity = db.pragma('integrity_check', { simple: true });
    return { datasets, orphans, integrity };
  } finally {
    db.close();
  }
}

describe.skipIf(!storiesModel.present)(storiesModel.title('fault drill: SIGKILL during a dataset upload'), () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'upload-kill-'));
  const wal = path.join(dataDir, 'server.db-wal');
  const env = { DATA_DIR: dataDir, RATE_LIMIT_PER_MINUTE: '0' };
  let server: RunningServer | undefined;

  afterAll(async () => {
    await server?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('killed while the records are written, and killed before they are: after a restart no part of it is visible', async () => {
    server = await startServer(env, { waitReady: false });
    const small = await postJson(`${server.url}/v1/datasets`, {
      name: 'small',
      type: 'eval_set',
      records: PROMPTS.map((p, i) => ({ record_id: `s-${i}`, input: { prompt: p } })),
    });
    expect(small.status, small.text).toBe(201);

    // 1. Killed in the middle of the insert: the write-ahead log has grown by megabytes (SQLite
    //    spills the open transaction's pages there long before its commit), no answer yet.
    const walBefore = size(wal);
    let answered = false;
    const upload = fetch(`${server.url}/v1/datasets`, { method: 'POST', headers: { 'x-api-key': API_KEY }, body: bigUpload() })
      .then(() => (answered = true))
      .catch(() => undefined);
    // Meanwhile the dataset never shows in a listing (it would, through this same connection, if
    // the insert yielded in the middle of its transaction).
    const deadline = Date.now() + 60_000;
    const listings: string[][] = [];
    let polls = 0;
    while (size(wal) < walBefore + 2 * 1024 * 1024) {
      if (answered || Date.now() > deadline) throw new Error(`the upload was not caught mid-insert (answered: ${answered})`);
      if (polls++ % 20 === 0) {
        void fetch(`${server.url}/v1/datasets?limit=100`, { headers: authHeaders })
          .then(async (r) => (r.ok ? ((await r.json()) as any).data : []))
          .then((data: Array<{ name: string }>) => listings.push(data.map((d) => d.name)))
          .catch(() => undefined);
      }
      await sleep(2);
    }
    await server.stop('SIGKILL');
    await upload;
    expect(answered).toBe(false);
    expect(listings.length).toBeGreaterThan(0);
    expect(listings.filter((names) => names.join() !== 'small')).toEqual([]);

    server = await startServer(env, { waitReady: false });
    expect((await listed(server.url)).map((d) => d.name)).toEqual(['small']);

    // 2. Killed early, while the body arrives or is parsed, before any record is written: no trace either.
    const walBefore2 = size(wal);
    const upload2 = fetch(`${server.url}/v1/datasets`, { method: 'POST', headers: { 'x-api-key': API_KEY }, body: bigUpload() }).catch(() => undefined);
    await sleep(50);
    await server.stop('SIGKILL');
    await upload2;
    expect(size(wal)).toBeLessThan(walBefore2 + 1024 * 1024);

    // After the restart: only the small dataset, listed and in the file itself (whatever a killed
    // upload left is gone by the end of start-up); its count matches its records; nothing orphaned.
    server = await startServer(env, { waitReady: false });
    const seen = await listed(server.url);
    expect(seen).toEqual([expect.objectContaining({ dataset_id: small.json.dataset_id, name: 'small', record_count: PROMPTS.length })]);
    const before = inspect(dataDir);
    expect(before.integrity).toBe('ok');
    expect(before.orphans).toBe(0);
    expect(before.datasets).toEqual([{ id: small.json.dataset_id, name: 'small', declared: PROMPTS.length, stored: PROMPTS.length }]);

    // The store takes the same upload whole afterwards.
    const again = await fetch(`${server.url}/v1/datasets`, { method: 'POST', headers: { 'x-api-key': API_KEY }, body: bigUpload() });
    const body = (await again.json()) as any;
    expect(again.status, JSON.stringify(body).slice(0, 500)).toBe(201);
    expect(body.record_count).toBe(N);
    await server.stop();
    server = undefined;
    const after = inspect(dataDir);
    expect(after.integrity).toBe('ok');
    expect(after.orphans).toBe(0);
    expect(after.datasets.map((d) => [d.name, d.declared, d.stored])).toEqual([
      ['small', PROMPTS.length, PROMPTS.length],
      ['big upload', N, N],
    ]);
  }, 180_000);
});
