import type { RequestHandler } from 'express';
import type { Logger } from 'pino';

/**
 * One log line per request, when its response is done: request id, route
 * template (never a raw path with ids), status, latency, the caller's key id,
 * and for generations the token counts and cache hit. No prompt text.
 */
export function requestLog(log: Logger): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    res.on('close', () => {
      // The metrics middleware (mounted first) has labelled the route by then.
      const route = typeof res.locals.route === 'string' ? res.locals.route : 'unmatched';
      const usage = req.ctx?.usage;
      log.info(
        {
          request_id: req.ctx?.requestId,
          method: req.method,
          route,
          status: res.statusCode,
          latency_ms: Math.round(performance.now() - started),
          key_id: req.ctx?.keyId ?? null,
          ...(usage
            ? { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens, cache_hit: usage.cacheHit }
            : {}),
          ...(res.writableFinished ? {} : { aborted: true }),
        },
        'request',
      );
    });
    next();
  };
}
