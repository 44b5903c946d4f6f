/**
 * PostgreSQL storage on a bounded `pg.Pool`. Every statement names its
 * tables with the schema (`"schema".datasets`) instead of relying on a
 * per-connection search_path, which poolers in transaction mode don't keep.
 */
import pg from 'pg';
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
import { inTransaction, migratePostgres, quoteIdent } from './migrations.js';
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

/** Rows per multi-row INSERT: 1,000 x 4 parameters stays far below the 65,535 parameter limit. */
const INSERT_BATCH = 1000;
const POOL_MAX = 10;

interface Tables {
  datasets: string;
  records: string;
  evalRuns: string;
  batchRuns: string;
  batchItems: string;
}

interface DatasetRow {
  id: string;
  name: string;
  type: Dataset['type'];
  status: Dataset['status'];
  record_count: number;
  metadata: Record<string, unknown>;
  error: string | null;
  created_at: Date;
  updated_at: Date;
}

interface RecordRow {
  dataset_id: string;
  idx: number;
  record_id: string;
  data: Record<string, unknown>;
}

interface EvalRunRow {
  run_id: string;
  prompt: string;
  response: string;
  reference: string | null;
  context: string | null;
  criteria: string[];
  scores: EvalRun['scores'];
  judge: string;
  model: string;
  latency_ms: number;
  key_id: string | null;
  created_at: Date;
}

interface BatchRunRow {
  id: string;
  dataset_id: string;
  status: BatchStatus;
  criteria: string[];
  params: Record<string, unknown>;
  total: number;
  completed: number;
  failed: number;
  key_id: string | null;
  error: string | null;
  created_at: Date;
  started_at: Date | null;
  updated_at: Date;
  completed_at: Date | null;
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
  scores: BatchItem['scores'];
  passed: boolean | null;
  attempts: number;
  reason: string | null;
  message: string | null;
  created_at: Date;
}

const iso = (d: Date): string => d.toISOString();
const isoOrNull = (d: Date | null): string | null => (d === null ? null : d.toISOString());

const toDataset = (r: DatasetRow): Dataset => ({
  id: r.id,
  name: r.name,
  type: r.type,
  status: r.status,
  recordCount: r.record_count,
  metadata: r.metadata,
  error: r.error,
  createdAt: iso(r.created_at),
  updatedAt: iso(r.updated_at),
});

const toRecord = (r: RecordRow): DatasetRecord => ({
  datasetId: r.dataset_id,
  index: r.idx,
  recordId: r.record_id,
  data: r.data,
});

const toEvalRun = (r: EvalRunRow): EvalRun => ({
  runId: r.run_id,
  prompt: r.prompt,
  response: r.response,
  reference: r.reference,
  context: r.context,
  criteria: r.criteria,
  scores: r.scores,
  judge: r.judge,
  model: r.model,
  latencyMs: r.latency_ms,
  keyId: r.key_id,
  createdAt: iso(r.created_at),
});

const toBatchRun = (r: BatchRunRow): BatchRun => ({
  id: r.id,
  datasetId: r.dataset_id,
  status: r.status,
  criteria: r.criteria,
  params: r.params,
  total: r.total,
  completed: r.completed,
  failed: r.failed,
  keyId: r.key_id,
  error: r.error,
  createdAt: iso(r.created_at),
  startedAt: isoOrNull(r.started_at),
  updatedAt: iso(r.updated_at),
  completedAt: isoOrNull(r.completed_at),
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
  scores: r.scores,
  passed: r.passed,
  attempts: r.attempts,
  reason: r.reason,
  message: r.message,
  createdAt: iso(r.created_at),
});

function datasetRepository(pool: pg.Pool, t: Tables): DatasetRepository {
  return {
    async create(d, records) {
      const datasetRow = [
        d.id,
        cleanText(d.name),
        d.type,
        d.status,
        d.recordCount,
        toJson(d.metadata),
        cleanTextOrNull(d.error),
        isoTime(d.createdAt),
        isoTime(d.updatedAt),
      ];
      for (const r of records) {
        if (r.datasetId !== d.id) throw new Error(`Record ${r.index} belongs to dataset ${r.datasetId}, not ${d.id}`);
      }
      await inTransaction(pool, async (c) => {
        await c.query(
          `INSERT INTO ${t.datasets} (id, name, type, status, record_count, metadata, error, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
          datasetRow,
        );
        // Multi-row INSERTs in one transaction: a round trip per 1,000 records, one commit for all.
        for (let start = 0; start < records.length; start += INSERT_BATCH) {
          const chunk = records.slice(start, start + INSERT_BATCH);
          const values: string[] = [];
          const params: unknown[] = [];
          for (const r of chunk) {
            const p = params.length;
            values.push(`($${p + 1}, $${p + 2}, $${p + 3}, $${p + 4})`);
            params.push(d.id, r.index, cleanText(r.recordId), toJson(r.data));
          }
          await c.query(`INSERT INTO ${t.records} (dataset_id, idx, record_id, data) VALUES ${values.join(', ')}`, params);
        }
      });
    },
    async get(id) {
      const { rows } = await pool.query<DatasetRow>(`SELECT * FROM ${t.datasets} WHERE id = $1`, [id]);
      return rows[0] ? toDataset(rows[0]) : null;
    },
    async list(query: DatasetListQuery): Promise<Page<Dataset>> {
      const limit = checkLimit(query.limit);
      const after = query.cursor === undefined ? null : decodeCursor(query.cursor);
      const where: string[] = [];
      const params: unknown[] = [];
      if (query.type !== undefined) {
        params.push(query.type);
        where.push(`type = $${params.length}`);
      }
      if (query.status !== undefined) {
        params.push(query.status);
        where.push(`status = $${params.length}`);
      }
      if (after) {
        params.push(after.createdAt, after.id);
        where.push(`(created_at, id) < ($${params.length - 1}::timestamptz, $${params.length})`);
      }
      params.push(limit + 1);
      // One extra row tells whether another page exists, so the last page has no cursor.
      const { rows } = await pool.query<DatasetRow>(
        `SELECT * FROM ${t.datasets} ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
        params,
      );
      const items = rows.slice(0, limit).map(toDataset);
      const last = items[items.length - 1];
      return { items, nextCursor: rows.length > limit && last ? encodeCursor(last) : null };
    },
    async records(datasetId, afterIndex, limit) {
      const { rows } = await pool.query<RecordRow>(
        `SELECT * FROM ${t.records} WHERE dataset_id = $1 AND idx > $2 ORDER BY idx LIMIT $3`,
        [datasetId, afterIndex, checkLimit(limit)],
      );
      return rows.map(toRecord);
    },
    async delete(id) {
      // dataset_records go with it (ON DELETE CASCADE).
      const res = await pool.query(`DELETE FROM ${t.datasets} WHERE id = $1`, [id]);
      return (res.rowCount ?? 0) > 0;
    },
  };
}

function evalRunRepository(pool: pg.Pool, t: Tables): EvalRunRepository {
  return {
    async create(r) {
      await pool.query(
        `INSERT INTO ${t.evalRuns} (run_id, prompt, response, reference, context, criteria, scores, judge, model,
                                    latency_ms, key_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
        [
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
        ],
      );
    },
    async get(runId) {
      const { rows } = await pool.query<EvalRunRow>(`SELECT * FROM ${t.evalRuns} WHERE run_id = $1`, [runId]);
      return rows[0] ? toEvalRun(rows[0]) : null;
    },
  };
}

const PATCH_COLUMNS = {
  status: 'status',
  startedAt: 'started_at',
  completedAt: 'completed_at',
  error: 'error',
} as const;

function batchRepository(pool: pg.Pool, t: Tables): BatchRepository {
  return {
    async create(r) {
      await pool.query(
        `INSERT INTO ${t.batchRuns} (id, dataset_id, status, criteria, params, total, completed, failed, key_id, error,
                                     created_at, started_at, updated_at, completed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
        [
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
        ],
      );
    },
    async get(id) {
      const { rows } = await pool.query<BatchRunRow>(`SELECT * FROM ${t.batchRuns} WHERE id = $1`, [id]);
      return rows[0] ? toBatchRun(rows[0]) : null;
    },
    async update(id, patch) {
      const sets: string[] = [];
      const params: unknown[] = [];
      for (const [key, column] of Object.entries(PATCH_COLUMNS) as [keyof typeof PATCH_COLUMNS, string][]) {
        const value = patch[key];
        if (value === undefined) continue;
        if (key === 'startedAt' || key === 'completedAt') params.push(isoTimeOrNull(value));
        else if (key === 'error') params.push(cleanTextOrNull(value));
        else params.push(value);
        sets.push(`${column} = $${params.length}`);
      }
      // Every change moves updated_at, whether or not the caller set it.
      params.push(patch.updatedAt !== undefined ? isoTime(patch.updatedAt) : new Date().toISOString());
      sets.push(`updated_at = $${params.length}`);
      params.push(id);
      const { rows } = await pool.query<BatchRunRow>(
        `UPDATE ${t.batchRuns} SET ${sets.join(', ')} WHERE id = $${params.length} RETURNING *`,
        params,
      );
      return rows[0] ? toBatchRun(rows[0]) : null;
    },
    async putItem(it) {
      const item = [
        it.batchId,
        it.index,
        cleanText(it.recordId),
        it.status,
        cleanTextOrNull(it.response),
        it.promptTokens,
        it.completionTokens,
        it.latencyMs,
        toJson(it.scores),
        it.passed,
        it.attempts,
        cleanTextOrNull(it.reason),
        cleanTextOrNull(it.message),
        isoTime(it.createdAt),
      ];
      await inTransaction(pool, async (c) => {
        // Lock the run row first: concurrent writes for one run then take turns, so each
        // one sees the item's previous status as committed by the one before (under READ
        // COMMITTED, two writers of the same index would otherwise both count it as new).
        const run = await c.query(`SELECT 1 FROM ${t.batchRuns} WHERE id = $1 FOR NO KEY UPDATE`, [it.batchId]);
        if (run.rowCount === 0) throw new Error(`Batch run ${it.batchId} not found`);
        const old = await c.query<{ status: BatchItem['status'] }>(
          `SELECT status FROM ${t.batchItems} WHERE batch_id = $1 AND idx = $2`,
          [it.batchId, it.index],
        );
        await c.query(
          `INSERT INTO ${t.batchItems} (batch_id, idx, record_id, status, response, prompt_tokens, completion_tokens,
                                        latency_ms, scores, passed, attempts, reason, message, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
           ON CONFLICT (batch_id, idx) DO UPDATE SET
             record_id = excluded.record_id, status = excluded.status, response = excluded.response,
             prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,
             latency_ms = excluded.latency_ms, scores = excluded.scores, passed = excluded.passed,
             attempts = excluded.attempts, reason = excluded.reason, message = excluded.message,
             created_at = excluded.created_at`,
          item,
        );
        // The counters move by the difference between the item's old and new status: the
        // same result as recounting batch_items, in O(1) per write instead of a scan.
        const oldStatus = old.rows[0]?.status;
        const dc = (it.status === 'succeeded' ? 1 : 0) - (oldStatus === 'succeeded' ? 1 : 0);
        const df = (it.status === 'failed' ? 1 : 0) - (oldStatus === 'failed' ? 1 : 0);
        await c.query(
          `UPDATE ${t.batchRuns} SET completed = completed + $1, failed = failed + $2, updated_at = $3 WHERE id = $4`,
          [dc, df, new Date().toISOString(), it.batchId],
        );
      });
    },
    async items(batchId, opts) {
      const failed = opts.notPassedOnly ? "AND (status = 'failed' OR passed IS NOT TRUE)" : '';
      const { rows } = await pool.query<BatchItemRow>(
        `SELECT * FROM ${t.batchItems} WHERE batch_id = $1 ${failed} AND idx > $2 ORDER BY idx LIMIT $3`,
        [batchId, opts.afterIndex, checkLimit(opts.limit)],
      );
      return rows.map(toBatchItem);
    },
    async doneIndexes(batchId) {
      const { rows } = await pool.query<{ idx: number }>(`SELECT idx FROM ${t.batchItems} WHERE batch_id = $1`, [
        batchId,
      ]);
      return new Set(rows.map((r) => r.idx));
    },
    async listByStatus(statuses) {
      if (statuses.length === 0) return [];
      const { rows } = await pool.query<BatchRunRow>(
        `SELECT * FROM ${t.batchRuns} WHERE status = ANY($1::text[]) ORDER BY created_at, id`,
        [statuses],
      );
      return rows.map(toBatchRun);
    },
    async datasetInUse(datasetId) {
      const { rows } = await pool.query<{ in_use: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM ${t.batchRuns} WHERE dataset_id = $1 AND status IN ('queued', 'running')) AS in_use`,
        [datasetId],
      );
      return rows[0]?.in_use === true;
    },
  };
}

/** Options for openPostgresStorage. */
export interface PostgresStorageOptions {
  /** Schema holding the tables, created if missing (default `public`). Plain identifiers only. */
  schema?: string;
  /** Most pooled connections (default 10). */
  maxConnections?: number;
}

/**
 * Connects to PostgreSQL at `url`, applies pending migrations to the schema
 * and returns the storage. Fails (and closes the pool) if the database is
 * unreachable or a migration fails.
 */
export async function openPostgresStorage(url: string, opts: PostgresStorageOptions = {}): Promise<Storage> {
  const schema = opts.schema ?? 'public';
  const q = quoteIdent(schema);
  const pool = new pg.Pool({ connectionString: url, max: opts.maxConnections ?? POOL_MAX });
  // An idle client that loses its server emits 'error' on the pool; without a listener that
  // would crash the process. The pool already drops that client and the next query reconnects.
  pool.on('error', () => {});
  try {
    await migratePostgres(pool, schema);
  } catch (err) {
    await pool.end().catch(() => {});
    throw err;
  }
  const t: Tables = {
    datasets: `${q}.datasets`,
    records: `${q}.dataset_records`,
    evalRuns: `${q}.eval_runs`,
    batchRuns: `${q}.batch_runs`,
    batchItems: `${q}.batch_items`,
  };
  let closing: Promise<void> | null = null;
  return {
    kind: 'postgres',
    datasets: datasetRepository(pool, t),
    evalRuns: evalRunRepository(pool, t),
    batches: batchRepository(pool, t),
    close() {
      closing ??= pool.end();
      return closing;
    },
  };
}
