import type { AppError, ErrorCode } from '../errors.js';

/**
 * OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`,
 * for the OpenAI-compatible routes: with the contract's HTTP statuses, the
 * official SDKs raise their usual classes (400 BadRequestError, 401
 * AuthenticationError, 404 NotFoundError, 429 RateLimitError, ...).
 */
export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

const TYPES: Record<ErrorCode, string> = {
  invalid_request: 'invalid_request_error',
  unauthorized: 'invalid_request_error',
  forbidden: 'permission_error',
  not_found: 'invalid_request_error',
  conflict: 'invalid_request_error',
  payload_too_large: 'invalid_request_error',
  rate_limited: 'requests',
  internal_error: 'server_error',
  service_unavailable: 'server_error',
};

/** OpenAI's own codes where it has one for the case. */
function codeOf(err: AppError): string | null {
  switch (err.code) {
    case 'unauthorized':
      return 'invalid_api_key';
    case 'rate_limited':
      return 'rate_limit_exceeded';
    case 'not_found':
      return err.details?.field === 'model' ? 'model_not_found' : 'not_found';
    case 'invalid_request':
      return err.details?.prompt_tokens !== undefined ? 'context_length_exceeded' : null;
    default:
      return err.code;
  }
}

export function openAiErrorBody(err: AppError): OpenAiErrorBody {
  const field = err.details?.field;
  return {
    error: {
      message: err.message,
      type: TYPES[err.code],
      param: typeof field === 'string' ? field : null,
      code: codeOf(err),
    },
  };
}

/** The routes that answer errors in OpenAI's shape (the contract's routes keep the contract's envelope). */
export const OPENAI_PATHS = ['/v1/chat/completions', '/v1/completions', '/v1/models'];

export const isOpenAiPath = (path: string): boolean =>
  OPENAI_PATHS.some((p) => path === p || path.startsWith(`${p}/`));
