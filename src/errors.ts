/**
 * One error hierarchy for the whole server. Services throw AppError with a
 * contract code; each surface (REST, GraphQL) maps it in exactly one place.
 */
/** The contract's error codes (section 1). */
export const ERROR_CODES = [
  'invalid_request',
  'unauthorized',
  'forbidden',
  'not_found',
  'conflict',
  'payload_too_large',
  'rate_limited',
  'internal_error',
  'service_unavailable',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** The contract's code → HTTP status table (the only one). */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  rate_limited: 429,
  internal_error: 500,
  service_unavailable: 503,
};

export type ErrorDetails = Record<string, unknown>;

export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: ErrorDetails,
  ) {
    super(message);
    this.name = 'AppError';
  }
  get status(): number {
    return HTTP_STATUS[this.code];
  }
}

export const invalidRequest = (message: string, details?: ErrorDetails) =>
  new AppError('invalid_request', message, details);
export const notFound = (message: string, details?: ErrorDetails) => new AppError('not_found', message, details);
export const unauthorized = (message = 'Missing or invalid API key') => new AppError('unauthorized', message);
export const serviceUnavailable = (message: string, details?: ErrorDetails) =>
  new AppError('service_unavailable', message, details);

/** The contract's error envelope. */
export function errorEnvelope(err: AppError, requestId: string) {
  return {
    error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) },
    request_id: requestId,
  };
}
