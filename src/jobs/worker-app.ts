import express, { type Express } from 'express';
import type { Metrics } from '../observability/metrics.js';
import type { HealthService } from '../services/health.js';
import { probeRouter } from '../rest/health-routes.js';
import { requestContext } from '../rest/middleware.js';

/**
 * What a worker (ROLE=worker) serves on WORKER_PORT, and nothing else:
 * /healthz (liveness: the process answers), /readyz (readiness: the model
 * is loaded and the worker is not shutting down), /metrics (Prometheus text).
 */
export function buildWorkerApp(health: HealthService, metrics: Metrics): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(requestContext());
  app.use(probeRouter(health));
  app.get('/metrics', (_req, res, next) => {
    metrics.prometheus().then((body) => res.status(200).type(metrics.contentType).send(body), next);
  });
  app.use((req, res) => {
    res.status(404).json({ error: { code: 'not_found', message: 'a worker serves only /healthz, /readyz and /metrics' }, request_id: req.ctx.requestId });
  });
  return app;
}
