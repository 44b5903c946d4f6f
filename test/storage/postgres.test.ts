import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratePostgres, POSTGRES_MIGRATIONS } from '../../src/storage/migrations.js';
import { openPostgresStorage } from '../../src/storage/postgres.js';
import type { Storage } from '../../src/storage/types.js';
import { storageSuite } from './suite.js';

// PostgreSQL runs on the development and CI machines: these tests never skip.
// An unreachable database fails them, with the reason.
const url = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const run = randomBytes(4).toString('hex');
let n = 0;
const schemas: string[] = [];
/** A schema name no other run or test uses; every one is dropped in afterAll. */
const freshSchema = () => {
  const name = `test_${run}_${n++}`;
  schemas.push(name);
  return name;
};

let admin: pg.Client;

beforeAll(async () => {
  admin = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await admin.connect();
    await admin.query('SELECT 1');
  } catch (err) {
    throw new Error(
      `PostgreSQL is not reachable at ${url} (set TEST_DATABASE_URL to point elsewhere): ${(err as Error).message}`,
    );
  }
});

afterAll(async () => {
  if (!admin) return;
  for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`).catch(() => {});
  await admin.end();
});

storageSuite('postgres', () => openPostgresStorage(url, { schema: freshSchema() }));

describe('postgres storage schema', () => {
  const versions = async (schema: string) =>
    (await admin.query(`SELECT version, applied_at FROM "${schema}".schema_migrations ORDER BY version`)).rows;

  it('creates its schema and applies each migration once under concurrent starts', async () => {
    const schema = freshSchema();
    const opened: Storage[] = await Promise.all(
      Array.from({ length: 4 }, () => openPostgresStorage(url, { schema, maxConnections: 2 })),
    );
    expect((await versions(schema)).map((r) => r.version)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
    await Promise.all(opened.map((s) => s.close()));
  });

  it('keeps data across close and reopen without re-running migrations', async () => {
    const schema = freshSchema();
    const s1 = await openPostgresStorage(url, { schema });
    const now = new Date().toISOString();
    await s1.evalRuns.create({
      runId: 'ev_restart',
      prompt: 'p',
      response: 'r',
      reference: null,
      context: null,
      criteria: ['overall'],
      scores: [{ criterion: 'overall', score: 4, rationale: 'ok' }],
      judge: 'heuristic',
      model: 'm',
      latencyMs: 3,
      keyId: null,
      createdAt: now,
    });
    await s1.close();
    await s1.close(); // idempotent
    const applied = await versions(schema);

    const s2 = await openPostgresStorage(url, { schema });
    expect(await s2.evalRuns.get('ev_restart')).toMatchObject({ runId: 'ev_restart', createdAt: now });
    await s2.close();
    expect(await versions(schema)).toEqual(applied);

    const pool = new pg.Pool({ connectionString: url, max: 1 });
    expect(await migratePostgres(pool, schema)).toEqual([]);
    await pool.end();
  });

  it('keeps each store in its own schema', async () => {
    const a = await openPostgresStorage(url, { schema: freshSchema() });
    const b = await openPostgresStorage(url, { schema: freshSchema() });
    const now = new Date().toISOString();
    const d = {
      id: 'ds_same',
      name: 'x',
      type: 'eval_set' as const,
      status: 'ready' as const,
      recordCount: 0,
      metadata: {},
      error: null,
      createdAt: now,
      updatedAt: now,
    };
    await a.datasets.create(d, []);
    expect(await b.datasets.get('ds_same')).toBeNull();
    await b.datasets.create(d, []);
    await Promise.all([a.close(), b.close()]);
  });

  it('refuses a database migrated by a newer server', async () => {
    const schema = freshSchema();
    await (await openPostgresStorage(url, { schema })).close();
    await admin.query(`INSERT INTO "${schema}".schema_migrations (version, name) VALUES (999, 'future')`);
    await expect(openPostgresStorage(url, { schema })).rejects.toThrow(/newer/);
  });

  it('refuses a schema name that is not a plain identifier', async () => {
    await expect(openPostgresStorage(url, { schema: 'x"; DROP TABLE y; --' })).rejects.toThrow(/schema name/);
  });
});
