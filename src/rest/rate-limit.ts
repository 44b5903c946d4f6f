import type { RequestHandler } from 'express';
import { rateLimitedError, rateLimitHeaders, type RateLimiter } from '../services/rate-limit.js';

/**
 * Counts the request against its API key's budget and stamps the
 * X-RateLimit-* headers; past the limit, 429 rate_limited with Retry-After.
 * Mounted right after requireApiKey, so only protected routes count.
 */
export function rateLimit(limiter: RateLimiter): RequestHandler {
  return (req, res, next) => {
    const keyId = req.ctx.keyId;
    if (!limiter.enabled || keyId === null) {
      next();
      return;
    }
    limiter.consume(keyId).then(
      (d) => {
        if (!d) return next();
        for (const [name, value] of Object.entries(rateLimitHeaders(d))) res.setHeader(name, value);
        next(d.allowed ? undefined : rateLimitedError(d));
      },
      (err: unknown) => next(err),
    );
  };
}
