/**
 * Storage bulk-insert benchmark: one DatasetRepository.create with N small
 * eval records, on SQLite (a temp dir) and PostgreSQL (a temp schema,
 * dropped afterwards), then one full read back through records().
 *
 *   npx tsx bench/storage-bulk.ts [--records 50000] [--repeat 3] [--pg URL|off]
 *
 * PostgreSQL defaults to TEST_DATABASE_URL or postgres://postgres@127.0.0.1:5432/test.
 * SQLite's create is synchronous, so its time is also how long it holds the
 * event loop. Prints the median and best of --repeat runs per store.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openPostgresStorage } from '../src/storage/postgres.js';
import { openSqliteStorage } from '../src/storage/sqlite.js';
import type { DatasetRecord, Storage } from '../src/storage/types.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}

const n = Number(arg('records', '50000'));
const repeat = Number(arg('repeat', '3'));
const pgUrl = arg('pg', process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test');

function records(datasetId: string): DatasetRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    datasetId,
    index: i,
    recordId: `r${i}`,
    data: {
      record_id: `r${i}`,
      input: { prompt: `What is ${i} plus ${i}?` },
      reference: { answer: String(2 * i) },
      tags: ['math'],
    },
  }));
}

async function measure(label: string, s: Storage): Promise<void> {
  const create: number[] = [];
  const read: number[] = [];
  for (let r = 0; r < repeat; r++) {
    const id = `ds_bench_${r}`;
    const recs = records(id);
    const now = new Date().toISOString();
    const t0 = performance.now();
    await s.datasets.create(
      { id, name: 'bench', type: 'eval_set', status: 'ready', recordCount: n, metadata: {}, error: null, createdAt: now, updatedAt: now },
      recs,
    );
    const t1 = performance.now();
    let after = -1;
    let count = 0;
    for (;;) {
      const page = await s.datasets.records(id, after, 1000);
      if (page.length === 0) break;
      count += page.length;
      after = page[page.length - 1]!.index;
    }
    const t2 = performance.now();
    if (count !== n) throw new Error(`${label}: read ${count} of ${n}`);
    create.push(t1 - t0);
    read.push(t2 - t1);
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const fmt = (xs: number[]) => `median ${med(xs).toFixed(0)} ms, best ${Math.min(...xs).toFixed(0)} ms`;
  console.log(`${label}: create ${n} records: ${fmt(create)}; read back (pages of 1000): ${fmt(read)}`);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'storage-bench-'));
try {
  const s = await openSqliteStorage(dir);
  await measure('sqlite', s);
  await s.close();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

if (pgUrl !== 'off') {
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  const s = await openPostgresStorage(pgUrl, { schema });
  try {
    await measure('postgres', s);
  } finally {
    await s.close();
    const c = new pg.Client({ connectionString: pgUrl });
    await c.connect();
    await c.query(`DROP SCHEMA "${schema}" CASCADE`);
    await c.end();
  }
}
