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
