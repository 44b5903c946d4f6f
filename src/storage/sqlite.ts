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
import {
  checkLimit,
  cleanText,
  cleanTextOrNull,
  decodeCursor,
  encodeCursor,
  isoTime,
  isoTimeOrNull,
  toJson,
} from './codec.js';
import { migrateSqlite } from './migrations.js';
import type {
  BatchItem,
  BatchRepository,
  BatchRun,
  BatchStatus,
  Dataset,
  DatasetListQuery,
  DatasetRecord,
  DatasetRepository,
  EvalRun,
  EvalRunRepository,
  Page,
  Storage,
} from './types.js';

/** How long a writer waits for another process's lock before SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;

interface DatasetRow {
  id: string;
  name: string;
  type: Dataset['type'];
  status: Dataset['status'];
  record_count: number;
  metadata: string;
  error: string | null;
  created_at: string;
  updated_at: string;
}

interface RecordRow {
  dataset_id: string;
  idx: number;
  record_id: string;
  data: string;
}

interface EvalRunRow {
  run_id: string;
  prompt: string;
  response: string;
  reference: string | null;
  context: string | null;
  criteria: string;
  scores: string;
  judge: string;
  model: string;
  latency_ms: number;
  key_id: string | null;
  created_at: string;
}

interface BatchRunRow {
  id: string;
  dataset_id: string;
  status: BatchStatus;
  criteria: string;
  params: string;
  total: number;
  completed: number;
  failed: number;
  key_id: string | null;
  error: string | null;
  created_at: string;
  started_at: string | null;
  updated_at: string;
  completed_at: string | null;
}

interface BatchItemRow {
  batch_id: string;
  idx: number;
  record_id: string;
  status: BatchItem['status'];
  response: string | null;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  latency_ms: number | null;
  scores: string;
  passed: number | null;
  attempts: number;
  reason: string | null;
  message: string | null;
  created_at: string;
}

const toDataset = (r: DatasetRow): Dataset => ({
  id: r.id,
  name: r.name,
  type: r.type,
  status: r.status,
  recordCount: r.record_count,
  metadata: JSON.parse(r.metadata) as Record<string, unknown>,
  error: r.error,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const toRecord = (r: RecordRow): DatasetRecord => ({
  datasetId: r.dataset_id,
  index: r.idx,
  recordId: r.record_id,
  data: JSON.parse(r.data) as Record<string, unknown>,
});

const toEvalRun = (r: EvalRunRow): EvalRun => ({
  runId: r.run_id,
  prompt: r.prompt,
  response: r.response,
  reference: r.reference,
  context: r.context,
  criteria: JSON.parse(r.criteria) as string[],
  scores: JSON.parse(r.scores) as EvalRun['scores'],
  judge: r.judge,
  model: r.model,
  latencyMs: r.latency_ms,
  keyId: r.key_id,
  createdAt: r.created_at,
});

const toBatchRun = (r: BatchRunRow): BatchRun => ({
  id: r.id,
  datasetId: r.dataset_id,
  status: r.status,
  criteria: JSON.parse(r.criteria) as string[],
  params: JSON.parse(r.params) as Record<string, unknown>,
  total: r.total,
  completed: r.completed,
  failed: r.failed,
  keyId: r.key_id,
  error: r.error,
  createdAt: r.created_at,
  startedAt: r.started_at,
  updatedAt: r.updated_at,
  completedAt: r.completed_at,
});

const toBatchItem = (r: BatchItemRow): BatchItem => ({
  batchId: r.batch_id,
  index: r.idx,
  recordId: r.record_id,
  status: r.status,
  response: r.response,
  promptTokens: r.prompt_tokens,
  completionTokens: r.completion_tokens,
  latencyMs: r.latency_ms,
  scores: JSON.parse(r.scores) as BatchItem['scores'],
  passed: r.passed === null ? null : r.passed === 1,
  attempts: r.attempts,
  reason: r.reason,
  message: r.message,
  createdAt: r.created_at,
});

function datasetRepository(db: BetterSqlite3.Database): DatasetRepository {
  const insertDataset = db.prepare(
    `INSERT INTO datasets (id, name, type, status, record_count, metadata, error, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertRecord = db.prepare('INSERT INTO dataset_records (dataset_id, idx, record_id, data) VALUES (?, ?, ?, ?)');
  const selectDataset = db.prepare('SELECT * FROM datasets WHERE id = ?');
  const selectRecords = db.prepare(
    'SELECT * FROM dataset_records WHERE dataset_id = ? AND idx > ? ORDER BY idx LIMIT ?',
  );
  const deleteDataset = db.prepare('DELETE FROM datasets WHERE id = ?');
  // One prepared statement per filter combination, made on first use.
  const listStatements = new Map<string, BetterSqlite3.Statement>();

  // One transaction with one prepared statement: 50,000 records commit once (one fsync), not 50,000 times.
  const create = db.transaction((d: Dataset, records: DatasetRecord[]) => {
    insertDataset.run(
      d.id,
      cleanText(d.name),
      d.type,
      d.status,
      d.recordCount,
      toJson(d.metadata),
      cleanTextOrNull(d.error),
      isoTime(d.createdAt),
      isoTime(d.updatedAt),
    );
    for (const r of records) {
      if (r.datasetId !== d.id) throw new Error(`Record ${r.index} belongs to dataset ${r.datasetId}, not ${d.id}`);
      insertRecord.run(d.id, r.index, cleanText(r.recordId), toJson(r.data));
    }
  });

  return {
    async create(dataset, records) {
      create.immediate(dataset, records);
    },
    async get(id) {
      const row = selectDataset.get(id) as DatasetRow | undefined;
      return row ? toDataset(row) : null;
    },
    async list(query: DatasetListQuery): Promise<Page<Dataset>> {
      const limit = checkLimit(query.limit);
      const after = query.cursor === undefined ? null : decodeCursor(query.cursor);
      const where: string[] = [];
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
      // One extra row tells whether another page exists, so the last page has no cursor.
      const rows = stmt.all(...params, limit + 1) as DatasetRow[];
      const items = rows.slice(0, limit).map(toDataset);
      const last = items[items.length - 1];
      return { items, nextCursor: rows.length > limit && last ? encodeCursor(last) : null };
    },
    async records(datasetId, afterIndex, limit) {
      return (selectRecords.all(datasetId, afterIndex, checkLimit(limit)) as RecordRow[]).map(toRecord);
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
      insert.run(
        r.runId,
        cleanText(r.prompt),
        cleanText(r.response),
        cleanTextOrNull(r.reference),
        cleanTextOrNull(r.context),
        toJson(r.criteria),
        toJson(r.scores),
        r.judge,
        r.model,
        r.latencyMs,
        r.keyId,
        isoTime(r.createdAt),
      );
    },
    async get(runId) {
      const row = select.get(runId) as EvalRunRow | undefined;
      return row ? toEvalRun(row) : null;
    },
  };
}

const PATCH_COLUMNS = {
  status: 'status',
  startedAt: 'started_at',
  completedAt: 'completed_at',
  error: 'error',
} as const;

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

  // The counters move by the difference between the item's old and new
  // status: the same result as recounting batch_items, in O(1) per write
  // instead of a scan of the run's items (50,000 writes x 50,000 rows).
  const putItem = db.transaction((it: BatchItem) => {
    if (!selectRun.get(it.batchId)) throw new Error(`Batch run ${it.batchId} not found`);
    const old = selectItemStatus.get(it.batchId, it.index) as { status: BatchItem['status'] } | undefined;
    upsertItem.run(
      it.batchId,
      it.index,
      cleanText(it.recordId),
      it.status,
      cleanTextOrNull(it.response),
      it.promptTokens,
      it.completionTokens,
      it.latencyMs,
      toJson(it.scores),
      it.passed === null ? null : it.passed ? 1 : 0,
      it.attempts,
      cleanTextOrNull(it.reason),
      cleanTextOrNull(it.message),
      isoTime(it.createdAt),
    );
    const dc = (it.status === 'succeeded' ? 1 : 0) - (old?.status === 'succeeded' ? 1 : 0);
    const df = (it.status === 'failed' ? 1 : 0) - (old?.status === 'failed' ? 1 : 0);
    bumpCounters.run(dc, df, new Date().toISOString(), it.batchId);
  });

  return {
    async create(r) {
      insertRun.run(
        r.id,
        r.datasetId,
        r.status,
        toJson(r.criteria),
        toJson(r.params),
        r.total,
        r.completed,
        r.failed,
        r.keyId,
        cleanTextOrNull(r.error),
        isoTime(r.createdAt),
        isoTimeOrNull(r.startedAt),
        isoTime(r.updatedAt),
        isoTimeOrNull(r.completedAt),
      );
    },
    async get(id) {
      const row = selectRun.get(id) as BatchRunRow | undefined;
      return row ? toBatchRun(row) : null;
    },
    async update(id, patch) {
      const sets: string[] = [];
      const params: unknown[] = [];
      for (const [key, column] of Object.entries(PATCH_COLUMNS) as [keyof typeof PATCH_COLUMNS, string][]) {
        const value = patch[key];
        if (value === undefined) continue;
        sets.push(`${column} = ?`);
        if (key === 'startedAt' || key === 'completedAt') params.push(isoTimeOrNull(value));
        else if (key === 'error') params.push(cleanTextOrNull(value));
        else params.push(value);
      }
      // Every change moves updated_at, whether or not the caller set it.
      sets.push('updated_at = ?');
      params.push(patch.updatedAt !== undefined ? isoTime(patch.updatedAt) : new Date().toISOString());
      const row = db.prepare(`UPDATE batch_runs SET ${sets.join(', ')} WHERE id = ? RETURNING *`).get(...params, id) as
        | BatchRunRow
        | undefined;
      return row ? toBatchRun(row) : null;
    },
    async putItem(item) {
      putItem.immediate(item);
    },
    async items(batchId, opts) {
      const stmt = opts.notPassedOnly ? selectFailedItems : selectItems;
      return (stmt.all(batchId, opts.afterIndex, checkLimit(opts.limit)) as BatchItemRow[]).map(toBatchItem);
    },
    async doneIndexes(batchId) {
      return new Set(selectDone.all(batchId) as number[]);
    },
    async listByStatus(statuses) {
      if (statuses.length === 0) return [];
      const rows = db
        .prepare(`SELECT * FROM batch_runs WHERE status IN (${statuses.map(() => '?').join(', ')}) ORDER BY created_at, id`)
        .all(...statuses) as BatchRunRow[];
      return rows.map(toBatchRun);
    },
    async datasetInUse(datasetId) {
      return selectInUse.get(datasetId) === 1;
    },
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
  } catch (err) {
    db.close();
    throw err;
  }
  let closed = false;
  return {
    kind: 'sqlite',
    datasets: datasetRepository(db),
    evalRuns: evalRunRepository(db),
    batches: batchRepository(db),
    async close() {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
}
