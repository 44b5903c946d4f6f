/**
 * SQLite storage (the embedded default) on better-sqlite3. Its calls are
 * synchronous: each repository method runs to completion on the event loop,
 * which also makes every method atomic with respect to the others in this
 * process. Other processes on the same file are kept apart by SQLite's locks
 * (WAL, busy timeout, IMMEDIATE write transactions).
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type BetterSqlite3 from 'better-sqlite3';
import { checkLimit } from './codec.js';
import { datasetCursor, datasetPosition, keysetPage } from './cursor.js';
import { guardStorage, StorageUnavailableError } from './errors.js';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { migrateSqlite } from './migrations.js';
import { sqliteRagRepository } from './sqlite-rag.js';
import {
  batchItemParams,
  batchRunParams,
  batchRunPatch,
  checkRecordsBelong,
  counterDeltas,
  datasetParams,
  evalRunParams,
  recordParams,
  rowMappers,
  type BatchItemRow,
  type BatchRunRow,
  type DatasetRow,
  type EvalRunRow,
  type RecordRow,
  type RowCodec,
} from './rows.js';
import type {
  BatchItem,
  BatchRepository,
  Dataset,
  DatasetListQuery,
  DatasetRecord,
  DatasetRepository,
  EvalRunRepository,
  Page,
  Storage,
} from './types.js';

/** How long a writer waits for another process's lock before SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;

/** better-sqlite3's values for JSON (TEXT), time (TEXT) and boolean (INTEGER 0/1) columns. */
type SqliteColumns = { json: string; time: string; bool: number };

const codec: RowCodec<SqliteColumns> = {
  json: (v) => JSON.parse(v),
  // Every time was written through isoTime (or toISOString), so the stored text is already canonical.
  time: (v) => v,
  bool: (v) => v === 1,
  // better-sqlite3 binds no booleans.
  boolParam: (b) => (b ? 1 : 0),
};

const mappers = rowMappers(codec);
const { toDataset, toRecord, toEvalRun, toBatchRun, toBatchItem } = mappers;

/** Records per write transaction of a large upload: ~30-60 ms of the event loop each on this machine. */
const WRITE_SLICE = 2000;

function datasetRepository(db: BetterSqlite3.Database): DatasetRepository {
  const insertDataset = db.prepare(
    `INSERT INTO datasets (id, name, type, status, record_count, metadata, error, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertRecord = db.prepare('INSERT INTO dataset_records (dataset_id, idx, record_id, data) VALUES (?, ?, ?, ?)');
  // A dataset being written (see create) is nobody's to read yet.
  const selectDataset = db.prepare('SELECT * FROM datasets WHERE id = ? AND writing = 0');
  const selectRecords = db.prepare(
    'SELECT * FROM dataset_records WHERE dataset_id = ? AND idx > ? ORDER BY idx LIMIT ?',
  );
  const deleteDataset = db.prepare('DELETE FROM datasets WHERE id = ?');
  // One prepared statement per filter combination, made on first use.
  const listStatements = new Map<string, BetterSqlite3.Statement>();

  // One transaction with one prepared statement: a small dataset commits once (one fsync), not once per record.
  const create = db.transaction((d: Dataset, records: DatasetRecord[]) => {
    insertDataset.run(...datasetParams(d));
    for (const r of records) insertRecord.run(...recordParams(r));
  });
  const insertRecords = db.transaction((records: DatasetRecord[]) => {
    for (const r of records) insertRecord.run(...recordParams(r));
  });
  const markWriting = db.prepare('UPDATE datasets SET writing = 1 WHERE id = ?');
  const startWriting = db.transaction((d: Dataset) => {
    insertDataset.run(...datasetParams(d));
    markWriting.run(d.id);
  });
  const finishWriting = db.prepare('UPDATE datasets SET writing = 0, updated_at = ? WHERE id = ?');

  return {
    /**
     * A large dataset is written a slice at a time, letting the event loop
     * run between slices (50,000 records in one go held it for seconds,
     * stalling every stream): the dataset row first, marked `writing`, which
     * get and list never show; its records in transactions of WRITE_SLICE;
     * then the mark goes. A failure removes it; a crash leaves it marked,
     * and the next start removes it (openSqliteStorage).
     */
    async create(dataset, records) {
      checkRecordsBelong(dataset.id, records);
      if (records.length <= WRITE_SLICE) {
        create.immediate(dataset, records);
        return;
      }
      startWriting.immediate(dataset);
      try {
        for (let i = 0; i < records.length; i += WRITE_SLICE) {
          await yieldToLoop();
          insertRecords.immediate(records.slice(i, i + WRITE_SLICE));
        }
        finishWriting.run(dataset.updatedAt, dataset.id);
      } catch (err) {
        try {
          deleteDataset.run(dataset.id);
        } catch {
          // The store itself failed (read-only, full): the start-up sweep removes what is left.
        }
        throw err;
      }
    },
    async get(id) {
      const row = selectDataset.get(id) as DatasetRow<SqliteColumns> | undefined;
      return row ? toDataset(row) : null;
    },
    async list(query: DatasetListQuery): Promise<Page<Dataset>> {
      const limit = checkLimit(query.limit);
      const after = query.cursor === undefined ? null : datasetCursor.decode(query.cursor);
      const where: string[] = ['writing = 0'];
      const params: unknown[] = [];
      if (query.type !== undefined) {
        where.push('type = ?');
        params.push(query.type);
      }
      if (query.status !== undefined) {
        where.push('status = ?');
        params.push(query.status);
      }
      if (after) {
        // Expanded keyset condition: the leading `created_at <=` gives the index a range to seek.
        where.push('created_at <= ? AND (created_at < ? OR id < ?)');
        params.push(after.createdAt, after.createdAt, after.id);
      }
      const sql = `SELECT * FROM datasets ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY created_at DESC, id DESC LIMIT ?`;
      let stmt = listStatements.get(sql);
      if (!stmt) {
        stmt = db.prepare(sql);
        listStatements.set(sql, stmt);
      }
      // One row more than the page: keysetPage uses it to tell whether another page exists.
      const rows = stmt.all(...params, limit + 1) as DatasetRow<SqliteColumns>[];
      return keysetPage(rows, limit, toDataset, datasetCursor, datasetPosition);
    },
    async records(datasetId, afterIndex, limit) {
      return (selectRecords.all(datasetId, afterIndex, checkLimit(limit)) as RecordRow<SqliteColumns>[]).map(toRecord);
    },
    async delete(id) {
      // dataset_records go with it (ON DELETE CASCADE).
      return deleteDataset.run(id).changes > 0;
    },
  };
}

function evalRunRepository(db: BetterSqlite3.Database): EvalRunRepository {
  const insert = db.prepare(
    `INSERT INTO eval_runs (run_id, prompt, response, reference, context, criteria, scores, judge, model, latency_ms, key_id, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const select = db.prepare('SELECT * FROM eval_runs WHERE run_id = ?');
  return {
    async create(r) {
      insert.run(...evalRunParams(r));
    },
    async get(runId) {
      const row = select.get(runId) as EvalRunRow<SqliteColumns> | undefined;
      return row ? toEvalRun(row) : null;
    },
  };
}

function batchRepository(db: BetterSqlite3.Database): BatchRepository {
  const insertRun = db.prepare(
    `INSERT INTO batch_runs (id, dataset_id, status, criteria, params, total, completed, failed, key_id, error,
                             created_at, started_at, updated_at, completed_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const selectRun = db.prepare('SELECT * FROM batch_runs WHERE id = ?');
  const selectItemStatus = db.prepare('SELECT status FROM batch_items WHERE batch_id = ? AND idx = ?');
  const upsertItem = db.prepare(
    `INSERT INTO batch_items (batch_id, idx, record_id, status, response, prompt_tokens, completion_tokens, latency_ms,
                              scores, passed, attempts, reason, message, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (batch_id, idx) DO UPDATE SET
       record_id = excluded.record_id, status = excluded.status, response = excluded.response,
       prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,
       latency_ms = excluded.latency_ms, scores = excluded.scores, passed = excluded.passed,
       attempts = excluded.attempts, reason = excluded.reason, message = excluded.message,
       created_at = excluded.created_at`,
  );
  const bumpCounters = db.prepare(
    'UPDATE batch_runs SET completed = completed + ?, failed = failed + ?, updated_at = ? WHERE id = ?',
  );
  const selectItems = db.prepare('SELECT * FROM batch_items WHERE batch_id = ? AND idx > ? ORDER BY idx LIMIT ?');
  const selectFailedItems = db.prepare(
    "SELECT * FROM batch_items WHERE batch_id = ? AND (status = 'failed' OR passed IS NOT 1) AND idx > ? ORDER BY idx LIMIT ?",
  );
  const selectDone = db.prepare('SELECT idx FROM batch_items WHERE batch_id = ?').pluck();
  const selectInUse = db.prepare(
    "SELECT EXISTS (SELECT 1 FROM batch_runs WHERE dataset_id = ? AND status IN ('queued', 'running'))",
  ).pluck();

  const putItem = db.transaction((it: BatchItem) => {
    if (!selectRun.get(it.batchId)) throw new Error(`Batch run ${it.batchId} not found`);
    const old = selectItemStatus.get(it.batchId, it.index) as { status: BatchItem['status'] } | undefined;
    upsertItem.run(...batchItemParams(it, codec));
    const d = counterDeltas(it.status, old?.status);
    bumpCounters.run(d.completed, d.failed, new Date().toISOString(), it.batchId);
  });

  return {
    async create(r) {
      insertRun.run(...batchRunParams(r));
    },
    async get(id) {
      const row = selectRun.get(id) as BatchRunRow<SqliteColumns> | undefined;
      return row ? toBatchRun(row) : null;
    },
    async update(id, patch, onlyIfStatus) {
      const sets = batchRunPatch(patch);
      const only = onlyIfStatus ? ` AND status IN (${onlyIfStatus.map(() => '?').join(', ')})` : '';
      const row = db
        .prepare(`UPDATE batch_runs SET ${sets.map(([column]) => `${column} = ?`).join(', ')} WHERE id = ?${only} RETURNING *`)
        .get(...sets.map(([, value]) => value), id, ...(onlyIfStatus ?? [])) as BatchRunRow<SqliteColumns> | undefined;
      return row ? toBatchRun(row) : null;
    },
    async putItem(item) {
      putItem.immediate(item);
    },
    async items(batchId, opts) {
      const stmt = opts.notPassedOnly ? selectFailedItems : selectItems;
      const rows = stmt.all(batchId, opts.afterIndex, checkLimit(opts.limit)) as BatchItemRow<SqliteColumns>[];
      return rows.map(toBatchItem);
    },
    async doneIndexes(batchId) {
      return new Set(selectDone.all(batchId) as number[]);
    },
    async listByStatus(statuses) {
      if (statuses.length === 0) return [];
      const rows = db
        .prepare(`SELECT * FROM batch_runs WHERE status IN (${statuses.map(() => '?').join(', ')}) ORDER BY created_at, id`)
        .all(...statuses) as BatchRunRow<SqliteColumns>[];
      return rows.map(toBatchRun);
    },
    async datasetInUse(datasetId) {
      return selectInUse.get(datasetId) === 1;
    },
  };
}

/** Whether this process may write the file (or directory); false when it is read-only, immutable or unreadable. */
function writable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.W_OK);
    return true;
  } catch (err) {
    // A WAL or journal file that does not exist now is no obstacle.
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/**
 * SQLite's errors about the data directory itself (read-only, full, a write
 * the file system refused, a lock held too long by another process) as
 * StorageUnavailableError; anything else unchanged. A file system that
 * refuses writes to an open database shows as SQLITE_IOERR_WRITE, not
 * SQLITE_READONLY: the reason then comes from whether the files are
 * writable now.
 */
function sqliteFault(dataDir: string): (err: unknown) => unknown {
  const files = [dataDir, ...['server.db', 'server.db-wal', 'server.db-journal'].map((f) => path.join(dataDir, f))];
  return (err) => {
    if (!(err instanceof Database.SqliteError)) return err;
    const { code } = err;
    if (code === 'SQLITE_FULL') return new StorageUnavailableError('storage is full', { cause: err });
    if (code.startsWith('SQLITE_BUSY')) return new StorageUnavailableError('database is locked by another process', { cause: err });
    if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_CANTOPEN')) {
      const readOnly = code.startsWith('SQLITE_READONLY') || !files.every(writable);
      return new StorageUnavailableError(readOnly ? 'storage is read-only' : 'storage I/O error', { cause: err });
    }
    return err;
  };
}

/**
 * Opens (creating if needed) `<dataDir>/server.db` and applies pending
 * migrations.
 *
 * WAL lets readers (result pages, artifact downloads) proceed while a batch
 * run writes; synchronous=NORMAL is the usual WAL pairing: a process crash
 * loses nothing, a power cut at most the last commits.
 */
export async function openSqliteStorage(dataDir: string): Promise<Storage> {
  fs.mkdirSync(dataDir, { recursive: true });
  const db = new Database(path.join(dataDir, 'server.db'), { timeout: BUSY_TIMEOUT_MS });
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    migrateSqlite(db);
    // Datasets a crash left half written (create marks them `writing` until their last record is in).
    db.prepare('DELETE FROM datasets WHERE writing = 1').run();
  } catch (err) {
    db.close();
    throw err;
  }
  let closed = false;
  const fault = sqliteFault(dataDir);
  return {
    kind: 'sqlite',
    datasets: guardStorage(datasetRepository(db), fault),
    evalRuns: guardStorage(evalRunRepository(db), fault),
    batches: guardStorage(batchRepository(db), fault),
    rag: guardStorage(sqliteRagRepository(db, mappers), fault),
    async close() {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
}
