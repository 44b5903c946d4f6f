import type { IncomingMessage, ServerResponse } from 'node:http';
import { getOperationAST, GraphQLError, type DocumentNode, type ExecutionResult } from 'graphql';
import { processRegularResult, type Plugin } from 'graphql-yoga';
import { HTTP_STATUS, type ErrorCode } from '../../errors.js';
import type { Metrics } from '../../observability/metrics.js';
import type { GraphQLContext } from '../context.js';

/** What yoga's server context holds here: Express's request, with the request context on it. */
export interface ServerContext {
  req: IncomingMessage & { ctx?: GraphQLContext['ctx'] };
  res: ServerResponse;
}

const CONTRACT_CODES = new Set(Object.keys(HTTP_STATUS));

type ResultProcessorInput = Parameters<NonNullable<Plugin['onResultProcess']>>[0]['result'];

/** Yoga's own codes that are not the client's invalid_request. */
const YOGA_CODES: Record<string, ErrorCode> = { REQUEST_ENTITY_TOO_LARGE: 'payload_too_large' };

/** Extensions that carry internals (yoga puts a parse failure's own error in `originalError`). */
const INTERNAL_EXTENSIONS = new Set(['originalError', 'stacktrace', 'exception']);

/**
 * One response or stream event in the contract's terms: GraphQL's own
 * errors (syntax, validation, variable coercion, body parsing) get the
 * invalid_request code, keeping GraphQL's as `graphql_code`; no error
 * carries internals; the request id is in `extensions`.
 */
function toContract(result: ExecutionResult, requestId: string | undefined): ExecutionResult {
  const errors = result.errors?.map((e) => {
    const code = String(e.extensions?.code);
    const leaks = Object.keys(e.extensions ?? {}).some((k) => INTERNAL_EXTENSIONS.has(k));
    if (CONTRACT_CODES.has(code) && !leaks) return e;
    const extensions = Object.fromEntries(Object.entries(e.extensions ?? {}).filter(([k]) => !INTERNAL_EXTENSIONS.has(k)));
    // Yoga answers an error with an originalError by its own HTTP status (400 for a body that is not
    // JSON), one without by GraphQL-over-HTTP's 200: the status it had must survive the stripping.
    const http = e.extensions?.http;
    if (leaks && typeof http === 'object' && http !== null) extensions.http = { ...http, spec: false };
    return new GraphQLError(e.message, {
      nodes: e.nodes,
      positions: e.positions,
      path: e.path,
      extensions: CONTRACT_CODES.has(code) ? extensions : { ...extensions, code: YOGA_CODES[code] ?? 'invalid_request', graphql_code: e.extensions?.code },
    });
  });
  return {
    ...result,
    ...(errors ? { errors } : {}),
    ...(requestId ? { extensions: { ...result.extensions, request_id: requestId } } : {}),
  };
}

/** Applies `f` to each result: a single one, a batch, or every event of a stream (subscriptions). */
function eachResult(result: ResultProcessorInput, f: (r: ExecutionResult) => ExecutionResult): ResultProcessorInput {
  if (Array.isArray(result)) return result.map(f);
  if (!(Symbol.asyncIterator in result)) return f(result);
  const source = result;
  return {
    [Symbol.asyncIterator]() {
      const it = source[Symbol.asyncIterator]();
      return {
        next: async () => {
          const step = await it.next();
          return step.done ? step : { done: false, value: f(step.value) };
        },
        return: async () => (await it.return?.()) ?? { done: true, value: undefined },
      };
    },
  };
}

const POST_TYPES = 'application/json, application/graphql+json, application/graphql, application/x-www-form-urlencoded or multipart/form-data';

/**
 * Yoga answers a POST in a content type it cannot parse with a bare 415, and
 * a request whose Accept header it cannot meet with a bare 406, after
 * executing it: neither is in the contract. The first is the client's
 * invalid_request, as is a malformed `variables` parameter. The second is answered as JSON all the same (HTTP lets a
 * server ignore Accept; a mutation's effect is not thrown away), except for a
 * subscription, which can only stream: that is invalid_request, unstarted.
 * Runs before contractCodes and metricsPlugin, which then see its errors.
 */
export const negotiation = (): Plugin => ({
  onRequestParse({ requestParser, setRequestParser }) {
    const invalid = (message: string) => new GraphQLError(message, { extensions: { code: 'invalid_request', http: { status: 400 } } });
    if (!requestParser) {
      setRequestParser(() => {
        throw invalid(`content-type must be ${POST_TYPES}`);
      });
      return;
    }
    // The GET and form parsers let JSON.parse's SyntaxError through for a malformed
    // `variables` or `extensions` parameter, which would be masked as internal_error.
    setRequestParser(async (request) => {
      try {
        return await requestParser(request);
      } catch (err) {
        throw err instanceof SyntaxError ? invalid('variables and extensions must be JSON objects') : err;
      }
    });
  },
  onResultProcess({ result, resultProcessor, setResult, setResultProcessor }) {
    if (resultProcessor) return;
    if (!Array.isArray(result) && Symbol.asyncIterator in result) {
      void result[Symbol.asyncIterator]().return?.();
      const message = 'a subscription answers as a stream: send accept: text/event-stream';
      setResult({ errors: [new GraphQLError(message, { extensions: { code: 'invalid_request', http: { status: 400 } } })] });
    }
    setResultProcessor(processRegularResult, 'application/json');
  },
});

/**
 * Every response (syntax and validation errors included, which never reach
 * execution) and every subscription event in the contract's terms; see toContract.
 */
export const contractCodes = (): Plugin<object, ServerContext> => ({
  onResultProcess({ result, setResult, serverContext }) {
    const requestId = serverContext.req.ctx?.requestId;
    setResult(eachResult(result, (r) => toContract(r, requestId)));
  },
});

/**
 * Tags the request with its operation type (for the HTTP metrics' label) and
 * counts every error a response or stream event carries by its final
 * contract code, once. Runs after contractCodes, so GraphQL's own errors
 * count as invalid_request, and an error that ends a subscription counts
 * like any other.
 */
export const metricsPlugin = (metrics: Metrics): Plugin => {
  const tag = ({ args }: { args: { document: DocumentNode; operationName?: string | null; contextValue: unknown } }) => {
    const ctx = (args.contextValue as Partial<GraphQLContext>).ctx;
    const op = getOperationAST(args.document, args.operationName);
    if (ctx && op) ctx.operationType = op.operation;
  };
  const count = (r: ExecutionResult) => {
    for (const e of r.errors ?? []) metrics.error(String(e.extensions?.code ?? 'internal_error'));
    return r;
  };
  return {
    onExecute: tag,
    onSubscribe: tag,
    onResultProcess({ result, setResult }) {
      setResult(eachResult(result, count));
    },
  };
};

