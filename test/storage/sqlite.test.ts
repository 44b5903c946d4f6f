import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openStorage } from '../../src/storage/index.js';
import { migrateSqlite, SQLITE_MIGRATIONS } from '../../src/storage/migrations.js';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import { storageSuite } from './suite.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'storage-sqlite-'));
let n = 0;
const freshDir = () => path.join(root, `db${n++}`);

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

storageSuite('sqlite', () => openSqliteStorage(freshDir()));

describe('sqlite storage file', () => {
  it('creates <dataDir>/server.db (and missing parents) in WAL mode', async () => {
    const dir = path.join(freshDir(), 'nested', 'data');
    const s = await openSqliteStorage(dir);
    expect(s.kind).toBe('sqlite');
    await s.close();
    const db = new Database(path.join(dir, 'server.db'), { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });

  it('keeps data across close and reopen without re-running migrations', async () => {
    const dir = freshDir();
    const s1 = await openSqliteStorage(dir);
    const now = new Date().toISOString();
    await s1.datasets.create(
      {
        id: 'ds_restart',
        name: 'kept',
        type: 'eval_set',
        status: 'ready',
        recordCount: 1,
        metadata: { a: [1, { b: 'ü' }] },
        error: null,
        createdAt: now,
        updatedAt: now,
      },
      [{ datasetId: 'ds_restart', index: 0, recordId: 'r0', data: { input: { prompt: 'hi' } } }],
    );
    await s1.batches.create({
      id: 'be_restart',
      datasetId: 'ds_restart',
      status: 'running',
      criteria: ['overall'],
      params: { model: 'stories260K', concurrency: 1, max_new_tokens: 8, temperature: 0, seed: 0, judge: 'deterministic' },
      total: 1,
      completed: 0,
      failed: 0,
      keyId: null,
      error: null,
      createdAt: now,
      startedAt: now,
      updatedAt: now,
      completedAt: null,
    });
    await s1.close();
    await s1.close(); // idempotent

    const readMigrations = () => {
      const db = new Database(path.join(dir, 'server.db'), { readonly: true });
      const rows = db.prepare('SELECT version, applied_at FROM schema_migrations ORDER BY version').all();
      db.close();
      return rows;
    };
    const applied = readMigrations();
    expect(applied).toHaveLength(SQLITE_MIGRATIONS.length);

    const s2 = await openSqliteStorage(dir);
    expect(await s2.datasets.get('ds_restart')).toMatchObject({ name: 'kept', metadata: { a: [1, { b: 'ü' }] } });
    expect(await s2.datasets.records('ds_restart', -1, 10)).toHaveLength(1);
    expect((await s2.batches.listByStatus(['running'])).map((r) => r.id)).toEqual(['be_restart']);
    await s2.close();
    expect(readMigrations()).toEqual(applied);

    const db = new Database(path.join(dir, 'server.db'));
    expect(migrateSqlite(db)).toEqual([]);
    db.close();
  });

  it('a large dataset is written a slice at a time, unseen until whole; one a crash left half written is gone at the next start', async () => {
    const dir = freshDir();
    const s1 = await openSqliteStorage(dir);
    const now = new Date().toISOString();
    const dataset = { id: 'ds_big', name: 'big', type: 'eval_set' as const, status: 'ready' as const, recordCount: 5000, metadata: {}, error: null, createdAt: now, updatedAt: now };
    const records = Array.from({ length: 5000 }, (_, index) => ({ datasetId: 'ds_big', index, recordId: `r${index}`, data: { record_id: `r${index}`, input: { prompt: 'p' } } }));
    // Between slices the event loop runs: a reader then sees nothing of the dataset.
    let seenMidway: unknown = 'not checked';
    const writing = s1.datasets.create(dataset, records);
    await new Promise((r) => setImmediate(r));
    seenMidway = [await s1.datasets.get('ds_big'), (await s1.datasets.list({ limit: 10 })).items.length];
    await writing;
    expect(seenMidway).toEqual([null, 0]);
    expect(await s1.datasets.get('ds_big')).toMatchObject({ id: 'ds_big', recordCount: 5000, status: 'ready' });
    expect(await s1.datasets.records('ds_big', 4990, 100)).toHaveLength(9);
    await s1.close();

    // A crash midway: the row and some records, still marked.
    const db = new Database(path.join(dir, 'server.db'));
    db.prepare(`INSERT INTO datasets (id, name, type, status, record_count, metadata, error, created_at, updated_at, writing)
                VALUES ('ds_half', 'half', 'eval_set', 'ready', 5000, '{}', NULL, ?, ?, 1)`).run(now, now);
    db.prepare("INSERT INTO dataset_records (dataset_id, idx, record_id, data) VALUES ('ds_half', 0, 'r0', '{}')").run();
    db.close();
    const s2 = await openSqliteStorage(dir);
    expect(await s2.datasets.get('ds_half')).toBeNull();
    expect((await s2.datasets.list({ limit: 10 })).items.map((d) => d.id)).toEqual(['ds_big']);
    await s2.close();
    const check = new Database(path.join(dir, 'server.db'), { readonly: true });
    expect(check.prepare("SELECT count(*) AS n FROM dataset_records WHERE dataset_id = 'ds_half'").get()).toEqual({ n: 0 });
    check.close();
  });

  it('refuses a database migrated by a newer server', async () => {
    const dir = freshDir();
    await (await openSqliteStorage(dir)).close();
    const db = new Database(path.join(dir, 'server.db'));
    db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, ?, ?)').run('future', 'x');
    db.close();
    await expect(openSqliteStorage(dir)).rejects.toThrow(/newer/);
  });

  it('openStorage picks SQLite when no database URL is set', async () => {
    const s = await openStorage({ dataDir: freshDir() });
    expect(s.kind).toBe('sqlite');
    await s.close();
  });
});
