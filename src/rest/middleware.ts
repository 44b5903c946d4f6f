import { randomUUID } from 'node:crypto';
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import { AppError, errorEnvelope, invalidRequest, notFound } from '../errors.js';
import { isExpected, publicError } from '../services/errors.js';
import type { Log } from '../observability/log.js';
import type { Authenticator } from '../services/auth.js';
import type { RequestContext } from '../services/context.js';
import { isOpenAiPath, openAiErrorBody } from '../openai/errors.js';
import { isEventStream, SseWriter } from './sse.js';

declare module 'express-serve-static-core' {
  interface Request {
    ctx: RequestContext;
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:@\-]{1,128}$/;

/** The client's request id when it is sane, else a fresh UUID. */
export function requestIdFrom(header: string | string[] | undefined): string {
  const v = Array.isArray(header) ? header[0] : header;
  return v && REQUEST_ID.test(v) ? v : randomUUID();
}

/**
 * Builds the per-request context (request id, abort signal) and stamps
 * `x-request-id` and `x-latency-ms` on every response, REST and GraphQL alike.
 */
export function requestContext(): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    const requestId = requestIdFrom(req.headers['x-request-id']);
    const controller = new AbortController();
    // The client going away before the response is done cancels the work.
    res.on('close', () => {
      if (!res.writableFinished) controller.abort();
    });
    req.ctx = { requestId, keyId: null, signal: controller.signal };
    res.setHeader('x-request-id', requestId);
    const writeHead = res.writeHead;
    res.writeHead = function (this: Response, ...args: unknown[]) {
      if (!this.headersSent) this.setHeader('x-latency-ms', String(Math.round(performance.now() - started)));
      return (writeHead as (...a: unknown[]) => Response).apply(this, args);
    } as Response['writeHead'];
    next();
  };
}

/** Requires an API key; sets the caller's key id on the context. */
export function requireApiKey(auth: Authenticator): RequestHandler {
  return (req, _res, next) => {
    try {
      req.ctx.keyId = auth.authenticate({
        apiKey: req.header('x-api-key'),
        authorization: req.header('authorization'),
      });
      next();
    } catch (err) {
      next(err);
    }
  };
}

/** Wraps an async handler so its rejection reaches the error middleware. */
export const asyncHandler =
  (fn: (req: Request, res: Response) => Promise<void>): RequestHandler =>
  (req, res, next: NextFunction) => {
    fn(req, res).catch(next);
  };

export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(notFound(`No route for ${req.method} ${req.path}`));
};

/**
 * The one place REST maps errors to the contract's envelope (and counts them
 * by code, once each). An event stream already under way cannot change its
 * status: it ends with an `error` event carrying the same envelope.
 */
export function errorHandler(log: Log, metrics?: { error(code: string): void }): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const mapped = fromHttpLayer(err) ?? publicError(err);
    metrics?.error(mapped.code);
    const requestId = req.ctx?.requestId ?? requestIdFrom(undefined);
    if (!isExpected(err) && mapped.code === 'internal_error') {
      log.error({ err, request_id: requestId, path: req.path }, 'unhandled error');
    }
    // The OpenAI-compatible routes answer in OpenAI's shape, so its SDKs raise their usual errors.
    const openAi = isOpenAiPath(req.path);
    if (res.headersSent) {
      if (isEventStream(res)) {
        if (openAi) res.write(`data: ${JSON.stringify(openAiErrorBody(mapped))}\n\n`);
        else new SseWriter(res).send('error', errorEnvelope(mapped, requestId));
      }
      res.end();
      return;
    }
    res.status(mapped.status).json(openAi ? openAiErrorBody(mapped) : errorEnvelope(mapped, requestId));
  };
}

/**
 * The errors Express's own layers raise for what a client sent (body-parser's
 * carry a `type`), as contract errors; undefined for anything else.
 */
function fromHttpLayer(err: unknown): AppError | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { type?: unknown; limit?: number; body?: unknown; status?: unknown; code?: unknown };
  switch (e.type) {
    case 'entity.parse.failed':
      // Strict mode refuses JSON that is valid but not an object or array ("hello", 42, null) as a parse failure.
      return isJson(e.body) ? invalidRequest('request body must be a JSON object') : invalidRequest('Malformed JSON body');
    case 'entity.too.large':
      return new AppError('payload_too_large', 'Request body too large', { limit_bytes: e.limit });
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return invalidRequest('Unsupported body encoding');
    case 'request.aborted':
      return invalidRequest('Request aborted');
    case 'request.size.invalid':
      return invalidRequest('request body length does not match its content-length');
  }
  if (e.type !== undefined || e.status !== 400) return undefined;
  // A body that does not decompress: body-parser passes zlib's own error on (Z_DATA_ERROR,
  // ERR__ERROR_FORMAT_PADDING_1 from brotli, ...) as a 400 without a type.
  if (typeof e.code === 'string' && /^(?:Z_|ERR__|ERR_BROTLI|ERR_ZSTD)/.test(e.code)) {
    return invalidRequest('request body is not valid data for its content-encoding');
  }
  // A path segment that is not valid percent-encoding (the router's decodeURIComponent failed).
  if (err instanceof URIError) return invalidRequest('malformed percent-encoding in the URL path');
  return undefined;
}

function isJson(text: unknown): boolean {
  if (typeof text !== 'string') return false;
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
