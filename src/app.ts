import express, { type Express } from 'express';
import { corsPolicy, securityHeaders } from './http/security-headers.js';
import type { Logger } from 'pino';
import { chatRouter } from './rest/chat-routes.js';
import { datasetRouter } from './rest/dataset-routes.js';
import { embeddingRouter } from './rest/embedding-routes.js';
import { evaluationRouter } from './rest/evaluation-routes.js';
import { healthRouter } from './rest/health-routes.js';
import { metricsMiddleware } from './rest/metrics-middleware.js';
import { metricsRouter } from './rest/metrics-routes.js';
import { ragRouter } from './rest/rag-routes.js';
import { rateLimit } from './rest/rate-limit.js';
import { requestLog } from './rest/request-log.js';
import { errorHandler, notFoundHandler, requestContext, requireApiKey } from './rest/middleware.js';
import { graphiqlAssetsRouter } from './schema/graphiql.js';
import { consoleRouter } from './console/static.js';
import { openAiRouter } from './openai/routes.js';
import { buildYoga, graphqlHandler } from './schema/yoga.js';
import { DEFAULT_OPERATION_LIMITS, type OperationLimits } from './schema/plugins/operation-limits.js';
import type { Services } from './services/index.js';

export interface AppDeps {
  services: Services;
  log: Logger;
  maxBodyBytes: number;
  /** What one GraphQL operation may ask for (GRAPHQL_*). */
  graphqlLimits?: OperationLimits;
  /** Origins allowed cross-origin (CORS_ORIGINS); empty: no CORS headers. */
  corsOrigins?: readonly string[];
}

/** Mounts probes, /graphql and the REST routes over the shared services. Never listens. */
export function buildApp({ services, log, maxBodyBytes, graphqlLimits = DEFAULT_OPERATION_LIMITS, corsOrigins = [] }: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(securityHeaders());
  app.use(metricsMiddleware(services.metrics, app));
  app.use(requestContext());
  app.use(requestLog(log));
  // Before the key check: a browser's preflight carries no key.
  if (corsOrigins.length > 0) app.use(corsPolicy(corsOrigins));
  app.use(healthRouter(services.health));

  const yoga = buildYoga(services, log, maxBodyBytes, graphqlLimits);
  // A route (not a mount) so yoga sees the full URL; the body is read first, within maxBodyBytes.
  app.all(yoga.graphqlEndpoint, graphqlHandler(yoga, maxBodyBytes, services.metrics));
  // GraphiQL's script, styles and workers: public like the page that loads them.
  app.use(graphiqlAssetsRouter());
  // The web console (web/ built into web/dist) at /: public page and assets; its API calls carry the key.
  app.use(consoleRouter({ log }));

  app.use(requireApiKey(services.auth));
  // Protected routes only (probes are above); GraphQL counts in its context factory.
  app.use(rateLimit(services.rateLimit));
  app.use(chatRouter(services.chat, maxBodyBytes));
  app.use(openAiRouter(services.completions, services.host, services.embeddingHost, maxBodyBytes));
  app.use(datasetRouter(services.datasets));
  app.use(embeddingRouter(services.embeddings, maxBodyBytes));
  app.use(evaluationRouter(services.evaluations, services.batchEvals, maxBodyBytes));
  app.use(ragRouter(services.rag, services.ragAnswers, maxBodyBytes));
  app.use(metricsRouter(services.metrics));

  app.use(notFoundHandler);
  app.use(errorHandler(log, services.metrics));
  return app;
}
