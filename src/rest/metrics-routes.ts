import { Router } from 'express';
import { invalidRequest } from '../errors.js';
import type { Metrics, MetricsSnapshot, Percentiles } from '../observability/metrics.js';
import { asyncHandler } from './middleware.js';

const percentilesJson = (p: Percentiles) => ({ samples: p.samples, p50: p.p50, p95: p.p95, p99: p.p99 });

/** The snapshot in the contract's snake_case. */
export function metricsJson(m: MetricsSnapshot) {
  return {
    uptime_s: m.uptimeS,
    requests: {
      total: m.requests.total,
      by_status_class: m.requests.byStatusClass,
      latency_ms: percentilesJson(m.requests.latencyMs),
      routes: m.requests.routes.map((r) => ({
        route: r.route,
        method: r.method,
        total: r.total,
        by_status_class: r.byStatusClass,
        latency_ms: percentilesJson(r.latencyMs),
      })),
    },
    errors: { total: m.errors.total, by_code: m.errors.byCode },
    cache: { hits: m.cache.hits, misses: m.cache.misses, hit_rate: m.cache.hitRate },
    rate_limit: { rejections: m.rateLimit.rejections },
    inference: {
      requests: m.inference.requests,
      by_finish_reason: m.inference.byFinishReason,
      prompt_tokens: m.inference.promptTokens,
      completion_tokens: m.inference.completionTokens,
      time_to_first_token_ms: percentilesJson(m.inference.timeToFirstTokenMs),
      inter_token_latency_ms: percentilesJson(m.inference.interTokenLatencyMs),
      queue_wait_ms: percentilesJson(m.inference.queueWaitMs),
      queue_depth: m.inference.queueDepth,
      running_batch: m.inference.runningBatch,
    },
    model: { load_seconds: m.model.loadSeconds },
    embeddings: {
      requests: m.embeddings.requests,
      inputs: m.embeddings.inputs,
      tokens: m.embeddings.tokens,
      batches: m.embeddings.batches,
      batch_size: percentilesJson(m.embeddings.batchSize),
      queue_depth: m.embeddings.queueDepth,
    },
    percentile_window: m.percentileWindow,
  };
}

/** GET /v1/metrics: JSON figures, or `?format=prometheus` for the text exposition (contract section 6). */
export function metricsRouter(metrics: Metrics): Router {
  const router = Router();
  router.get(
    '/v1/metrics',
    asyncHandler(async (req, res) => {
      const format = req.query.format;
      if (format === 'prometheus') {
        const body = await metrics.prometheus();
        res.status(200).type(metrics.contentType).send(body);
        return;
      }
      if (format !== undefined && format !== 'json') {
        throw invalidRequest('format must be json or prometheus', { field: 'format' });
      }
      res.json({ ...metricsJson(await metrics.snapshot()), request_id: req.ctx.requestId });
    }),
  );
  return router;
}
