/**
 * The RAG repository on SQLite: chunks with float32 BLOB vectors, and an
 * FTS5 table (contentless, kept by triggers; see migrations.ts) ranked with
 * bm25(). Calls are synchronous like the rest of sqlite.ts: every method is
 * one short transaction, so a build writing document after document leaves
 * the event loop free between them.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { checkLimit, vectorBytes, vectorFrom } from './codec.js';
import { keysetPage, ragIndexCursor, ragIndexPosition } from './cursor.js';
import {
  checkChunksBelong,
  ragChunkParams,
  ragCounterDeltas,
  ragIndexParams,
  ragIndexPatch,
  type RagChunkRow,
  type RagIndexRow,
  type RowMappers,
} from './rows.js';
import type { MetadataFilter, RagDocument, RagIndexStatus, RagRepository, StoredVector } from './types.js';

type SqliteColumns = { json: string; time: string; bool: number };

const quote = (s: string) => `"${s.replaceAll('"', '""')}"`;
const any = (terms: readonly string[]) => `(${terms.map(quote).join(' OR ')})`;

/**
 * An FTS5 query: the index's rows (a phrase on index_key) that hold any of
 * the terms. Each term is a quoted string, its quotes doubled, so nothing a
 * client sends is read as FTS5 syntax (operators, column filters, NEAR, `*`).
 */
export function ftsQuery(indexId: string, terms: readonly string[]): string {
  return `${indexMatch(indexId)} AND ${any(terms)}`;
}

/** The index's rows: its id as the one token the insert trigger writes (migrations.ts). */
const indexMatch = (indexId: string) => `index_key : ${quote(indexId.replaceAll('_', ''))}`;

/**
 * The pruned search as two FTS5 queries whose results together are the
 * rows holding a rare term: with a common term too, and without. bm25()
 * sums over the phrases of its query, each once in both, so their scores
 * are those the full query would give (a common term absent from a row adds
 * nothing) and the two lists merge by score.
 */
export function ftsPrunedQueries(indexId: string, rare: readonly string[], common: readonly string[]): string[] {
  const index = indexMatch(indexId);
  return [`${index} AND ${any(rare)} AND ${any(common)}`, `${index} AND (${any(rare)} NOT ${any(common)})`];
}

/**
 * SQL conditions on `alias.metadata` for a metadata filter, and their
 * parameters: each key must exist with exactly this JSON type and value.
 * json_each matches keys as they are (no JSON-path quoting to get wrong).
 */
function filterSql(alias: string, filter: MetadataFilter | undefined): { sql: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  for (const [key, value] of Object.entries(filter ?? {})) {
    const each = `EXISTS (SELECT 1 FROM json_each(${alias}.metadata) AS m WHERE m.key = ? AND `;
    if (value === null) {
      parts.push(`${each}m.type = 'null')`);
      params.push(key);
    } else if (typeof value === 'boolean') {
      parts.push(`${each}m.type = ?)`);
      params.push(key, value ? 'true' : 'false');
    } else if (typeof value === 'number') {
      parts.push(`${each}m.type IN ('integer', 'real') AND m.atom = ?)`);
      params.push(key, value);
    } else {
      parts.push(`${each}m.type = 'text' AND m.atom = ?)`);
      params.push(key, value);
    }
  }
  return { sql: parts.map((p) => ` AND ${p}`).join(''), params };
}

const CHUNK_COLUMNS = 'key, index_id, chunk_id, doc_idx, doc_id, ordinal, span_start, span_end, tokens, text, metadata';

export function sqliteRagRepository(db: BetterSqlite3.Database, rows: RowMappers<SqliteColumns>): RagRepository {
  const { toRagIndex, toRagChunk } = rows;
  const insertIndex = db.prepare(
    `INSERT INTO rag_indexes (id, dataset_id, status, options, embedding_model, embedding_dimensions, documents_total,
                              documents_indexed, documents_failed, chunk_count, fusion, error, created_at, started_at,
                              updated_at, completed_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const selectIndex = db.prepare('SELECT * FROM rag_indexes WHERE id = ?');
  const deleteIndex = db.prepare('DELETE FROM rag_indexes WHERE id = ?');
  const deleteDocuments = db.prepare('DELETE FROM rag_documents WHERE index_id = ?');
  const zeroCounters = db.prepare(
    'UPDATE rag_indexes SET documents_indexed = 0, documents_failed = 0, chunk_count = 0 WHERE id = ?',
  );
  const deleteSomeChunks = db.prepare(
    'DELETE FROM rag_chunks WHERE key IN (SELECT key FROM rag_chunks WHERE index_id = ? LIMIT ?)',
  );
  const selectBuilding = db
    .prepare("SELECT EXISTS (SELECT 1 FROM rag_indexes WHERE dataset_id = ? AND status = 'processing')")
    .pluck();
  const selectDocument = db.prepare('SELECT status, chunk_count FROM rag_documents WHERE index_id = ? AND idx = ?');
  const upsertDocument = db.prepare(
    `INSERT INTO rag_documents (index_id, idx, doc_id, status, chunk_count, error) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (index_id, idx) DO UPDATE SET
       doc_id = excluded.doc_id, status = excluded.status, chunk_count = excluded.chunk_count, error = excluded.error`,
  );
  const deleteStaleChunks = db.prepare(
    'DELETE FROM rag_chunks WHERE index_id = ? AND doc_idx = ? AND chunk_id NOT IN (SELECT value FROM json_each(?))',
  );
  // Same chunk id, same text (the id hashes it): only its place and metadata can move; FTS stays.
  const upsertChunk = db.prepare(
    `INSERT INTO rag_chunks (index_id, chunk_id, doc_idx, doc_id, ordinal, span_start, span_end, tokens, text, metadata, vector)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (index_id, chunk_id) DO UPDATE SET
       doc_idx = excluded.doc_idx, doc_id = excluded.doc_id, ordinal = excluded.ordinal, span_start = excluded.span_start,
       span_end = excluded.span_end, tokens = excluded.tokens, metadata = excluded.metadata, vector = excluded.vector`,
  );
  const bumpCounters = db.prepare(
    `UPDATE rag_indexes SET documents_indexed = documents_indexed + ?, documents_failed = documents_failed + ?,
                            chunk_count = chunk_count + ?, updated_at = ? WHERE id = ?`,
  );
  const selectDone = db.prepare('SELECT idx FROM rag_documents WHERE index_id = ?').pluck();
  const selectChunkVectors = db.prepare(
    'SELECT chunk_id, vector FROM rag_chunks WHERE index_id = ? AND chunk_id IN (SELECT value FROM json_each(?))',
  );
  const selectVectors = db.prepare(
    'SELECT key, doc_idx, vector, metadata FROM rag_chunks WHERE index_id = ? AND key > ? ORDER BY key LIMIT ?',
  );
  // From the keys to the rows (primary-key lookups), not through every row of the index.
  const selectChunks = db.prepare(
    `SELECT ${CHUNK_COLUMNS.split(', ').map((c) => `c.${c}`).join(', ')}
     FROM json_each(?) AS k CROSS JOIN rag_chunks AS c ON c.key = k.value WHERE c.index_id = ?`,
  );
  // Whether a term is in more than `cap` of the index's rows: counting stops at cap + 1.
  const countCapped = db
    .prepare('SELECT count(*) FROM (SELECT 1 FROM rag_chunks_fts WHERE rag_chunks_fts MATCH ? LIMIT ?)')
    .pluck();
  // Unfiltered: FTS5 alone (its rowid is the chunk key), no row of rag_chunks read per match.
  const selectLexical = db.prepare(
    `SELECT rowid AS key, -bm25(rag_chunks_fts, 0.0, 1.0) AS score FROM rag_chunks_fts WHERE rag_chunks_fts MATCH ?
     ORDER BY bm25(rag_chunks_fts, 0.0, 1.0), rowid LIMIT ?`,
  );
  const statements = new Map<string, BetterSqlite3.Statement>();
  const prepared = (sql: string) => {
    let stmt = statements.get(sql);
    if (!stmt) {
      stmt = db.prepare(sql);
      statements.set(sql, stmt);
    }
    return stmt;
  };

  const update = (id: string, patch: Parameters<RagRepository['updateIndex']>[1], onlyIfStatus?: readonly RagIndexStatus[]) => {
    const sets = ragIndexPatch(patch);
    const only = onlyIfStatus ? ` AND status IN (${onlyIfStatus.map(() => '?').join(', ')})` : '';
    const row = prepared(`UPDATE rag_indexes SET ${sets.map(([column]) => `${column} = ?`).join(', ')} WHERE id = ?${only} RETURNING *`).get(
      ...sets.map(([, value]) => value),
      id,
      ...(onlyIfStatus ?? []),
    ) as RagIndexRow<SqliteColumns> | undefined;
    return row ? toRagIndex(row) : null;
  };

  const reset = db.transaction((id: string, patch: Parameters<RagRepository['updateIndex']>[1]) => {
    deleteDocuments.run(id);
    zeroCounters.run(id);
    return update(id, patch);
  });

  const putDocument = db.transaction((outcome: RagDocument, chunks: Parameters<RagRepository['putDocument']>[1]) => {
    if (!selectIndex.get(outcome.indexId)) throw new Error(`RAG index ${outcome.indexId} not found`);
    const old = selectDocument.get(outcome.indexId, outcome.docIndex) as { status: RagDocument['status']; chunk_count: number } | undefined;
    deleteStaleChunks.run(outcome.indexId, outcome.docIndex, JSON.stringify(chunks.map((c) => c.chunkId)));
    for (const ch of chunks) upsertChunk.run(...ragChunkParams(ch, vectorBytes(ch.vector)));
    upsertDocument.run(outcome.indexId, outcome.docIndex, outcome.docId, outcome.status, chunks.length, outcome.error);
    const d = ragCounterDeltas(
      { status: outcome.status, chunkCount: chunks.length },
      old && { status: old.status, chunkCount: old.chunk_count },
    );
    bumpCounters.run(d.indexed, d.failed, d.chunks, new Date().toISOString(), outcome.indexId);
  });

  return {
    async createIndex(index) {
      insertIndex.run(...ragIndexParams(index));
    },
    async getIndex(id) {
      const row = selectIndex.get(id) as RagIndexRow<SqliteColumns> | undefined;
      return row ? toRagIndex(row) : null;
    },
    async listIndexes(query) {
      const limit = checkLimit(query.limit);
      const after = query.cursor === undefined ? null : ragIndexCursor.decode(query.cursor);
      const where: string[] = [];
      const params: unknown[] = [];
      if (query.datasetId !== undefined) {
        where.push('dataset_id = ?');
        params.push(query.datasetId);
      }
      if (query.status !== undefined) {
        where.push('status = ?');
        params.push(query.status);
      }
      if (after) {
        where.push('created_at <= ? AND (created_at < ? OR id < ?)');
        params.push(after.createdAt, after.createdAt, after.id);
      }
      const sql = `SELECT * FROM rag_indexes ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY created_at DESC, id DESC LIMIT ?`;
      const found = prepared(sql).all(...params, limit + 1) as RagIndexRow<SqliteColumns>[];
      return keysetPage(found, limit, toRagIndex, ragIndexCursor, ragIndexPosition);
    },
    async indexesByStatus(statuses) {
      if (statuses.length === 0) return [];
      const found = prepared(`SELECT * FROM rag_indexes WHERE status IN (${statuses.map(() => '?').join(', ')}) ORDER BY created_at, id`).all(
        ...statuses,
      ) as RagIndexRow<SqliteColumns>[];
      return found.map(toRagIndex);
    },
    async updateIndex(id, patch, onlyIfStatus) {
      return update(id, patch, onlyIfStatus);
    },
    async resetIndex(id, patch) {
      return reset.immediate(id, patch);
    },
    async deleteChunks(indexId, limit) {
      return deleteSomeChunks.run(indexId, checkLimit(limit)).changes;
    },
    async deleteIndex(id) {
      // Documents and chunks go with it (ON DELETE CASCADE), FTS rows by trigger.
      return deleteIndex.run(id).changes > 0;
    },
    async datasetBuilding(datasetId) {
      return selectBuilding.get(datasetId) === 1;
    },
    async putDocument(outcome, chunks) {
      checkChunksBelong(outcome, chunks);
      putDocument.immediate(outcome, chunks);
    },
    async doneDocuments(indexId) {
      return new Set(selectDone.all(indexId) as number[]);
    },
    async chunkVectors(indexId, chunkIds) {
      const out = new Map<string, Float32Array>();
      if (chunkIds.length === 0) return out;
      for (const r of selectChunkVectors.all(indexId, JSON.stringify(chunkIds)) as { chunk_id: string; vector: Buffer }[]) {
        out.set(r.chunk_id, vectorFrom(r.vector));
      }
      return out;
    },
    async vectors(indexId, afterKey, limit): Promise<StoredVector[]> {
      const found = selectVectors.all(indexId, afterKey, checkLimit(limit)) as { key: number; doc_idx: number; vector: Buffer; metadata: string }[];
      return found.map((r) => ({ key: r.key, docIndex: r.doc_idx, vector: vectorFrom(r.vector), metadata: JSON.parse(r.metadata) }));
    },
    async lexicalSearch(indexId, terms, filter, limit, opts) {
      if (terms.length === 0) return [];
      checkLimit(limit);
      let queries = [ftsQuery(indexId, terms)];
      if (opts?.commonDocs !== undefined && terms.length > 1) {
        const cap = opts.commonDocs;
        let common = terms.filter((t) => (countCapped.get(ftsQuery(indexId, [t]), cap + 1) as number) > cap);
        if (common.length === terms.length) {
          // Every term is common: the least common one counts as rare (counted in full, which is rare too).
          const counts = terms.map((t) => countCapped.get(ftsQuery(indexId, [t]), Number.MAX_SAFE_INTEGER) as number);
          const rarest = terms[counts.indexOf(Math.min(...counts))]!;
          common = terms.filter((t) => t !== rarest);
        }
        const rare = terms.filter((t) => !common.includes(t));
        if (common.length > 0 && rare.length > 0) queries = ftsPrunedQueries(indexId, rare, common);
      }
      const filtered = filter !== undefined && Object.keys(filter).length > 0;
      let stmt = selectLexical;
      let params: unknown[] = [];
      if (filtered) {
        const f = filterSql('c', filter);
        // bm25() is lower-is-better; negated so that higher is better in both stores. Weight 0 for index_key.
        // Not cached: the statement's text varies with each filter's shape.
        stmt = db.prepare(`SELECT c.key AS key, -bm25(rag_chunks_fts, 0.0, 1.0) AS score
          FROM rag_chunks_fts JOIN rag_chunks AS c ON c.key = rag_chunks_fts.rowid
          WHERE rag_chunks_fts MATCH ? AND c.index_id = ?${f.sql}
          ORDER BY score DESC, c.key LIMIT ?`);
        params = [indexId, ...f.params];
      }
      const found = queries.flatMap((q) => stmt.all(q, ...params, limit) as { key: number; score: number }[]);
      return found.sort((a, b) => b.score - a.score || a.key - b.key).slice(0, limit);
    },
    async indexWritten() {
      // FTS5 keeps its statistics as rows are written.
    },
    async chunks(indexId, keys) {
      if (keys.length === 0) return [];
      return (selectChunks.all(JSON.stringify(keys), indexId) as RagChunkRow<SqliteColumns>[]).map(toRagChunk);
    },
  };
}
