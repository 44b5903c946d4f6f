import { Router } from 'express';
import { jsonBody } from '../http/json.js';
import { notFound } from '../errors.js';
import type { BatchItem, BatchRun, EvalRun, ScoreRecord } from '../storage/types.js';
import type { BatchEvalService, BatchSummary } from '../services/batch-evals.js';
import type { EvaluationService } from '../services/evaluation.js';
import { DistributionQuerySchema, EvaluateRequestSchema, FailuresQuerySchema, StartBatchSchema } from '../services/evaluation-schema.js';
import { parseInput } from '../services/validation.js';
import { asyncHandler } from './middleware.js';

export const scoreJson = (s: ScoreRecord) => ({
  criterion: s.criterion,
  score: s.score,
  rationale: s.rationale,
  ...(s.evaluatorError ? { evaluator_error: s.evaluatorError } : {}),
});

export const evalRunJson = (r: EvalRun) => ({
  run_id: r.runId,
  prompt: r.prompt,
  response: r.response,
  reference: r.reference,
  context: r.context,
  criteria: r.criteria,
  scores: r.scores.map(scoreJson),
  judge: r.judge,
  model: r.model,
  latency_ms: r.latencyMs,
  created_at: r.createdAt,
});

export const batchJson = (b: BatchRun) => ({
  batch_eval_id: b.id,
  dataset_id: b.datasetId,
  status: b.status,
  progress: { total: b.total, completed: b.completed, failed: b.failed },
  criteria: b.criteria,
  params: b.params,
  error: b.error,
  created_at: b.createdAt,
  started_at: b.startedAt,
  updated_at: b.updatedAt,
  completed_at: b.completedAt,
});

export const itemJson = (i: BatchItem) => ({
  record_id: i.recordId,
  index: i.index,
  status: i.status,
  passed: i.passed,
  reason: i.reason,
  message: i.message,
  response: i.response,
  scores: i.scores.map(scoreJson),
  latency_ms: i.latencyMs,
  prompt_tokens: i.promptTokens,
  completion_tokens: i.completionTokens,
  attempts: i.attempts,
});

export const summaryJson = (s: BatchSummary) => ({
  mean_scores: s.meanScores,
  total_items: s.totalItems,
  failed_items: s.failedItems,
  pass_rate: s.passRate,
  pass_rate_ci95_lower: s.passRateCi95Lower,
  pass_rate_ci95_upper: s.passRateCi95Upper,
  latency_p50_ms: s.latencyP50Ms,
  latency_p95_ms: s.latencyP95Ms,
  total_input_tokens: s.totalInputTokens,
  total_output_tokens: s.totalOutputTokens,
});

/** Contract sections 3 (evaluate) and 5 (batch evaluations). */
export function evaluationRouter(evals: EvaluationService, batches: BatchEvalService, maxBodyBytes: number): Router {
  const router = Router();
  const json = jsonBody(maxBodyBytes);
  router.post(
    ['/v1/evaluate', '/evaluate'],
    json,
    asyncHandler(async (req, res) => {
      const run = await evals.evaluate(parseInput(EvaluateRequestSchema, req.body), req.ctx);
      res.json({ run_id: run.runId, model: run.model, scores: run.scores.map(scoreJson), latency_ms: run.latencyMs, request_id: req.ctx.requestId });
    }),
  );
  router.get(
    '/v1/evals/:id',
    asyncHandler(async (req, res) => {
      res.json({ ...evalRunJson(await evals.get(String(req.params.id))), request_id: req.ctx.requestId });
    }),
  );
  router.post(
    '/v1/batch-evals',
    json,
    asyncHandler(async (req, res) => {
      const run = await batches.start(parseInput(StartBatchSchema, req.body), req.ctx);
      res.status(202).json({ batch_eval_id: run.id, status: run.status, created_at: run.createdAt, request_id: req.ctx.requestId });
    }),
  );
  router.get(
    '/v1/batch-evals/:id',
    asyncHandler(async (req, res) => {
      res.json({ ...batchJson(await batches.get(String(req.params.id))), request_id: req.ctx.requestId });
    }),
  );
  router.post(
    '/v1/batch-evals/:id/cancel',
    asyncHandler(async (req, res) => {
      res.json({ ...batchJson(await batches.cancel(String(req.params.id))), request_id: req.ctx.requestId });
    }),
  );
  router.get(
    '/v1/batch-evals/:id/result',
    asyncHandler(async (req, res) => {
      const { run, summary: s } = await batches.summary(String(req.params.id));
      res.json({
        batch_eval_id: run.id,
        status: run.status,
        summary: summaryJson(s),
        completed_at: run.completedAt,
        request_id: req.ctx.requestId,
      });
    }),
  );
  router.get(
    '/v1/batch-evals/:id/distribution',
    asyncHandler(async (req, res) => {
      const { criterion } = parseInput(DistributionQuerySchema, req.query);
      const d = await batches.distribution(String(req.params.id), criterion);
      res.json({ batch_eval_id: req.params.id, criterion: d.criterion, buckets: d.buckets, summary: d.summary, request_id: req.ctx.requestId });
    }),
  );
  router.get(
    '/v1/batch-evals/:id/failures',
    asyncHandler(async (req, res) => {
      const page = await batches.failures(String(req.params.id), parseInput(FailuresQuerySchema, req.query));
      res.json({ batch_eval_id: req.params.id, count: page.count, data: page.items.map(itemJson), next_cursor: page.nextCursor, request_id: req.ctx.requestId });
    }),
  );
  router.get(
    '/v1/batch-evals/:id/artifacts/:name',
    asyncHandler(async (req, res) => {
      const name = String(req.params.name);
      if (name !== 'predictions.jsonl' && name !== 'failures.jsonl') {
        throw notFound(`no artifact ${name}; artifacts are predictions.jsonl and failures.jsonl`, { artifact: name });
      }
      const items = batches.streamItems(String(req.params.id), name === 'failures.jsonl');
      // Read the first item before committing to 200, so an unknown run is a clean 404.
      const first = await items.next();
      res.status(200).setHeader('content-type', 'application/x-ndjson; charset=utf-8');
      res.setHeader('content-disposition', `attachment; filename="${name}"`);
      if (!first.done) res.write(`${JSON.stringify(itemJson(first.value))}\n`);
      for await (const item of items) {
        // A client that leaves mid-download: stop reading the run (and never wait for a drain that cannot come).
        if (res.destroyed) break;
        if (!res.write(`${JSON.stringify(itemJson(item))}\n`)) {
          await new Promise<void>((r) => {
            const done = () => {
              res.off('drain', done);
              res.off('close', done);
              r();
            };
            res.once('drain', done);
            res.once('close', done);
          });
        }
      }
      res.end();
    }),
  );
  return router;
}
