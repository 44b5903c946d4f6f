/**
 * The RAG service's expected failures, typed here and given their contract
 * codes in one place (services/errors.ts), like the engine's and storage's.
 */
import type { RagIndex, RagIndexStatus } from '../../storage/types.js';

/** An index's progress as errors and responses report it: documents done of all. */
export interface RagProgress {
  total: number;
  completed: number;
  failed: number;
}

export const progressOf = (index: RagIndex): RagProgress => ({
  total: index.documentsTotal,
  completed: index.documentsIndexed,
  failed: index.documentsFailed,
});

export class RagError extends Error {}

/** No such index (by id), or a dataset with none. → 404 not_found */
export class RagIndexNotFoundError extends RagError {
  constructor(readonly ref: { indexId: string } | { datasetId: string }) {
    super('indexId' in ref ? `RAG index ${ref.indexId} not found` : `dataset ${ref.datasetId} has no RAG index`);
    this.name = 'RagIndexNotFoundError';
  }
}

/** No such dataset. → 404 not_found */
export class RagDatasetNotFoundError extends RagError {
  constructor(readonly datasetId: string) {
    super(`dataset ${datasetId} not found`);
    this.name = 'RagDatasetNotFoundError';
  }
}

/** The dataset is not a rag_corpus (an eval_set given as a corpus). → 400 invalid_request */
export class NotACorpusError extends RagError {
  constructor(
    readonly datasetId: string,
    readonly type: string,
  ) {
    super(`dataset ${datasetId} is an ${type}, not a rag_corpus`);
    this.name = 'NotACorpusError';
  }
}

/** The index cannot answer yet (processing) or at all (failed). → 409 conflict, with its progress */
export class RagIndexNotReadyError extends RagError {
  readonly status: RagIndexStatus;
  readonly progress: RagProgress;
  constructor(readonly index: RagIndex) {
    super(
      index.status === 'processing'
        ? `RAG index ${index.id} is still processing (${index.documentsIndexed + index.documentsFailed} of ${index.documentsTotal} documents)`
        : `RAG index ${index.id} failed: ${index.error ?? 'unknown error'}`,
    );
    this.name = 'RagIndexNotReadyError';
    this.status = index.status;
    this.progress = progressOf(index);
  }
}

/**
 * The index's vectors come from another embedding model than the one the
 * server now runs (a configuration change): its dense side cannot be
 * searched until it is rebuilt. → 409 conflict
 */
export class RagModelMismatchError extends RagError {
  constructor(
    readonly index: RagIndex,
    readonly liveModel: string,
  ) {
    super(
      `RAG index ${index.id} was built with ${index.embeddingModel ?? 'no model'}, but the embedding model is now ${liveModel}: ` +
        'rebuild it (POST /v1/rag/indexes), or search with mode "lexical"',
    );
    this.name = 'RagModelMismatchError';
  }
}
