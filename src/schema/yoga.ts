import type { IncomingMessage, ServerResponse } from 'node:http';
import { getOperationAST, GraphQLError, type DocumentNode } from 'graphql';
import { createYoga, type Plugin } from 'graphql-yoga';
import { AppError, HTTP_STATUS } from '../errors.js';
import { isExpected, publicError } from '../services/errors.js';
import { rateLimitedError, rateLimitHeaders } from '../services/rate-limit.js';
import type { Services } from '../services/index.js';
import type { Log } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import type { GraphQLContext } from './context.js';
import { graphiqlOptions, renderGraphiQL } from './graphiql.js';
import { schema } from './index.js';

interface ServerContext {
  req: IncomingMessage & { ctx?: GraphQLContext['ctx'] };
  res: ServerResponse;
}

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

const CONTRACT_CODES = new Set(Object.keys(HTTP_STATUS));

/**
 * Every response gets the request id in `extensions`; errors GraphQL itself
 * raises (syntax, validation, variable coercion) get the contract's
 * invalid_request code, keeping GraphQL's own code as `graphql_code`.
 */
const contractCodes = (): Plugin => ({
  onExecutionResult({ result, setResult, context }) {
    if (!result || Symbol.asyncIterator in result) return;
    const requestId = (context as Partial<GraphQLContext>).ctx?.requestId;
    if (requestId) setResult({ ...result, extensions: { ...result.extensions, request_id: requestId } });
  },
  onResultProcess({ result, setResult }) {
    if (Array.isArray(result) || Symbol.asyncIterator in result) return;
    const foreign = (e: GraphQLError) => !CONTRACT_CODES.has(String(e.extensions?.code));
    if (!result.errors?.some(foreign)) return;
    setResult({
      ...result,
      errors: result.errors.map((e) =>
        foreign(e)
          ? new GraphQLError(e.message, {
              nodes: e.nodes,
              positions: e.positions,
              path: e.path,
              extensions: { ...e.extensions, code: 'invalid_request', graphql_code: e.extensions?.code },
            })
          : e,
      ),
    });
  },
});

/**
 * Tags the request with its operation type (for the HTTP metrics' label) and
 * counts every error a response carries by its final contract code. Runs
 * after contractCodes, so GraphQL's own errors count as invalid_request.
 */
const metricsPlugin = (metrics: Metrics): Plugin => {
  const tag = ({ args }: { args: { document: DocumentNode; operationName?: string | null; contextValue: unknown } }) => {
    const ctx = (args.contextValue as Partial<GraphQLContext>).ctx;
    const op = getOperationAST(args.document, args.operationName);
    if (ctx && op) ctx.operationType = op.operation;
  };
  return {
    onExecute: tag,
    onSubscribe: tag,
    onResultProcess({ result }) {
      if (Array.isArray(result) || Symbol.asyncIterator in result) return;
      for (const e of result.errors ?? []) metrics.error(String(e.extensions?.code ?? 'internal_error'));
    },
  };
};

/** The GraphQL surface: yoga over the Pothos schema, sharing the REST request context. */
export function buildYoga(services: Services, log: Log) {
  return createYoga<ServerContext, GraphQLContext>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    // Served from our own assets (works offline); see graphiql.ts.
    graphiql: graphiqlOptions,
    renderGraphiQL,
    plugins: [contractCodes(), metricsPlugin(services.metrics)],
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
      // One HTTP request to /graphql (one operation) counts once, against the same budget as REST.
      const limit = await services.rateLimit.consume(ctx.keyId);
      if (limit) {
        for (const [name, value] of Object.entries(rateLimitHeaders(limit))) res.setHeader(name, value);
        if (!limit.allowed) throw toGraphQLError(rateLimitedError(limit), ctx.requestId);
      }
      return { ctx, services };
    },
    maskedErrors: {
      maskError(error, message) {
        const original = error instanceof GraphQLError ? error : undefined;
        const cause = original?.originalError ?? error;
        if (isExpected(cause)) return toGraphQLError(publicError(cause), undefined, original);
        if (original && !original.originalError) return original;
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

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
