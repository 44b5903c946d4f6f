import cors from 'cors';
import type { RequestHandler } from 'express';
import helmet from 'helmet';

/**
 * Security headers on every response (helmet). The content security policy
 * fits the pages this server serves itself (GraphiQL at /graphql, the
 * console at /): everything from this origin, no third party; GraphiQL's
 * boot script is inline and its editor runs web workers.
 */
export function securityHeaders(): RequestHandler {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'", "'unsafe-inline'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:', 'blob:'],
        fontSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        workerSrc: ["'self'", 'blob:'],
        objectSrc: ["'none'"],
        baseUri: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
      },
    },
    // The API is called from other origins only where CORS_ORIGINS says so; its answers need no isolation from them.
    crossOriginResourcePolicy: { policy: 'same-origin' },
    // HTTPS is a deployment's (a TLS proxy's) to announce.
    strictTransportSecurity: false,
  });
}

/**
 * CORS for exactly these origins (CORS_ORIGINS): preflights answered
 * without a key, the key headers allowed, the contract's response headers
 * exposed. Other origins get no CORS headers, so browsers refuse them.
 */
export function corsPolicy(origins: readonly string[]): RequestHandler {
  const allowed = new Set(origins);
  return cors({
    origin: (origin, cb) => cb(null, origin !== undefined && allowed.has(origin)),
    methods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
    allowedHeaders: ['authorization', 'x-api-key', 'content-type', 'accept', 'idempotency-key'],
    exposedHeaders: ['x-request-id', 'x-latency-ms', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'retry-after'],
    maxAge: 600,
  });
}
