/**
 * Errors the storage layer throws on purpose. They are plain Error subclasses,
 * not AppErrors: storage knows nothing of HTTP codes; the services map them.
 */

/**
 * A list cursor that this storage did not issue (malformed, truncated or
 * edited by the client). Services map it to 400 `invalid_request`.
 */
export class InvalidCursorError extends Error {
  constructor(message = 'Invalid cursor') {
    super(message);
    this.name = 'InvalidCursorError';
  }
}

/**
 * The store cannot do what was asked now, for a reason outside the request:
 * the database is unreachable or restarting, the data directory is read-only
 * or full. Each store turns its own driver's errors into this in one place
 * (guardStorage); services map it to 503 `service_unavailable` with the
 * reason, and batch runs pause on it instead of failing records.
 */
export class StorageUnavailableError extends Error {
  constructor(
    /** Short and stable, safe to show a client: "database unreachable", "storage is read-only", ... */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`storage unavailable: ${reason}`, options);
    this.name = 'StorageUnavailableError';
  }
}

/**
 * Wraps every method of each repository so that the errors `translate`
 * recognises (a driver's connection or file-system errors) are thrown as
 * StorageUnavailableError; other errors pass through unchanged.
 */
export function guardStorage<T extends object>(repository: T, translate: (err: unknown) => unknown): T {
  const guarded = { ...repository } as Record<string, unknown>;
  for (const [name, value] of Object.entries(repository)) {
    if (typeof value !== 'function') continue;
    const method = value as (...args: unknown[]) => unknown;
    guarded[name] = (...args: unknown[]) => {
      let result: unknown;
      try {
        result = method.apply(repository, args);
      } catch (err) {
        throw translate(err);
      }
      return result instanceof Promise ? result.catch((err: unknown) => Promise.reject(translate(err))) : result;
    };
  }
  return guarded as T;
}
