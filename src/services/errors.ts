import { AppError, invalidRequest, serviceUnavailable } from '../errors.js';
import {
  ContextOverflowError,
  EngineError,
  EngineOverloadedError,
  GenerationCancelledError,
  ModelNotLoadedError,
} from '../engine/errors.js';
import { InvalidCursorError } from '../storage/errors.js';

/**
 * The one place where the layers below the services (engine, storage) have
 * their typed errors turned into the contract's codes. Undefined for
 * anything else.
 */
function fromLowerLayers(err: unknown): AppError | undefined {
  if (!(err instanceof EngineError) && !(err instanceof InvalidCursorError)) return undefined;
  if (err instanceof ContextOverflowError) {
    return invalidRequest(err.message, { field: 'prompt', prompt_tokens: err.promptTokens, context_window: err.contextWindow });
  }
  if (err instanceof GenerationCancelledError) return invalidRequest('Request cancelled by the client');
  if (err instanceof EngineOverloadedError) {
    return serviceUnavailable('Server is at capacity; retry shortly', { max_waiting_requests: err.maxWaiting });
  }
  if (err instanceof ModelNotLoadedError) {
    return err.state === 'loading'
      ? serviceUnavailable('Model is loading', { state: 'loading' })
      : serviceUnavailable('Model failed to load', { state: 'failed', reason: err.reason });
  }
  if (err instanceof InvalidCursorError) return invalidRequest('cursor is invalid', { field: 'cursor' });
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
