/**
 * Versioned schema migrations, one list per dialect. A migration is applied
 * once, in version order, and recorded in `schema_migrations`; released
 * migrations are never edited, only followed by new ones.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type pg from 'pg';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/*
 * Choices shared by both dialects:
 * - rag_indexes cascade with their dataset, rag_documents and rag_chunks
 *   with their index (the services refuse to delete a dataset while one of
 *   its indexes is processing).
 * - dataset_records cascade with their dataset; batch_runs.dataset_id has no
 *   foreign key, so a run's stored items and results outlive the dataset
 *   (the services refuse deletion while a run is queued or running).
 * - batch_items cascade with their run.
 * - Times: canonical ISO-8601 text in SQLite (text order is time order),
 *   timestamptz in PostgreSQL.
 * - JSON: text in SQLite, jsonb in PostgreSQL.
 * - Lists page by (created_at DESC, id DESC), hence the composite indexes.
 */

export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'datasets, eval runs, batch runs',
    sql: `
CREATE TABLE datasets (
  id           TEXT PRIMARY KEY,
  name         TEXT NOT NULL,
  type         TEXT NOT NULL CHECK (type IN ('eval_set', 'rag_corpus')),
  status       TEXT NOT NULL CHECK (status IN ('ready', 'processing', 'failed')),
  record_count INTEGER NOT NULL,
  metadata     TEXT NOT NULL,
  error        TEXT,
  created_at   TEXT NOT NULL,
  updated_at   TEXT NOT NULL
);
CREATE INDEX datasets_created_idx ON datasets (created_at DESC, id DESC);
CREATE INDEX datasets_type_created_idx ON datasets (type, created_at DESC, id DESC);
CREATE INDEX datasets_status_created_idx ON datasets (status, created_at DESC, id DESC);

CREATE TABLE dataset_records (
  dataset_id TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
  idx        INTEGER NOT NULL,
  record_id  TEXT NOT NULL,
  data       TEXT NOT NULL,
  PRIMARY KEY (dataset_id, idx),
  UNIQUE (dataset_id, record_id)
) WITHOUT ROWID;

CREATE TABLE eval_runs (
  run_id     TEXT PRIMARY KEY,
  prompt     TEXT NOT NULL,
  response   TEXT NOT NULL,
  reference  TEXT,
  context    TEXT,
  criteria   TEXT NOT NULL,
  scores     TEXT NOT NULL,
  judge      TEXT NOT NULL,
  model      TEXT NOT NULL,
  latency_ms REAL NOT NULL,
  key_id     TEXT,
  created_at TEXT NOT NULL
);

CREATE TABLE batch_runs (
  id           TEXT PRIMARY KEY,
  dataset_id   TEXT NOT NULL,
  status       TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'completed_with_failures', 'failed', 'cancelled')),
  criteria     TEXT NOT NULL,
  params       TEXT NOT NULL,
  total        INTEGER NOT NULL,
  completed    INTEGER NOT NULL DEFAULT 0,
  failed       INTEGER NOT NULL DEFAULT 0,
  key_id       TEXT,
  error        TEXT,
  created_at   TEXT NOT NULL,
  started_at   TEXT,
  updated_at   TEXT NOT NULL,
  completed_at TEXT
);
CREATE INDEX batch_runs_status_idx ON batch_runs (status, created_at, id);
CREATE INDEX batch_runs_dataset_idx ON batch_runs (dataset_id, status);

CREATE TABLE batch_items (
  batch_id          TEXT NOT NULL REFERENCES batch_runs (id) ON DELETE CASCADE,
  idx               INTEGER NOT NULL,
  record_id         TEXT NOT NULL,
  status            TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')),
  response          TEXT,
  prompt_tokens     INTEGER,
  completion_tokens INTEGER,
  latency_ms        REAL,
  scores            TEXT NOT NULL,
  passed            INTEGER CHECK (passed IN (0, 1)),
  attempts          INTEGER NOT NULL,
  reason            TEXT,
  message           TEXT,
  created_at        TEXT NOT NULL,
  PRIMARY KEY (batch_id, idx)
) WITHOUT ROWID;
-- Failures pages and the failed counter read only the failed items.
CREATE INDEX batch_items_failed_idx ON batch_items (batch_id, idx) WHERE status = 'failed';
`,
  },
  {
    version: 2,
    name: 'rag indexes, documents and chunks',
    sql: `
CREATE TABLE rag_indexes (
  id                   TEXT PRIMARY KEY,
  dataset_id           TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
  status               TEXT NOT NULL CHECK (status IN ('processing', 'ready', 'failed')),
  options              TEXT NOT NULL,
  embedding_model      TEXT,
  embedding_dimensions INTEGER,
  documents_total      INTEGER NOT NULL,
  documents_indexed    INTEGER NOT NULL DEFAULT 0,
  documents_failed     INTEGER NOT NULL DEFAULT 0,
  chunk_count          INTEGER NOT NULL DEFAULT 0,
  fusion               TEXT,
  error                TEXT,
  created_at           TEXT NOT NULL,
  started_at           TEXT,
  updated_at           TEXT NOT NULL,
  completed_at         TEXT
);
CREATE INDEX rag_indexes_created_idx ON rag_indexes (created_at DESC, id DESC);
CREATE INDEX rag_indexes_dataset_idx ON rag_indexes (dataset_id, created_at DESC, id DESC);
CREATE INDEX rag_indexes_status_idx ON rag_indexes (status, created_at DESC, id DESC);

CREATE TABLE rag_documents (
  index_id    TEXT NOT NULL REFERENCES rag_indexes (id) ON DELETE CASCADE,
  idx         INTEGER NOT NULL,
  doc_id      TEXT NOT NULL,
  status      TEXT NOT NULL CHECK (status IN ('indexed', 'failed')),
  chunk_count INTEGER NOT NULL,
  error       TEXT,
  PRIMARY KEY (index_id, idx)
) WITHOUT ROWID;

-- key is the rowid: vector indexes in memory and the FTS table name rows by it. AUTOINCREMENT:
-- a deleted chunk's key is never given to another (as PostgreSQL's identity never repeats).
CREATE TABLE rag_chunks (
  key        INTEGER PRIMARY KEY AUTOINCREMENT,
  index_id   TEXT NOT NULL REFERENCES rag_indexes (id) ON DELETE CASCADE,
  chunk_id   TEXT NOT NULL,
  doc_idx    INTEGER NOT NULL,
  doc_id     TEXT NOT NULL,
  ordinal    INTEGER NOT NULL,
  span_start INTEGER NOT NULL,
  span_end   INTEGER NOT NULL,
  tokens     INTEGER NOT NULL,
  text       TEXT NOT NULL,
  metadata   TEXT NOT NULL,
  vector     BLOB NOT NULL,
  UNIQUE (index_id, chunk_id)
);
-- (index_id) orders by key within an index too (the rowid ends every SQLite index): loading vectors pages by it.
CREATE INDEX rag_chunks_index_idx ON rag_chunks (index_id);
CREATE INDEX rag_chunks_doc_idx ON rag_chunks (index_id, doc_idx);

-- The lexical index: contentless (the text lives in rag_chunks once), rows named by rag_chunks.key.
-- index_key holds the index id as one token (its underscores dropped: a single term is matched from
-- the doclist alone, where a phrase needs positions), so one MATCH selects an index's rows through the
-- FTS index itself; bm25() weighs that column 0. Porter stemming over unicode61 words, diacritics folded.
CREATE VIRTUAL TABLE rag_chunks_fts USING fts5(
  index_key, text, content = '', contentless_delete = 1, tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER rag_chunks_fts_insert AFTER INSERT ON rag_chunks BEGIN
  INSERT INTO rag_chunks_fts (rowid, index_key, text) VALUES (new.key, replace(new.index_id, '_', ''), new.text);
END;
-- Also on cascaded deletes (an index or dataset deleted).
CREATE TRIGGER rag_chunks_fts_delete AFTER DELETE ON rag_chunks BEGIN
  DELETE FROM rag_chunks_fts WHERE rowid = old.key;
END;
CREATE TRIGGER rag_chunks_fts_update AFTER UPDATE OF index_id, text ON rag_chunks BEGIN
  DELETE FROM rag_chunks_fts WHERE rowid = old.key;
  INSERT INTO rag_chunks_fts (rowid, index_key, text) VALUES (new.key, replace(new.index_id, '_', ''), new.text);
END;
`,
  },
  {
    version: 3,
    name: 'datasets being written',
    sql: `
-- 1 while a large upload's records go in, a slice per transaction (nobody reads it until 0);
-- a crash leaves it 1, and the next start deletes it.
ALTER TABLE datasets ADD COLUMN writing INTEGER NOT NULL DEFAULT 0;
`,
  },
];

export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'datasets, eval runs, batch runs',
    sql: `
CREATE TABLE datasets (
  id           text PRIMARY KEY,
  name         text NOT NULL,
  type         text NOT NULL CHECK (type IN ('eval_set', 'rag_corpus')),
  status       text NOT NULL CHECK (status IN ('ready', 'processing', 'failed')),
  record_count integer NOT NULL,
  metadata     jsonb NOT NULL,
  error        text,
  created_at   timestamptz NOT NULL,
  updated_at   timestamptz NOT NULL
);
CREATE INDEX datasets_created_idx ON datasets (created_at DESC, id DESC);
CREATE INDEX datasets_type_created_idx ON datasets (type, created_at DESC, id DESC);
CREATE INDEX datasets_status_created_idx ON datasets (status, created_at DESC, id DESC);

CREATE TABLE dataset_records (
  dataset_id text NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
  idx        integer NOT NULL,
  record_id  text NOT NULL,
  data       jsonb NOT NULL,
  PRIMARY KEY (dataset_id, idx),
  UNIQUE (dataset_id, record_id)
);

CREATE TABLE eval_runs (
  run_id     text PRIMARY KEY,
  prompt     text NOT NULL,
  response   text NOT NULL,
  reference  text,
  context    text,
  criteria   jsonb NOT NULL,
  scores     jsonb NOT NULL,
  judge      text NOT NULL,
  model      text NOT NULL,
  latency_ms double precision NOT NULL,
  key_id     text,
  created_at timestamptz NOT NULL
);

CREATE TABLE batch_runs (
  id           text PRIMARY KEY,
  dataset_id   text NOT NULL,
  status       text NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'completed_with_failures', 'failed', 'cancelled')),
  criteria     jsonb NOT NULL,
  params       jsonb NOT NULL,
  total        integer NOT NULL,
  completed    integer NOT NULL DEFAULT 0,
  failed       integer NOT NULL DEFAULT 0,
  key_id       text,
  error        text,
  created_at   timestamptz NOT NULL,
  started_at   timestamptz,
  updated_at   timestamptz NOT NULL,
  completed_at timestamptz
);
CREATE INDEX batch_runs_status_idx ON batch_runs (status, created_at, id);
CREATE INDEX batch_runs_dataset_idx ON batch_runs (dataset_id, status);

CREATE TABLE batch_items (
  batch_id          text NOT NULL REFERENCES batch_runs (id) ON DELETE CASCADE,
  idx               integer NOT NULL,
  record_id         text NOT NULL,
  status            text NOT NULL CHECK (status IN ('succeeded', 'failed')),
  response          text,
  prompt_tokens     integer,
  completion_tokens integer,
  latency_ms        double precision,
  scores            jsonb NOT NULL,
  passed            boolean,
  attempts          integer NOT NULL,
  reason            text,
  message           text,
  created_at        timestamptz NOT NULL,
  PRIMARY KEY (batch_id, idx)
);
-- Failures pages and the failed counter read only the failed items.
CREATE INDEX batch_items_failed_idx ON batch_items (batch_id, idx) WHERE status = 'failed';
`,
  },
  {
    version: 2,
    name: 'rag indexes, documents and chunks',
    sql: `
CREATE TABLE rag_indexes (
  id                   text PRIMARY KEY,
  dataset_id           text NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
  status               text NOT NULL CHECK (status IN ('processing', 'ready', 'failed')),
  options              jsonb NOT NULL,
  embedding_model      text,
  embedding_dimensions integer,
  documents_total      integer NOT NULL,
  documents_indexed    integer NOT NULL DEFAULT 0,
  documents_failed     integer NOT NULL DEFAULT 0,
  chunk_count          integer NOT NULL DEFAULT 0,
  fusion               jsonb,
  error                text,
  created_at           timestamptz NOT NULL,
  started_at           timestamptz,
  updated_at           timestamptz NOT NULL,
  completed_at         timestamptz
);
CREATE INDEX rag_indexes_created_idx ON rag_indexes (created_at DESC, id DESC);
CREATE INDEX rag_indexes_dataset_idx ON rag_indexes (dataset_id, created_at DESC, id DESC);
CREATE INDEX rag_indexes_status_idx ON rag_indexes (status, created_at DESC, id DESC);

CREATE TABLE rag_documents (
  index_id    text NOT NULL REFERENCES rag_indexes (id) ON DELETE CASCADE,
  idx         integer NOT NULL,
  doc_id      text NOT NULL,
  status      text NOT NULL CHECK (status IN ('indexed', 'failed')),
  chunk_count integer NOT NULL,
  error       text,
  PRIMARY KEY (index_id, idx)
);

CREATE TABLE rag_chunks (
  key        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  index_id   text NOT NULL REFERENCES rag_indexes (id) ON DELETE CASCADE,
  chunk_id   text NOT NULL,
  doc_idx    integer NOT NULL,
  doc_id     text NOT NULL,
  ordinal    integer NOT NULL,
  span_start integer NOT NULL,
  span_end   integer NOT NULL,
  tokens     integer NOT NULL,
  text       text NOT NULL,
  metadata   jsonb NOT NULL,
  -- float32 little-endian, as in SQLite.
  vector     bytea NOT NULL,
  -- The lexical index: English stemming and stop words, ranked with ts_rank (postgres-rag.ts says why).
  tsv        tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
  UNIQUE (index_id, chunk_id)
);
-- Loading vectors pages through an index in key order.
CREATE INDEX rag_chunks_index_idx ON rag_chunks (index_id, key);
CREATE INDEX rag_chunks_doc_idx ON rag_chunks (index_id, doc_idx);
CREATE INDEX rag_chunks_tsv_idx ON rag_chunks USING gin (tsv);
-- Lexical search reads each matching row's tsvector: the text and the vector live out of line
-- (TOAST) so that the rows it reads stay narrow; the tsvector stays in the row, compressed.
ALTER TABLE rag_chunks ALTER COLUMN text SET STORAGE EXTERNAL, ALTER COLUMN vector SET STORAGE EXTERNAL,
  ALTER COLUMN tsv SET STORAGE MAIN;
ALTER TABLE rag_chunks SET (toast_tuple_target = 256);

-- Each index's frequent lexemes (in at least 1% of its chunks), with the number of chunks
-- holding them: lexical search on a large index skips chunks holding only common ones.
CREATE TABLE rag_lexemes (
  index_id text NOT NULL REFERENCES rag_indexes (id) ON DELETE CASCADE,
  lexeme   text NOT NULL,
  ndoc     integer NOT NULL,
  PRIMARY KEY (index_id, lexeme)
);
`,
  },
];

function checkKnown(applied: number[], known: readonly Migration[]): void {
  const newest = Math.max(0, ...known.map((m) => m.version));
  const ahead = applied.filter((v) => v > newest);
  // A newer server migrated this database; running old code against it could corrupt data.
  if (ahead.length > 0) {
    throw new Error(`Database schema is at version ${Math.max(...ahead)}, newer than this server knows (${newest})`);
  }
}

function pending(applied: Set<number>, known: readonly Migration[]): Migration[] {
  return [...known].sort((a, b) => a.version - b.version).filter((m) => !applied.has(m.version));
}

/**
 * Applies the pending SQLite migrations in one IMMEDIATE transaction, which
 * takes the write lock first, so two processes starting on the same file
 * apply each migration once (the second waits, then finds nothing to do).
 * Returns the versions applied now.
 */
export function migrateSqlite(db: BetterSqlite3.Database, migrations: readonly Migration[] = SQLITE_MIGRATIONS): number[] {
  const run = db.transaction((): number[] => {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT NOT NULL,
      applied_at TEXT NOT NULL
    )`);
    const rows = db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[];
    const applied = rows.map((r) => r.version);
    checkKnown(applied, migrations);
    const todo = pending(new Set(applied), migrations);
    const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
    for (const m of todo) {
      db.exec(m.sql);
      record.run(m.version, m.name, new Date().toISOString());
    }
    return todo.map((m) => m.version);
  });
  return run.immediate();
}

// Fixed first key of the two-int advisory lock; the second is the schema's
// hash, so test runs in different schemas don't wait on each other.
const MIGRATION_LOCK_CLASS = 0x1e7a_0001;

/**
 * Applies the pending PostgreSQL migrations to `schema` (created if missing)
 * in one transaction under a transaction-scoped advisory lock, so concurrent
 * starts (several replicas) apply each migration exactly once. Returns the
 * versions applied now.
 */
export async function migratePostgres(
  pool: pg.Pool,
  schema: string,
  migrations: readonly Migration[] = POSTGRES_MIGRATIONS,
): Promise<number[]> {
  const q = quoteIdent(schema);
  return inTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [MIGRATION_LOCK_CLASS, schema]);
    // Inside the lock, because concurrent CREATE SCHEMA IF NOT EXISTS can still collide on the
    // catalog's unique index; and only when missing, so a role without CREATE on the database
    // can use a schema made for it.
    const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${q}`);
    // SET LOCAL ends with the transaction, so the pooled connection goes back unchanged.
    await client.query(`SET LOCAL search_path TO ${q}`);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    integer PRIMARY KEY,
      name       text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
    const applied = rows.map((r) => r.version);
    checkKnown(applied, migrations);
    const todo = pending(new Set(applied), migrations);
    for (const m of todo) {
      await client.query(m.sql);
      await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
    }
    return todo.map((m) => m.version);
  });
}

/** Runs `fn` in a transaction on one pooled connection; rolls back on any error. */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  let broken = false;
  // The pool listens for errors only on idle clients: a checked-out one whose session is cut (a
  // server restart, pg_terminate_backend) emits 'error' when no query of its own is running, which
  // unheard would end the process. The listener goes on in the pool's callback, synchronously: a
  // fresh connection's first message after ReadyForQuery can be that error, parsed before an
  // awaited pool.connect() would resume.
  const onError = () => {
    broken = true;
  };
  const client = await new Promise<pg.PoolClient>((resolve, reject) => {
    pool.connect((err, c) => {
      if (err || !c) return reject(err ?? new Error('no client'));
      c.on('error', onError);
      resolve(c);
    });
  });
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    // A connection whose ROLLBACK fails is in an unknown state: destroy it rather than pool it.
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    throw err;
  } finally {
    client.removeListener('error', onError);
    client.release(broken);
  }
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * Quotes a schema name for SQL. Only plain identifiers are accepted: the
 * name comes from configuration, and refusing odd ones is simpler and safer
 * than escaping them everywhere.
 */
export function quoteIdent(name: string): string {
  if (!IDENT.test(name)) throw new Error(`Invalid PostgreSQL schema name: ${JSON.stringify(name)}`);
  return `"${name}"`;
}
