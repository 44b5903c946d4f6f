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
  /**
   * Updates status and timestamps/error; returns the updated run (null if
   * missing, or if `onlyIfStatus` is given and the run's status is not one
   * of them: a compare-and-set, so a final status and a concurrent cancel
   * from another process cannot overwrite each other).
   */
  update(
    id: string,
    patch: Partial<Pick<BatchRun, 'status' | 'startedAt' | 'completedAt' | 'error' | 'updatedAt'>>,
    onlyIfStatus?: readonly BatchStatus[],
  ): Promise<BatchRun | null>;
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

export const RAG_INDEX_STATUSES = ['processing', 'ready', 'failed'] as const;
export type RagIndexStatus = (typeof RAG_INDEX_STATUSES)[number];

/** How an index cuts its documents, stored with it (snake_case, as requested). */
export interface RagChunkingOptions {
  /** Most tokens of the embedding model's tokenizer in one chunk (special tokens excluded). */
  chunk_tokens: number;
  /** Tokens a chunk repeats from the end of the one before it, at most. */
  chunk_overlap: number;
}

/**
 * How hybrid retrieval weighs its two retrievers in an index (weighted
 * reciprocal rank fusion), as calibrated when its build ended: each
 * retriever's MRR@10 on pseudo-queries drawn from the index's own chunks,
 * and weights proportional to them (the better retriever 1).
 */
export interface RagFusion {
  lexical: number;
  dense: number;
  /** Pseudo-queries the weights were measured on (0: none; the weights are then 1 and 1). */
  queries: number;
  lexicalMrr: number;
  denseMrr: number;
}

/**
 * A retrieval index over one rag_corpus dataset: its chunks with their
 * vectors and a lexical index. Counters move with each document's outcome.
 */
export interface RagIndex {
  id: string;
  datasetId: string;
  status: RagIndexStatus;
  options: RagChunkingOptions;
  /** The embedding model its vectors come from; null until the build first starts. */
  embeddingModel: string | null;
  embeddingDimensions: number | null;
  /** Documents in the dataset. */
  documentsTotal: number;
  /** Documents chunked, embedded and stored. */
  documentsIndexed: number;
  /** Documents that could not be indexed (the index goes on without them). */
  documentsFailed: number;
  /** Chunks of the indexed documents. */
  chunkCount: number;
  /** Fusion weights, calibrated when the build ends; null before. */
  fusion: RagFusion | null;
  error: string | null;
  createdAt: string;
  startedAt: string | null;
  updatedAt: string;
  completedAt: string | null;
}

export interface RagIndexListQuery {
  datasetId?: string;
  status?: RagIndexStatus;
  limit: number;
  cursor?: string;
}

export const RAG_DOCUMENT_STATUSES = ['indexed', 'failed'] as const;
export type RagDocumentStatus = (typeof RAG_DOCUMENT_STATUSES)[number];

/** One document's outcome in one index (what a resumed build skips). */
export interface RagDocument {
  indexId: string;
  /** The record's index in the dataset. */
  docIndex: number;
  docId: string;
  status: RagDocumentStatus;
  chunkCount: number;
  error: string | null;
}

/** A chunk as stored and returned, without its vector. */
export interface RagChunk {
  /** The storage's own integer key of the row (what vector indexes hold); assigned on insert. */
  key: number;
  indexId: string;
  /** Stable: the same document cut with the same options gives the same ids. */
  chunkId: string;
  docIndex: number;
  docId: string;
  /** Position among its document's chunks (0-based). */
  ordinal: number;
  /** Character span in the document: Unicode code points, end exclusive. */
  start: number;
  end: number;
  tokens: number;
  text: string;
  /** The document's metadata. */
  metadata: Record<string, unknown>;
}

/** A chunk to store: everything but its key, and its vector. */
export type NewRagChunk = Omit<RagChunk, 'key'> & { vector: Float32Array };

/** A stored vector, as loaded into memory for dense search. */
export interface StoredVector {
  key: number;
  docIndex: number;
  vector: Float32Array;
  /** The document's metadata (each chunk carries its own copy). */
  metadata: Record<string, unknown>;
}

/** Metadata equality on documents: every key must hold exactly this value. */
export type MetadataFilter = Record<string, string | number | boolean | null>;

/** A lexical match: the chunk's key and its store's relevance score (higher is better). */
export interface ScoredKey {
  key: number;
  score: number;
}

export interface RagRepository {
  createIndex(index: RagIndex): Promise<void>;
  getIndex(id: string): Promise<RagIndex | null>;
  /** Newest first (created_at, then id, descending), optionally of one dataset or status. Throws InvalidCursorError for a cursor it did not issue. */
  listIndexes(query: RagIndexListQuery): Promise<Page<RagIndex>>;
  /** Indexes in these states, oldest first (e.g. to resume `processing` ones at start-up). */
  indexesByStatus(statuses: RagIndexStatus[]): Promise<RagIndex[]>;
  /**
   * Updates status, model, error and times; returns the updated index (null
   * if missing, or if `onlyIfStatus` is given and the index's status is not
   * one of them: a compare-and-set, so two processes cannot both end a build).
   */
  updateIndex(
    id: string,
    patch: Partial<Pick<RagIndex, 'status' | 'embeddingModel' | 'embeddingDimensions' | 'fusion' | 'error' | 'startedAt' | 'completedAt' | 'updatedAt'>>,
    onlyIfStatus?: readonly RagIndexStatus[],
  ): Promise<RagIndex | null>;
  /**
   * Starts an index over: forgets every document's outcome and zeroes the
   * counters, in one transaction with `patch`. Its chunks stay, to be
   * replaced document by document (or removed with deleteChunks).
   */
  resetIndex(id: string, patch: Parameters<RagRepository['updateIndex']>[1]): Promise<RagIndex | null>;
  /** Deletes up to `limit` of the index's chunks; returns how many went (0: none left). */
  deleteChunks(indexId: string, limit: number): Promise<number>;
  /** Deletes the index with its documents and chunks; false if it did not exist. */
  deleteIndex(id: string): Promise<boolean>;
  /** True if an index of this dataset is still processing. */
  datasetBuilding(datasetId: string): Promise<boolean>;
  /**
   * Stores one document's outcome and its chunks in one transaction: the
   * document's chunks become exactly `chunks` (matched by chunk id: unchanged
   * ones keep their key, others go), its outcome replaces any earlier one, and
   * the index's counters move to match. Idempotent.
   */
  putDocument(outcome: RagDocument, chunks: NewRagChunk[]): Promise<void>;
  /** Record indexes with a stored outcome, to resume a build. */
  doneDocuments(indexId: string): Promise<Set<number>>;
  /** Stored vectors of these chunk ids (to reuse on a rebuild with the same model). */
  chunkVectors(indexId: string, chunkIds: readonly string[]): Promise<Map<string, Float32Array>>;
  /** Vectors in key order after `afterKey` (-1 for the start), `limit` at a time. */
  vectors(indexId: string, afterKey: number, limit: number): Promise<StoredVector[]>;
  /**
   * Lexical search: chunks matching any of `terms` (words, already
   * lower-cased; the store stems and ranks them), best first, at most
   * `limit`, restricted to documents whose metadata matches `filter`.
   * SQLite ranks with FTS5's bm25(), PostgreSQL with ts_rank() (length-normalised).
   *
   * With `commonDocs`, terms found in more than that many of the index's
   * chunks are common (when every term is, all but the least common one):
   * chunks holding only common terms are not considered, while every term
   * still counts in the scores of the chunks that are. This is MaxScore's idea without its
   * bound: ranking every chunk that holds a frequent word is what makes
   * any-word queries slow on large indexes, and those chunks rarely rank.
   */
  lexicalSearch(
    indexId: string,
    terms: readonly string[],
    filter: MetadataFilter | undefined,
    limit: number,
    opts?: { commonDocs?: number },
  ): Promise<ScoredKey[]>;
  /**
   * After an index's chunks are written: refreshes what lexical search
   * reads besides the chunks (PostgreSQL: the index's frequent lexemes and
   * the planner's statistics; SQLite keeps its own as it goes).
   */
  indexWritten(indexId: string): Promise<void>;
  /** The chunks with these keys (any order; unknown keys are skipped). */
  chunks(indexId: string, keys: readonly number[]): Promise<RagChunk[]>;
}

/** Everything durable, behind one handle. */
export interface Storage {
  readonly kind: 'sqlite' | 'postgres';
  datasets: DatasetRepository;
  evalRuns: EvalRunRepository;
  batches: BatchRepository;
  rag: RagRepository;
  close(): Promise<void>;
}
