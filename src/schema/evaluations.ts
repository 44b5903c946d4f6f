import type { BatchItem, BatchRun, EvalRun, ScoreRecord } from '../storage/types.js';
import type { BatchSummary, Distribution } from '../services/batch-evals.js';
import { EvaluateRequestSchema, StartBatchSchema } from '../services/evaluation-schema.js';
import { DEFAULT_CRITERION } from '../services/scoring/criteria.js';
import { builder } from './builder.js';
import { parseGraphQLInput, parsePageArgs } from './input.js';
import { JsonScalar } from './scalars.js';

const Criterion = builder.enumType('Criterion', {
  values: {
    ACCURACY: { value: 'accuracy' },
    CLARITY: { value: 'clarity' },
    REASONING: { value: 'reasoning' },
    FACTUALITY: { value: 'factuality' },
    OVERALL: { value: 'overall' },
  } as const,
});
const Judge = builder.enumType('Judge', {
  values: { DETERMINISTIC: { value: 'deterministic' }, MODEL: { value: 'model' } } as const,
});

const Score = builder.objectRef<ScoreRecord>('Score').implement({
  fields: (t) => ({
    criterion: t.exposeString('criterion'),
    score: t.exposeInt('score', { nullable: true, description: '1..5, null when it could not be scored' }),
    rationale: t.exposeString('rationale'),
    evaluatorError: t.string({ nullable: true, resolve: (s) => s.evaluatorError ?? null }),
  }),
});

const EvalRunRef = builder.objectRef<EvalRun>('EvalRun').implement({
  description: 'A stored single evaluation (REST: /v1/evaluate, /v1/evals/{run_id}).',
  fields: (t) => ({
    runId: t.exposeString('runId'),
    prompt: t.exposeString('prompt'),
    response: t.exposeString('response'),
    reference: t.exposeString('reference', { nullable: true }),
    context: t.exposeString('context', { nullable: true }),
    criteria: t.exposeStringList('criteria'),
    scores: t.field({ type: [Score], resolve: (r) => r.scores }),
    judge: t.exposeString('judge'),
    model: t.exposeString('model'),
    latencyMs: t.exposeInt('latencyMs'),
    createdAt: t.exposeString('createdAt'),
  }),
});

const EvaluateInput = builder.inputType('EvaluateInput', {
  fields: (t) => ({
    prompt: t.string({ required: true }),
    response: t.string({ required: true }),
    criteria: t.field({ type: [Criterion], description: 'default [OVERALL]' }),
    reference: t.string(),
    context: t.string(),
    judge: t.field({ type: Judge, description: 'default DETERMINISTIC' }),
  }),
});

builder.mutationField('evaluate', (t) =>
  t.field({
    type: EvalRunRef,
    args: { input: t.arg({ type: EvaluateInput, required: true }) },
    resolve: (_r, { input }, { ctx, services }) =>
      services.evaluations.evaluate(
        parseGraphQLInput(EvaluateRequestSchema, input),
        ctx,
      ),
  }),
);

builder.queryField('evalRun', (t) =>
  t.field({
    type: EvalRunRef,
    args: { runId: t.arg.string({ required: true }) },
    resolve: (_r, { runId }, { services }) => services.evaluations.get(runId),
  }),
);

const Progress = builder.objectRef<BatchRun>('BatchProgress').implement({
  fields: (t) => ({
    total: t.exposeInt('total'),
    completed: t.exposeInt('completed'),
    failed: t.exposeInt('failed'),
  }),
});

const Summary = builder.objectRef<BatchSummary>('BatchSummary').implement({
  fields: (t) => ({
    meanScores: t.field({ type: JsonScalar, description: '{criterion: mean}', resolve: (s) => s.meanScores }),
    totalItems: t.exposeInt('totalItems'),
    failedItems: t.exposeInt('failedItems'),
    passRate: t.exposeFloat('passRate', { nullable: true }),
    passRateCi95Lower: t.exposeFloat('passRateCi95Lower', { nullable: true }),
    passRateCi95Upper: t.exposeFloat('passRateCi95Upper', { nullable: true }),
    latencyP50Ms: t.exposeFloat('latencyP50Ms', { nullable: true }),
    latencyP95Ms: t.exposeFloat('latencyP95Ms', { nullable: true }),
    totalInputTokens: t.exposeInt('totalInputTokens'),
    totalOutputTokens: t.exposeInt('totalOutputTokens'),
  }),
});

const Bucket = builder.objectRef<{ score: string; count: number }>('ScoreBucket').implement({
  fields: (t) => ({ score: t.exposeString('score'), count: t.exposeInt('count') }),
});

const DistributionRef = builder.objectRef<Distribution>('ScoreDistribution').implement({
  fields: (t) => ({
    criterion: t.exposeString('criterion'),
    buckets: t.field({ type: [Bucket], resolve: (d) => Object.entries(d.buckets).map(([score, count]) => ({ score, count })) }),
    count: t.int({ resolve: (d) => d.summary.count }),
    mean: t.float({ nullable: true, resolve: (d) => d.summary.mean }),
    min: t.float({ nullable: true, resolve: (d) => d.summary.min }),
    max: t.float({ nullable: true, resolve: (d) => d.summary.max }),
    p50: t.float({ nullable: true, resolve: (d) => d.summary.p50 }),
  }),
});

const Item = builder.objectRef<BatchItem>('BatchItem').implement({
  fields: (t) => ({
    recordId: t.exposeString('recordId'),
    index: t.exposeInt('index'),
    status: t.exposeString('status'),
    passed: t.exposeBoolean('passed', { nullable: true }),
    reason: t.exposeString('reason', { nullable: true }),
    message: t.exposeString('message', { nullable: true }),
    response: t.exposeString('response', { nullable: true }),
    scores: t.field({ type: [Score], resolve: (i) => i.scores }),
    latencyMs: t.exposeInt('latencyMs', { nullable: true }),
    attempts: t.exposeInt('attempts'),
  }),
});

const FailurePage = builder
  .objectRef<{ items: BatchItem[]; nextCursor: string | null; count: number }>('BatchFailurePage')
  .implement({
    fields: (t) => ({
      count: t.exposeInt('count'),
      nodes: t.field({ type: [Item], resolve: (p) => p.items }),
      endCursor: t.exposeString('nextCursor', { nullable: true }),
      hasNextPage: t.boolean({ resolve: (p) => p.nextCursor !== null }),
    }),
  });

const BatchEval = builder.objectRef<BatchRun>('BatchEval').implement({
  description: 'A batch evaluation over an eval_set dataset (REST: /v1/batch-evals).',
  fields: (t) => ({
    batchEvalId: t.exposeString('id'),
    datasetId: t.exposeString('datasetId'),
    status: t.exposeString('status'),
    progress: t.field({ type: Progress, resolve: (b) => b }),
    criteria: t.exposeStringList('criteria'),
    params: t.field({ type: JsonScalar, resolve: (b) => b.params }),
    error: t.exposeString('error', { nullable: true }),
    createdAt: t.exposeString('createdAt'),
    startedAt: t.exposeString('startedAt', { nullable: true }),
    updatedAt: t.exposeString('updatedAt'),
    completedAt: t.exposeString('completedAt', { nullable: true }),
    result: t.field({
      type: Summary,
      resolve: async (b, _a, { services }) => (await services.batchEvals.summary(b.id)).summary,
    }),
    distribution: t.field({
      type: DistributionRef,
      args: { criterion: t.arg({ type: Criterion, defaultValue: DEFAULT_CRITERION }) },
      resolve: (b, { criterion }, { services }) => services.batchEvals.distribution(b.id, criterion ?? undefined),
    }),
    failures: t.field({
      type: FailurePage,
      args: { first: t.arg.int({ description: '1..100, default 20' }), after: t.arg.string() },
      resolve: (b, args, { services }) => services.batchEvals.failures(b.id, parsePageArgs(args)),
    }),
  }),
});

const StartBatchEvalInput = builder.inputType('StartBatchEvalInput', {
  fields: (t) => ({
    datasetId: t.string({ required: true }),
    criteria: t.field({ type: [Criterion] }),
    model: t.string(),
    concurrency: t.int({ description: '1..16, default 4' }),
    maxNewTokens: t.int({ description: '1..1024, default 160' }),
    temperature: t.float({ description: '0..2, default 0' }),
    seed: t.float({ description: 'integer, default 0' }),
    judge: t.field({ type: Judge }),
  }),
});

builder.mutationField('startBatchEval', (t) =>
  t.field({
    type: BatchEval,
    args: { input: t.arg({ type: StartBatchEvalInput, required: true }) },
    resolve: (_r, { input }, { ctx, services }) =>
      services.batchEvals.start(
        parseGraphQLInput(StartBatchSchema, input),
        ctx,
      ),
  }),
);

builder.queryField('batchEval', (t) =>
  t.field({
    type: BatchEval,
    args: { id: t.arg.string({ required: true }) },
    resolve: (_r, { id }, { services }) => services.batchEvals.get(id),
  }),
);

builder.mutationField('cancelBatchEval', (t) =>
  t.field({
    type: BatchEval,
    args: { id: t.arg.string({ required: true }) },
    resolve: (_r, { id }, { services }) => services.batchEvals.cancel(id),
  }),
);
