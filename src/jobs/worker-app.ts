import express, { type Express } from 'express';
import type { Metrics } from '../observability/metrics.js';
import { errorEnvelope } from '../errors.js';
import { publicError } from '../services/errors.js';
import type { HealthService } from '../services/health.js';
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
  app.get('/healthz', (req, res) => {
    res.json({ status: 'ok', request_id: req.ctx.requestId });
  });
  app.get('/readyz', (req, res) => {
    try {
      health.assertReady();
      res.json({ status: 'ready', request_id: req.ctx.requestId });
    } catch (err) {
      const e = publicError(err);
      res.status(e.status).json(errorEnvelope(e, req.ctx.requestId));
    }
  });
  app.get('/metrics', (_req, res, next) => {
    metrics.prometheus().then((body) => res.status(200).type(metrics.contentType).send(body), next);
  });
  app.use((req, res) => {
    res.status(404).json({ error: { code: 'not_found', message: 'a worker serves only /healthz, /readyz and /metrics' }, request_id: req.ctx.requestId });
  });
  return app;
}
