import { AppError, invalidRequest, notFound, serviceUnavailable } from '../errors.js';
import {
  ContextOverflowError,
  EngineError,
  EngineOverloadedError,
  GenerationCancelledError,
  InputTooLongError,
  ModelNotLoadedError,
  ModelRunError,
  UnsupportedConstraintError,
} from '../engine/errors.js';
import { InvalidCursorError, StorageUnavailableError } from '../storage/errors.js';
import {
  NotACorpusError,
  RagDatasetNotFoundError,
  RagError,
  RagIndexNotFoundError,
  RagIndexNotReadyError,
  RagModelMismatchError,
} from './rag/errors.js';

/** The RAG service's typed errors (services/rag/errors.ts) as contract codes. */
function fromRag(err: RagError): AppError | undefined {
  if (err instanceof RagIndexNotFoundError) {
    return notFound(err.message, 'indexId' in err.ref ? { index_id: err.ref.indexId } : { dataset_id: err.ref.datasetId });
  }
  if (err instanceof RagDatasetNotFoundError) return notFound(err.message, { dataset_id: err.datasetId });
  if (err instanceof NotACorpusError) return invalidRequest(err.message, { field: 'dataset_id', dataset_type: err.type });
  if (err instanceof RagIndexNotReadyError) {
    return new AppError('conflict', err.message, {
      index_id: err.index.id,
      status: err.status,
      progress: err.progress,
      ...(err.status === 'failed' ? { error: err.index.error } : {}),
    });
  }
  if (err instanceof RagModelMismatchError) {
    return new AppError('conflict', err.message, { index_id: err.index.id, index_model: err.index.embeddingModel, embedding_model: err.liveModel });
  }
  return undefined;
}

/**
 * The one place where the layers below the services (engine, storage) have
 * their typed errors turned into the contract's codes. Undefined for
 * anything else.
 */
function fromLowerLayers(err: unknown): AppError | undefined {
  if (err instanceof RagError) return fromRag(err);
  if (err instanceof StorageUnavailableError) {
    // The reason is the store's own short wording ("database unreachable", "storage is read-only"); the cause stays in logs.
    return serviceUnavailable(`Storage unavailable: ${err.reason}; retry later`, { reason: err.reason });
  }
  if (!(err instanceof EngineError) && !(err instanceof InvalidCursorError)) return undefined;
  if (err instanceof ContextOverflowError) {
    return invalidRequest(err.message, { field: 'prompt', prompt_tokens: err.promptTokens, context_window: err.contextWindow });
  }
  if (err instanceof GenerationCancelledError) return invalidRequest('Request cancelled by the client');
  if (err instanceof InputTooLongError) {
    const field = err.index === null ? 'input' : `input[${err.index}]`;
    return invalidRequest(`${err.message}; shorten it, or send truncate: true to cut it to ${err.maxTokens} tokens`, {
      field,
      input_tokens: err.inputTokens,
      max_tokens: err.maxTokens,
    });
  }
  if (err instanceof EngineOverloadedError) {
    return serviceUnavailable('Server is at capacity; retry shortly', { [`max_waiting_${err.unit}`]: err.maxWaiting });
  }
  if (err instanceof ModelNotLoadedError) {
    const subject = err.subject === 'model' ? 'Model' : 'Embedding model';
    return err.state === 'loading'
      ? serviceUnavailable(`${subject} is loading`, { state: 'loading' })
      : serviceUnavailable(`${subject} failed to load`, { state: 'failed', reason: err.reason });
  }
  if (err instanceof InvalidCursorError) return invalidRequest('cursor is invalid', { field: 'cursor' });
  if (err instanceof ModelRunError) {
    // The engine logged the run's failure once (EngineOptions.onRunFailure); each request in its batch answers this.
    return new AppError('internal_error', 'The model run for this request failed; retry the request', { reason: 'model run failed' });
  }
  if (err instanceof UnsupportedConstraintError) {
    // Checked at validation already; what reaches here is what the grammar compiler itself refused.
    return invalidRequest(err.message, { field: 'response_format', ...(err.keyword ? { keyword: err.keyword } : {}), schema_path: err.path });
  }
  return undefined;
}

/**
 * The public shape of any error a service call raised: AppErrors as they
 * are, the engine's and storage's typed errors as their contract codes,
 * everything else masked as internal_error. Every surface maps errors
 * through this, once.
 */
export function publicError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  return fromLowerLayers(err) ?? new AppError('internal_error', 'Internal server error');
}

/** True when the error was expected (a client's or the server's state), not a bug to log with its stack. */
export function isExpected(err: unknown): boolean {
  return err instanceof AppError || fromLowerLayers(err) !== undefined;
}
