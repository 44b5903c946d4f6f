/**
 * PostgreSQL storage on a bounded `pg.Pool`. Every statement names its
 * tables with the schema (`"schema".datasets`) instead of relying on a
 * per-connection search_path, which poolers in transaction mode don't keep.
 */
import pg from 'pg';
import { checkLimit } from './codec.js';
import { datasetCursor, datasetPosition, keysetPage } from './cursor.js';
import { guardStorage, StorageUnavailableError } from './errors.js';
import { inTransaction, migratePostgres, quoteIdent } from './migrations.js';
import { postgresRagRepository } from './postgres-rag.js';
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
  DatasetRepository,
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

/** node-postgres's values for jsonb (already parsed), timestamptz and boolean columns. */
type PgColumns = { json: unknown; time: Date; bool: boolean };

const codec: RowCodec<PgColumns> = {
  json: (v) => v,
  time: (v) => v.toISOString(),
  bool: (v) => v,
  boolParam: (b) => b,
};

const mappers = rowMappers(codec);
const { toDataset, toRecord, toEvalRun, toBatchRun, toBatchItem } = mappers;

function datasetRepository(pool: pg.Pool, t: Tables): DatasetRepository {
  return {
    async create(d, records) {
      const datasetRow = datasetParams(d);
      checkRecordsBelong(d.id, records);
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
            params.push(...recordParams(r));
          }
          await c.query(`INSERT INTO ${t.records} (dataset_id, idx, record_id, data) VALUES ${values.join(', ')}`, params);
        }
      });
    },
    async get(id) {
      const { rows } = await pool.query<DatasetRow<PgColumns>>(`SELECT * FROM ${t.datasets} WHERE id = $1`, [id]);
      return rows[0] ? toDataset(rows[0]) : null;
    },
    async list(query: DatasetListQuery): Promise<Page<Dataset>> {
      const limit = checkLimit(query.limit);
      const after = query.cursor === undefined ? null : datasetCursor.decode(query.cursor);
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
      // One row more than the page: keysetPage uses it to tell whether another page exists.
      params.push(limit + 1);
      const { rows } = await pool.query<DatasetRow<PgColumns>>(
        `SELECT * FROM ${t.datasets} ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
        params,
      );
      return keysetPage(rows, limit, toDataset, datasetCursor, datasetPosition);
    },
    async records(datasetId, afterIndex, limit) {
      const { rows } = await pool.query<RecordRow<PgColumns>>(
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
        evalRunParams(r),
      );
    },
    async get(runId) {
      const { rows } = await pool.query<EvalRunRow<PgColumns>>(`SELECT * FROM ${t.evalRuns} WHERE run_id = $1`, [
        runId,
      ]);
      return rows[0] ? toEvalRun(rows[0]) : null;
    },
  };
}

function batchRepository(pool: pg.Pool, t: Tables): BatchRepository {
  return {
    async create(r) {
      await pool.query(
        `INSERT INTO ${t.batchRuns} (id, dataset_id, status, criteria, params, total, completed, failed, key_id, error,
                                     created_at, started_at, updated_at, completed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
        batchRunParams(r),
      );
    },
    async get(id) {
      const { rows } = await pool.query<BatchRunRow<PgColumns>>(`SELECT * FROM ${t.batchRuns} WHERE id = $1`, [id]);
      return rows[0] ? toBatchRun(rows[0]) : null;
    },
    async update(id, patch, onlyIfStatus) {
      const sets = batchRunPatch(patch);
      const only = onlyIfStatus ? ` AND status = ANY($${sets.length + 2}::text[])` : '';
      const { rows } = await pool.query<BatchRunRow<PgColumns>>(
        `UPDATE ${t.batchRuns} SET ${sets.map(([column], i) => `${column} = $${i + 1}`).join(', ')}
         WHERE id = $${sets.length + 1}${only} RETURNING *`,
        [...sets.map(([, value]) => value), id, ...(onlyIfStatus ? [[...onlyIfStatus]] : [])],
      );
      return rows[0] ? toBatchRun(rows[0]) : null;
    },
    async putItem(it) {
      const item = batchItemParams(it, codec);
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
        const d = counterDeltas(it.status, old.rows[0]?.status);
        await c.query(
          `UPDATE ${t.batchRuns} SET completed = completed + $1, failed = failed + $2, updated_at = $3 WHERE id = $4`,
          [d.completed, d.failed, new Date().toISOString(), it.batchId],
        );
      });
    },
    async items(batchId, opts) {
      const failed = opts.notPassedOnly ? "AND (status = 'failed' OR passed IS NOT TRUE)" : '';
      const { rows } = await pool.query<BatchItemRow<PgColumns>>(
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
      const { rows } = await pool.query<BatchRunRow<PgColumns>>(
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

/** Network errors of a connection that could not be made or was lost. */
const CONNECTION_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
/** SQLSTATEs of a server going away or not taking sessions: shutting down, crashed, starting up; too many connections. */
const RESTARTING_STATES = new Set(['57P01', '57P02', '57P03']);
/** node-postgres's own words for a connection that ended under a client (no code of its own). */
const LOST_CONNECTION = /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect)/;

/**
 * PostgreSQL away (refusing connections, restarting, a connection cut
 * midway) as StorageUnavailableError; anything else unchanged. Whether the
 * statement's effect was committed is unknown when a connection is cut
 * during COMMIT: callers that retry must write idempotently (batch items
 * are upserts by (run, index)).
 */
function postgresFault(err: unknown): unknown {
  if (!(err instanceof Error) || err instanceof StorageUnavailableError) return err;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && RESTARTING_STATES.has(code)) return new StorageUnavailableError('database restarting', { cause: err });
  if (typeof code === 'string' && (CONNECTION_ERRNOS.has(code) || code.startsWith('08') || code === '53300')) {
    return new StorageUnavailableError('database unreachable', { cause: err });
  }
  if (LOST_CONNECTION.test(err.message)) return new StorageUnavailableError('database unreachable', { cause: err });
  return err;
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
    datasets: guardStorage(datasetRepository(pool, t), postgresFault),
    evalRuns: guardStorage(evalRunRepository(pool, t), postgresFault),
    batches: guardStorage(batchRepository(pool, t), postgresFault),
    rag: guardStorage(
      postgresRagRepository(
        pool,
        { indexes: `${q}.rag_indexes`, documents: `${q}.rag_documents`, chunks: `${q}.rag_chunks`, lexemes: `${q}.rag_lexemes` },
        mappers,
      ),
      postgresFault,
    ),
    close() {
      closing ??= pool.end();
      return closing;
    },
  };
}
