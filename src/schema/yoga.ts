import type { IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';
import { GraphQLError } from 'graphql';
import { createYoga } from 'graphql-yoga';
import type { AppError } from '../errors.js';
import { readBody } from '../http/body.js';
import type { Log } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import { isExpected, publicError } from '../services/errors.js';
import type { Services } from '../services/index.js';
import { rateLimitedError, rateLimitHeaders } from '../services/rate-limit.js';
import type { GraphQLContext } from './context.js';
import { graphiqlOptions, renderGraphiQL } from './graphiql.js';
import { schema } from './index.js';
import { contractCodes, metricsPlugin, negotiation, type ServerContext } from './plugins/contract.js';
import { depthLimit } from './plugins/depth-limit.js';
import { operationLimits, type OperationLimits } from './plugins/operation-limits.js';

/** An AppError as a GraphQL error carrying the contract's code. */
function toGraphQLError(err: AppError, requestId: string | undefined, original?: GraphQLError): GraphQLError {
  return new GraphQLError(err.message, {
    nodes: original?.nodes,
    source: original?.source,
    positions: original?.positions,
    path: original?.path,
    extensions: {
      code: err.code,
      ...(err.details ? { details: err.details } : {}),
      ...(requestId ? { request_id: requestId } : {}),
      ...(err.code === 'unauthorized' || err.code === 'rate_limited' ? { http: { status: err.status } } : {}),
    },
  });
}

/** The GraphQL surface: yoga over the Pothos schema, sharing the REST request context. */
export function buildYoga(services: Services, log: Log, maxBodyBytes: number, limits: OperationLimits) {
  return createYoga<ServerContext, GraphQLContext>({
    schema,
    graphqlEndpoint: '/graphql',
    // graphqlHandler enforces it first, decompressed and with the connection closed; yoga's own check
    // (25 MB by default) is kept at the same one limit.
    maxRequestBodySize: maxBodyBytes,
    landingPage: false,
    // Served from our own assets (works offline); see graphiql.ts.
    graphiql: graphiqlOptions,
    renderGraphiQL,
    // One operation per request: a JSON array of operations is refused (invalid_request).
    batching: false,
    plugins: [depthLimit(), ...operationLimits(limits), negotiation(), contractCodes(), metricsPlugin(services.metrics)],
    context: async ({ req, res }) => {
      const ctx = req.ctx;
      if (!ctx) throw new Error('request context missing');
      try {
        ctx.keyId = services.auth.authenticate({
          apiKey: header(req, 'x-api-key'),
          authorization: header(req, 'authorization'),
        });
      } catch (err) {
        throw toGraphQLError(publicError(err), ctx.requestId);
      }
      // One HTTP request to /graphql counts once against the same budget as REST, or once per
      // generating field (chat, rag, embed, ...) when the operation holds several (counted at validation).
      const limit = await services.rateLimit.consume(ctx.keyId, Math.max(1, ctx.generatingFields ?? 0));
      if (limit) {
        for (const [name, value] of Object.entries(rateLimitHeaders(limit))) res.setHeader(name, value);
        if (!limit.allowed) throw toGraphQLError(rateLimitedError(limit), ctx.requestId);
      }
      return { ctx, services };
    },
    // Yoga logs every error it hands to maskError, client errors included; maskError logs what is unexpected.
    logging: { debug: () => {}, info: () => {}, warn: (...args) => log.warn({ yoga: args.map(String) }, 'graphql-yoga'), error: () => {} },
    maskedErrors: {
      maskError(error, message) {
        const original = error instanceof GraphQLError ? error : undefined;
        const cause = rootCause(error);
        if (isExpected(cause)) return toGraphQLError(publicError(cause), undefined, original);
        // GraphQL's own error about the request (variable coercion wraps one GraphQLError in another).
        if (original && cause instanceof GraphQLError) return original;
        log.error({ err: cause }, 'graphql resolver failed');
        return new GraphQLError(message, {
          nodes: original?.nodes,
          path: original?.path,
          extensions: { code: 'internal_error' },
        });
      },
    },
  });
}

/** What an error wraps at the bottom: GraphQL wraps a resolver's error once, a variable's coercion error twice. */
function rootCause(error: unknown): unknown {
  let e = error;
  while (e instanceof GraphQLError && e.originalError) e = e.originalError;
  return e;
}

/**
 * /graphql as an Express handler. The body is read here, before yoga sees
 * it, within `maxBodyBytes` (MAX_BODY_BYTES, REST's JSON limit too): a
 * declared length over it is refused before a byte is read, a body that
 * passes it while arriving is cut off there (the connection closes), a
 * compressed one is limited by its decoded size. The refusal is a GraphQL
 * error response with the contract's code and HTTP status, counted once.
 */
export function graphqlHandler(yoga: ReturnType<typeof buildYoga>, maxBodyBytes: number, metrics: Metrics): RequestHandler {
  return (req, res) => {
    if (req.method === 'GET' || req.method === 'HEAD') {
      void yoga(req, res);
      return;
    }
    readBody(req, maxBodyBytes).then(
      (body) => {
        // Yoga takes a body already read from req.body; it is decoded, so the headers must not say otherwise.
        delete req.headers['content-encoding'];
        req.headers['content-length'] = String(body.length);
        req.body = body;
        void yoga(req, res);
      },
      (err: unknown) => {
        const mapped = publicError(err);
        metrics.error(mapped.code);
        // The rest of the body is never read: close the connection rather than drain it.
        res.setHeader('connection', 'close');
        res.status(mapped.status).json({ errors: [toGraphQLError(mapped, req.ctx.requestId).toJSON()], extensions: { request_id: req.ctx.requestId } });
      },
    );
  };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
