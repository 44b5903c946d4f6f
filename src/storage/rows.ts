/**
 * The one mapping between table rows and the domain types (./types.ts), for
 * both dialects. SQLite and PostgreSQL tables have the same columns; the
 * dialects differ only in how their drivers hand back a JSON, time or boolean
 * column (and take a boolean), so that is all a dialect supplies: a RowCodec.
 * Write parameters are built here too, so a value is cleaned and made
 * canonical the same way whichever store receives it.
 */
import { cleanText, cleanTextOrNull, isoTime, isoTimeOrNull, toJson } from './codec.js';
import type {
  BatchItem,
  BatchRepository,
  BatchRun,
  BatchStatus,
  Dataset,
  DatasetRecord,
  EvalRun,
  NewRagChunk,
  RagChunk,
  RagDocument,
  RagIndex,
  RagRepository,
} from './types.js';

/** What a dialect's driver returns for a JSON, a time and a boolean column. */
export interface ColumnTypes {
  json: unknown;
  time: unknown;
  bool: unknown;
}

export interface DatasetRow<C extends ColumnTypes> {
  id: string;
  name: string;
  type: Dataset['type'];
  status: Dataset['status'];
  record_count: number;
  metadata: C['json'];
  error: string | null;
  created_at: C['time'];
  updated_at: C['time'];
}

export interface RecordRow<C extends ColumnTypes> {
  dataset_id: string;
  idx: number;
  record_id: string;
  data: C['json'];
}

export interface EvalRunRow<C extends ColumnTypes> {
  run_id: string;
  prompt: string;
  response: string;
  reference: string | null;
  context: string | null;
  criteria: C['json'];
  scores: C['json'];
  judge: string;
  model: string;
  latency_ms: number;
  key_id: string | null;
  created_at: C['time'];
}

export interface BatchRunRow<C extends ColumnTypes> {
  id: string;
  dataset_id: string;
  status: BatchStatus;
  criteria: C['json'];
  params: C['json'];
  total: number;
  completed: number;
  failed: number;
  key_id: string | null;
  error: string | null;
  created_at: C['time'];
  started_at: C['time'] | null;
  updated_at: C['time'];
  completed_at: C['time'] | null;
}

export interface BatchItemRow<C extends ColumnTypes> {
  batch_id: string;
  idx: number;
  record_id: string;
  status: BatchItem['status'];
  response: string | null;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  latency_ms: number | null;
  scores: C['json'];
  passed: C['bool'] | null;
  attempts: number;
  // Typed as the domain types it: the column only ever holds what putItem wrote.
  reason: BatchItem['reason'];
  message: string | null;
  created_at: C['time'];
}

export interface RagIndexRow<C extends ColumnTypes> {
  id: string;
  dataset_id: string;
  status: RagIndex['status'];
  options: C['json'];
  embedding_model: string | null;
  embedding_dimensions: number | null;
  documents_total: number;
  documents_indexed: number;
  documents_failed: number;
  chunk_count: number;
  fusion: C['json'] | null;
  error: string | null;
  created_at: C['time'];
  started_at: C['time'] | null;
  updated_at: C['time'];
  completed_at: C['time'] | null;
}

/** rag_chunks without its vector (and tsvector) columns. */
export interface RagChunkRow<C extends ColumnTypes> {
  // node-postgres returns bigint columns as strings.
  key: number | string;
  index_id: string;
  chunk_id: string;
  doc_idx: number;
  doc_id: string;
  ordinal: number;
  span_start: number;
  span_end: number;
  tokens: number;
  text: string;
  metadata: C['json'];
}

/** A dialect's conversions between its driver's column values and the domain's. */
export interface RowCodec<C extends ColumnTypes> {
  /** The plain JSON value a JSON column holds. */
  json(v: C['json']): unknown;
  /** A time in canonical `toISOString()` form, as types.ts promises. */
  time(v: C['time']): string;
  bool(v: C['bool']): boolean;
  /** A boolean as a statement parameter. */
  boolParam(b: boolean): C['bool'];
}

export interface RowMappers<C extends ColumnTypes> {
  toDataset(r: DatasetRow<C>): Dataset;
  toRecord(r: RecordRow<C>): DatasetRecord;
  toEvalRun(r: EvalRunRow<C>): EvalRun;
  toBatchRun(r: BatchRunRow<C>): BatchRun;
  toBatchItem(r: BatchItemRow<C>): BatchItem;
  toRagIndex(r: RagIndexRow<C>): RagIndex;
  toRagChunk(r: RagChunkRow<C>): RagChunk;
}

/** The row-to-domain mappers for one dialect. */
export function rowMappers<C extends ColumnTypes>(c: RowCodec<C>): RowMappers<C> {
  const timeOrNull = (v: C['time'] | null): string | null => (v === null ? null : c.time(v));
  return {
    toDataset: (r) => ({
      id: r.id,
      name: r.name,
      type: r.type,
      status: r.status,
      recordCount: r.record_count,
      metadata: c.json(r.metadata) as Dataset['metadata'],
      error: r.error,
      createdAt: c.time(r.created_at),
      updatedAt: c.time(r.updated_at),
    }),
    toRecord: (r) => ({
      datasetId: r.dataset_id,
      index: r.idx,
      recordId: r.record_id,
      data: c.json(r.data) as DatasetRecord['data'],
    }),
    toEvalRun: (r) => ({
      runId: r.run_id,
      prompt: r.prompt,
      response: r.response,
      reference: r.reference,
      context: r.context,
      criteria: c.json(r.criteria) as EvalRun['criteria'],
      scores: c.json(r.scores) as EvalRun['scores'],
      judge: r.judge,
      model: r.model,
      latencyMs: r.latency_ms,
      keyId: r.key_id,
      createdAt: c.time(r.created_at),
    }),
    toBatchRun: (r) => ({
      id: r.id,
      datasetId: r.dataset_id,
      status: r.status,
      criteria: c.json(r.criteria) as BatchRun['criteria'],
      // Whatever JSON was stored, typed as the domain says: the column holds what create() wrote.
      params: c.json(r.params) as BatchRun['params'],
      total: r.total,
      completed: r.completed,
      failed: r.failed,
      keyId: r.key_id,
      error: r.error,
      createdAt: c.time(r.created_at),
      startedAt: timeOrNull(r.started_at),
      updatedAt: c.time(r.updated_at),
      completedAt: timeOrNull(r.completed_at),
    }),
    toBatchItem: (r) => ({
      batchId: r.batch_id,
      index: r.idx,
      recordId: r.record_id,
      status: r.status,
      response: r.response,
      promptTokens: r.prompt_tokens,
      completionTokens: r.completion_tokens,
      latencyMs: r.latency_ms,
      scores: c.json(r.scores) as BatchItem['scores'],
      passed: r.passed === null ? null : c.bool(r.passed),
      attempts: r.attempts,
      reason: r.reason,
      message: r.message,
      createdAt: c.time(r.created_at),
    }),
    toRagIndex: (r) => ({
      id: r.id,
      datasetId: r.dataset_id,
      status: r.status,
      options: c.json(r.options) as RagIndex['options'],
      embeddingModel: r.embedding_model,
      embeddingDimensions: r.embedding_dimensions,
      documentsTotal: r.documents_total,
      documentsIndexed: r.documents_indexed,
      documentsFailed: r.documents_failed,
      chunkCount: r.chunk_count,
      fusion: r.fusion === null ? null : (c.json(r.fusion) as RagIndex['fusion']),
      error: r.error,
      createdAt: c.time(r.created_at),
      startedAt: timeOrNull(r.started_at),
      updatedAt: c.time(r.updated_at),
      completedAt: timeOrNull(r.completed_at),
    }),
    toRagChunk: (r) => ({
      key: Number(r.key),
      indexId: r.index_id,
      chunkId: r.chunk_id,
      docIndex: r.doc_idx,
      docId: r.doc_id,
      ordinal: r.ordinal,
      start: r.span_start,
      end: r.span_end,
      tokens: r.tokens,
      text: r.text,
      metadata: c.json(r.metadata) as RagChunk['metadata'],
    }),
  };
}

// Write parameters, each list in the column order of the INSERT statements in
// sqlite.ts and postgres.ts (which differ only in placeholders and table names).

/** datasets (id, name, type, status, record_count, metadata, error, created_at, updated_at) */
export const datasetParams = (d: Dataset): unknown[] => [
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

/** Throws before anything is written if a record names another dataset. */
export function checkRecordsBelong(datasetId: string, records: readonly DatasetRecord[]): void {
  for (const r of records) {
    if (r.datasetId !== datasetId) {
      throw new Error(`Record ${r.index} belongs to dataset ${r.datasetId}, not ${datasetId}`);
    }
  }
}

/** dataset_records (dataset_id, idx, record_id, data) */
export const recordParams = (r: DatasetRecord): unknown[] => [
  r.datasetId,
  r.index,
  cleanText(r.recordId),
  toJson(r.data),
];

/**
 * eval_runs (run_id, prompt, response, reference, context, criteria, scores, judge, model, latency_ms, key_id,
 * created_at)
 */
export const evalRunParams = (r: EvalRun): unknown[] => [
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
];

/**
 * batch_runs (id, dataset_id, status, criteria, params, total, completed, failed, key_id, error,
 * created_at, started_at, updated_at, completed_at)
 */
export const batchRunParams = (r: BatchRun): unknown[] => [
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
];

/**
 * batch_items (batch_id, idx, record_id, status, response, prompt_tokens, completion_tokens, latency_ms,
 * scores, passed, attempts, reason, message, created_at)
 */
export const batchItemParams = <C extends ColumnTypes>(it: BatchItem, c: RowCodec<C>): unknown[] => [
  it.batchId,
  it.index,
  cleanText(it.recordId),
  it.status,
  cleanTextOrNull(it.response),
  it.promptTokens,
  it.completionTokens,
  it.latencyMs,
  toJson(it.scores),
  it.passed === null ? null : c.boolParam(it.passed),
  it.attempts,
  cleanTextOrNull(it.reason),
  cleanTextOrNull(it.message),
  isoTime(it.createdAt),
];

const PATCH_COLUMNS = {
  status: 'status',
  startedAt: 'started_at',
  completedAt: 'completed_at',
  error: 'error',
} as const;

/**
 * The (column, value) pairs a BatchRepository.update sets, in a fixed order.
 * updated_at is always among them: every change moves it, whether or not the
 * caller set it.
 */
export function batchRunPatch(patch: Parameters<BatchRepository['update']>[1]): [column: string, value: unknown][] {
  const sets: [string, unknown][] = [];
  for (const [key, column] of Object.entries(PATCH_COLUMNS) as [keyof typeof PATCH_COLUMNS, string][]) {
    const value = patch[key];
    if (value === undefined) continue;
    if (key === 'startedAt' || key === 'completedAt') sets.push([column, isoTimeOrNull(value)]);
    else if (key === 'error') sets.push([column, cleanTextOrNull(value)]);
    else sets.push([column, value]);
  }
  sets.push(['updated_at', patch.updatedAt !== undefined ? isoTime(patch.updatedAt) : new Date().toISOString()]);
  return sets;
}

/**
 * How far a run's completed and failed counters move when an item's stored
 * status goes from `old` (undefined: no item yet) to `now`. Moving by the
 * difference gives the same result as recounting batch_items, in O(1) per
 * write instead of a scan of the run's items (50,000 writes x 50,000 rows).
 */
export function counterDeltas(
  now: BatchItem['status'],
  old: BatchItem['status'] | undefined,
): { completed: number; failed: number } {
  return {
    completed: (now === 'succeeded' ? 1 : 0) - (old === 'succeeded' ? 1 : 0),
    failed: (now === 'failed' ? 1 : 0) - (old === 'failed' ? 1 : 0),
  };
}

/**
 * rag_indexes (id, dataset_id, status, options, embedding_model, embedding_dimensions, documents_total,
 * documents_indexed, documents_failed, chunk_count, fusion, error, created_at, started_at, updated_at, completed_at)
 */
export const ragIndexParams = (r: RagIndex): unknown[] => [
  r.id,
  r.datasetId,
  r.status,
  toJson(r.options),
  r.embeddingModel,
  r.embeddingDimensions,
  r.documentsTotal,
  r.documentsIndexed,
  r.documentsFailed,
  r.chunkCount,
  r.fusion === null ? null : toJson(r.fusion),
  cleanTextOrNull(r.error),
  isoTime(r.createdAt),
  isoTimeOrNull(r.startedAt),
  isoTime(r.updatedAt),
  isoTimeOrNull(r.completedAt),
];

const RAG_PATCH_COLUMNS = {
  status: 'status',
  embeddingModel: 'embedding_model',
  embeddingDimensions: 'embedding_dimensions',
  fusion: 'fusion',
  startedAt: 'started_at',
  completedAt: 'completed_at',
  error: 'error',
} as const;

/** The (column, value) pairs a RagRepository.updateIndex sets, updated_at always among them. */
export function ragIndexPatch(patch: Parameters<RagRepository['updateIndex']>[1]): [column: string, value: unknown][] {
  const sets: [string, unknown][] = [];
  for (const [key, column] of Object.entries(RAG_PATCH_COLUMNS) as [keyof typeof RAG_PATCH_COLUMNS, string][]) {
    const value = patch[key];
    if (value === undefined) continue;
    if (key === 'startedAt' || key === 'completedAt') sets.push([column, isoTimeOrNull(value as string | null)]);
    else if (key === 'error') sets.push([column, cleanTextOrNull(value as string | null)]);
    else if (key === 'fusion') sets.push([column, value === null ? null : toJson(value)]);
    else sets.push([column, value]);
  }
  sets.push(['updated_at', patch.updatedAt !== undefined ? isoTime(patch.updatedAt) : new Date().toISOString()]);
  return sets;
}

/**
 * rag_chunks (index_id, chunk_id, doc_idx, doc_id, ordinal, span_start, span_end, tokens, text, metadata, vector),
 * the vector already in the dialect's binary form.
 */
export const ragChunkParams = (ch: NewRagChunk, vector: unknown): unknown[] => [
  ch.indexId,
  ch.chunkId,
  ch.docIndex,
  cleanText(ch.docId),
  ch.ordinal,
  ch.start,
  ch.end,
  ch.tokens,
  cleanText(ch.text),
  toJson(ch.metadata),
  vector,
];

/** Throws before anything is written if a chunk names another index or document than its outcome. */
export function checkChunksBelong(outcome: RagDocument, chunks: readonly NewRagChunk[]): void {
  for (const ch of chunks) {
    if (ch.indexId !== outcome.indexId || ch.docIndex !== outcome.docIndex) {
      throw new Error(`Chunk ${ch.chunkId} belongs to ${ch.indexId}/${ch.docIndex}, not ${outcome.indexId}/${outcome.docIndex}`);
    }
  }
  if (outcome.chunkCount !== chunks.length) throw new Error(`Document ${outcome.docId} has ${chunks.length} chunks, not ${outcome.chunkCount}`);
  if (outcome.status === 'failed' && chunks.length > 0) throw new Error('A failed document has no chunks');
}

/**
 * How an index's counters move when a document's stored outcome goes from
 * `old` (undefined: none yet) to `now`: O(1) per document, like counterDeltas.
 */
export function ragCounterDeltas(
  now: Pick<RagDocument, 'status' | 'chunkCount'>,
  old: Pick<RagDocument, 'status' | 'chunkCount'> | undefined,
): { indexed: number; failed: number; chunks: number } {
  return {
    indexed: (now.status === 'indexed' ? 1 : 0) - (old?.status === 'indexed' ? 1 : 0),
    failed: (now.status === 'failed' ? 1 : 0) - (old?.status === 'failed' ? 1 : 0),
    chunks: now.chunkCount - (old?.chunkCount ?? 0),
  };
}
