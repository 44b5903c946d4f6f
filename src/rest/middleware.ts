import { randomUUID } from 'node:crypto';
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import { AppError, errorEnvelope, invalidRequest, notFound } from '../errors.js';
import { isExpected, publicError } from '../services/errors.js';
import type { Log } from '../observability/log.js';
import type { Authenticator } from '../services/auth.js';
import type { RequestContext } from '../services/context.js';

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

/** The one place REST maps errors to the contract's envelope (and counts them by code). */
export function errorHandler(log: Log, metrics?: { error(code: string): void }): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const mapped = fromBodyParser(err) ?? publicError(err);
    metrics?.error(mapped.code);
    const requestId = req.ctx?.requestId ?? requestIdFrom(undefined);
    if (!isExpected(err) && mapped.code === 'internal_error') {
      log.error({ err, request_id: requestId, path: req.path }, 'unhandled error');
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    res.status(mapped.status).json(errorEnvelope(mapped, requestId));
  };
}

/** body-parser's errors carry a `type`; turn the ones a client causes into contract errors. */
function fromBodyParser(err: unknown): AppError | undefined {
  if (typeof err !== 'object' || err === null || !('type' in err)) return undefined;
  const e = err as { type: string; limit?: number };
  switch (e.type) {
    case 'entity.parse.failed':
      return invalidRequest('Malformed JSON body');
    case 'entity.too.large':
      return new AppError('payload_too_large', 'Request body too large', { limit_bytes: e.limit });
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return invalidRequest('Unsupported body encoding');
    case 'request.aborted':
      return invalidRequest('Request aborted');
    default:
      return undefined;
  }
}
