/**
 * Storage interfaces: what the services need to keep datasets, evaluation
 * runs and batch runs durable. Implemented for SQLite (embedded default) and
 * PostgreSQL; the same test suite runs against both. All times are ISO-8601
 * strings (UTC), returned in canonical `toISOString()` form; JSON columns
 * hold plain JSON values (PostgreSQL may return object keys in another
 * order). U+0000 and unpaired surrogates in stored strings come back as
 * U+FFFD in both stores, because PostgreSQL cannot hold them.
 */

// The enumerations below are stored values: each list is the one source of
// its type, of validation, and of the GraphQL enum that shows it.
export const DATASET_TYPES = ['eval_set', 'rag_corpus'] as const;
export type DatasetType = (typeof DATASET_TYPES)[number];
export const DATASET_STATUSES = ['ready', 'processing', 'failed'] as const;
export type DatasetStatus = (typeof DATASET_STATUSES)[number];

export interface Dataset {
  id: string;
  name: string;
  type: DatasetType;
  status: DatasetStatus;
  recordCount: number;
  metadata: Record<string, unknown>;
  error: string | null;
  createdAt: string;
  updatedAt: string;
}

/** One stored record; never changed in place once written. */
export interface DatasetRecord {
  datasetId: string;
  /** Position in the upload (0-based, among accepted records). */
  index: number;
  recordId: string;
  /** The record as accepted (eval: {record_id, input, reference, tags, expected, metadata}; corpus: {doc_id, text, metadata}). */
  data: Record<string, unknown>;
}

export interface DatasetListQuery {
  type?: DatasetType;
  status?: DatasetStatus;
  limit: number;
  /** Opaque to clients; the repository's own position marker. */
  cursor?: string;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface DatasetRepository {
  /** Stores a dataset and all its records atomically. */
  create(dataset: Dataset, records: DatasetRecord[]): Promise<void>;
  get(id: string): Promise<Dataset | null>;
  /** Newest first (created_at, then id, descending). Throws InvalidCursorError (./errors.ts) for a cursor it did not issue. */
  list(query: DatasetListQuery): Promise<Page<Dataset>>;
  /** Records in index order, `limit` at a time after index `afterIndex` (-1 for the start). */
  records(datasetId: string, afterIndex: number, limit: number): Promise<DatasetRecord[]>;
  /** Deletes the dataset and its records; false if it did not exist. */
  delete(id: string): Promise<boolean>;
}

export interface ScoreRecord {
  criterion: string;
  /** null when the criterion could not be scored (see evaluatorError). */
  score: number | null;
  rationale: string;
  evaluatorError?: string;
}

export interface EvalRun {
  runId: string;
  prompt: string;
  response: string;
  reference: string | null;
  context: string | null;
  criteria: string[];
  scores: ScoreRecord[];
  judge: string;
  model: string;
  latencyMs: number;
  keyId: string | null;
  createdAt: string;
}

export interface EvalRunRepository {
  create(run: EvalRun): Promise<void>;
  get(runId: string): Promise<EvalRun | null>;
}

export const BATCH_STATUSES = ['queued', 'running', 'completed', 'completed_with_failures', 'failed', 'cancelled'] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

/** How answers are scored: by measurements of the texts, or by the served model as a judge. */
export const JUDGES = ['deterministic', 'model'] as const;
export type Judge = (typeof JUDGES)[number];

/**
 * Why a batch record did not pass (services/batch-evals.ts decides which):
 * - generation_error: the model failed to answer after every attempt;
 * - context_overflow: the prompt does not fit the model's context window;
 * - latency_exceeded: answered, but slower than expected.max_latency_ms;
 * - unscored: a required criterion could not be scored (no reference, judge parse error);
 * - below_threshold: a required criterion scored below the pass threshold.
 */
export const FAILURE_REASONS = ['generation_error', 'context_overflow', 'latency_exceeded', 'unscored', 'below_threshold'] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

export const ITEM_STATUSES = ['succeeded', 'failed'] as const;
export type ItemStatus = (typeof ITEM_STATUSES)[number];

/**
 * A batch run's parameters, stored fully defaulted when the run starts, so
 * a resumed run generates and scores exactly as the one that started.
 */
export interface BatchParams {
  /** The served model's name when the run started. */
  model: string;
  /** Records in flight at once. */
  concurrency: number;
  max_new_tokens: number;
  temperature: number;
  /** Record i is generated with seed (seed + i) mod 2^32. */
  seed: number;
  judge: Judge;
}

export interface BatchRun {
  id: string;
  datasetId: string;
  status: BatchStatus;
  criteria: string[];
  params: BatchParams;
  total: number;
  /** Stored items with status `succeeded` (kept equal to them by putItem; start a run at 0). */
  completed: number;
  /** Stored items with status `failed`; completed + failed is the number of records done. */
  failed: number;
  keyId: string | null;
  error: string | null;
  createdAt: string;
  startedAt: string | null;
  updatedAt: string;
  completedAt: string | null;
}

export interface BatchItem {
  batchId: string;
  /** The record's index in the dataset. */
  index: number;
  recordId: string;
  status: ItemStatus;
  response: string | null;
  promptTokens: number | null;
  completionTokens: number | null;
  latencyMs: number | null;
  scores: ScoreRecord[];
  passed: boolean | null;
  attempts: number;
  /** Why the record did not pass; null when it passed. */
  reason: FailureReason | null;
  message: string | null;
  createdAt: string;
}

export interface BatchRepository {
  create(run: BatchRun): Promise<void>;
  get(id: string): Promise<BatchRun | null>;
  /** Updates status and timestamps/error; returns the updated run (null if missing). */
  update(id: string, patch: Partial<Pick<BatchRun, 'status' | 'startedAt' | 'completedAt' | 'error' | 'updatedAt'>>): Promise<BatchRun | null>;
  /**
   * Stores one record's result (idempotent per (batchId, index): a second
   * write for the same index replaces the first) and bumps the run's
   * completed/failed counters to match the stored items, in one transaction.
   */
  putItem(item: BatchItem): Promise<void>;
  /**
   * Items in index order after `afterIndex`. With `notPassedOnly`, only the
   * records that did not pass: failed ones and succeeded ones whose `passed`
   * is not true (the batch's failures list).
   */
  items(batchId: string, opts: { afterIndex: number; limit: number; notPassedOnly?: boolean }): Promise<BatchItem[]>;
  /** Indexes already stored, to resume a run. */
  doneIndexes(batchId: string): Promise<Set<number>>;
  /** Runs in these states (e.g. to resume `queued`/`running` ones at start-up). */
  listByStatus(statuses: BatchStatus[]): Promise<BatchRun[]>;
  /** True if a queued or running batch uses this dataset. */
  datasetInUse(datasetId: string): Promise<boolean>;
}

/** Everything durable, behind one handle. */
export interface Storage {
  readonly kind: 'sqlite' | 'postgres';
  datasets: DatasetRepository;
  evalRuns: EvalRunRepository;
  batches: BatchRepository;
  close(): Promise<void>;
}
