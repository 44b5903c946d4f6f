import { Router } from 'express';
import type { QuantizationInfo } from '../engine/quantize.js';
import { errorEnvelope } from '../errors.js';
import { publicError } from '../services/errors.js';
import type { EmbeddingStatus } from '../services/embeddings/host.js';
import type { HealthService } from '../services/health.js';

/** The embedding model in /v1/health: which source is live, its dimensions and state. */
export function embeddingJson(e: EmbeddingStatus) {
  return {
    state: e.state,
    model: e.model,
    source: e.source,
    dimensions: e.dimensions,
    max_tokens: e.maxTokens,
    reason: e.reason,
    queue_depth: e.queueDepth,
    load_seconds: e.loadSeconds,
  };
}

/** The served model's weight quantization (null: fp32), as /v1/health and /v1/models show it. */
export function quantizationJson(q: QuantizationInfo | null) {
  if (q === null) return null;
  return {
    mode: q.mode,
    method: q.method,
    bits: q.bits,
    block_size: q.blockSize,
    symmetric: q.symmetric,
    scale_method: q.scaleMethod,
    accuracy_level: q.accuracyLevel,
    linear_layers: q.linearLayers,
    lm_head: q.lmHead,
    embedding: q.embedding,
    graph: q.graph,
  };
}

/**
 * The probes, as every process serves them (the API and a worker): /healthz
 * (liveness: the process answers) and /readyz (readiness). No key.
 */
export function probeRouter(health: HealthService): Router {
  const router = Router();
  router.get('/healthz', (req, res) => {
    res.json({ status: 'ok', request_id: req.ctx.requestId });
  });
  router.get('/readyz', (req, res) => {
    try {
      health.assertReady();
      res.json({ status: 'ready', request_id: req.ctx.requestId });
    } catch (err) {
      const e = publicError(err);
      res.status(e.status).json(errorEnvelope(e, req.ctx.requestId));
    }
  });
  return router;
}

/** Probes and the health report; none needs a key. */
export function healthRouter(health: HealthService): Router {
  const router = probeRouter(health);
  router.get(['/v1/health', '/health'], async (req, res) => {
    const h = health.report();
    const queues = await health.queues();
    res.json({
      status: h.status,
      model: h.model,
      quantization: quantizationJson(h.quantization),
      device: h.device,
      model_loaded: h.modelLoaded,
      uptime_s: h.uptimeS,
      version: h.version,
      ...(h.reason ? { reason: h.reason } : {}),
      queue_depth: h.queueDepth,
      running_batch: h.runningBatch,
      ...(h.redis ? { redis: h.redis } : {}),
      embedding: embeddingJson(h.embedding),
      ...(queues ? { queues } : {}),
      request_id: req.ctx.requestId,
    });
  });
  return router;
}
