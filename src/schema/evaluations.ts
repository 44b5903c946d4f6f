import { BATCH_STATUSES, FAILURE_REASONS, ITEM_STATUSES, JUDGES, type BatchItem, type BatchRun, type EvalRun, type ScoreRecord } from '../storage/types.js';
import { itemCursor, itemPosition } from '../storage/cursor.js';
import { batchRunCursor, batchRunPosition, type BatchSummary, type Distribution } from '../services/batch-evals.js';
import { BatchListSchema, EvaluateRequestSchema, FailuresQuerySchema, StartBatchSchema } from '../services/evaluation-schema.js';
import { CRITERIA, DEFAULT_CRITERION, OVERALL_WEIGHTS, SCORE_MAX, SCORE_MIN, type Criterion as CriterionValue } from '../services/scoring/criteria.js';
import { builder } from './builder.js';
import { fieldDocs } from './describe.js';
import { enumFrom } from './enums.js';
import { parseGraphQLInput, parsePageArgs } from './input.js';
import { connectionFrom, pageArgs, type Connection } from './paging.js';
import { JsonScalar } from './scalars.js';

const Criterion = enumFrom('Criterion', CRITERIA, {
  description: `What a score measures, on the scale ${SCORE_MIN} (worst) to ${SCORE_MAX} (best); docs/evaluation.md gives each rule.`,
  values: {
    accuracy: 'Agreement with the reference answer (unscored without one).',
    clarity: 'Measurable properties of the text: degenerate output, repetition, sentence length, an unfinished end.',
    reasoning: 'Visible structure of an explanation (steps, connectives), not its truth.',
    factuality: 'Support of the content words in the evidence: the reference or the context (unscored without either).',
    overall: `The weighted mean of the scored components (${Object.entries(OVERALL_WEIGHTS).map(([c, w]) => `${c} ${w}`).join(', ')}).`,
  },
});

const Judge = enumFrom('Judge', JUDGES, {
  description: 'Who scores an answer.',
  values: {
    deterministic: 'Measurements of the texts (docs/evaluation.md): the same texts always score the same.',
    model: 'The served model, asked for a score and a rationale as JSON.',
  },
});

/** Stored scores and runs name criteria from CRITERIA: every request's criteria are validated against it. */
const criterion = (c: string) => c as CriterionValue;

const Score = builder.objectRef<ScoreRecord>('Score').implement({
  description: 'One criterion scored.',
  fields: (t) => ({
    criterion: t.field({ type: Criterion, description: 'What was scored.', resolve: (s) => criterion(s.criterion) }),
    score: t.exposeInt('score', { nullable: true, description: `${SCORE_MIN} (worst) to ${SCORE_MAX} (best); null when it could not be scored (see evaluatorError).` }),
    rationale: t.exposeString('rationale', { description: 'The measured numbers and the step that gave the score.' }),
    evaluatorError: t.string({
      nullable: true,
      description: 'Why the criterion is unscored (no_reference, parse_error, …: docs/evaluation.md lists them); null when scored.',
      resolve: (s) => s.evaluatorError ?? null,
    }),
  }),
});

const EvalRunRef = builder.objectRef<EvalRun>('EvalRun').implement({
  description: 'A stored single evaluation (REST: /v1/evaluate, /v1/evals/{run_id}).',
  fields: (t) => ({
    runId: t.exposeString('runId', { description: 'The run id.' }),
    prompt: t.exposeString('prompt', { description: 'The prompt the response answers.' }),
    response: t.exposeString('response', { description: 'The response evaluated.' }),
    reference: t.exposeString('reference', { nullable: true, description: 'The expected answer, if given.' }),
    context: t.exposeString('context', { nullable: true, description: 'Evidence for factuality, if given.' }),
    criteria: t.field({ type: [Criterion], description: 'The criteria asked for.', resolve: (r) => r.criteria.map(criterion) }),
    scores: t.field({ type: [Score], description: 'One score per criterion, in the order asked.', resolve: (r) => r.scores }),
    judge: t.field({ type: Judge, description: 'Who scored.', resolve: (r) => r.judge as (typeof JUDGES)[number] }),
    model: t.exposeString('model', { description: 'The served model when the run was made.' }),
    latencyMs: t.exposeInt('latencyMs', { description: 'Milliseconds the evaluation took.' }),
    createdAt: t.exposeString('createdAt', { description: 'When it was made (ISO-8601, UTC).' }),
  }),
});

const evaluateDocs = fieldDocs(EvaluateRequestSchema);

const EvaluateInput = builder.inputType('EvaluateInput', {
  description: 'A response to score (REST: POST /v1/evaluate).',
  fields: (t) => ({
    prompt: t.string({ required: true, description: evaluateDocs('prompt', 'The prompt the response answers; not blank') }),
    response: t.string({ required: true, description: evaluateDocs('response', 'The response to score; not blank') }),
    criteria: t.field({ type: [Criterion], description: evaluateDocs('criteria', 'What to score') }),
    reference: t.string({ description: evaluateDocs('reference', 'The expected answer (accuracy needs it)') }),
    context: t.string({ description: evaluateDocs('context', 'Evidence for factuality besides the reference') }),
    judge: t.field({ type: Judge, description: evaluateDocs('judge', 'Who scores') }),
  }),
});

builder.mutationField('evaluate', (t) =>
  t.field({
    type: EvalRunRef,
    description: 'Scores a response and stores the run.',
    args: { input: t.arg({ type: EvaluateInput, required: true, description: 'What to score.' }) },
    resolve: (_r, { input }, { ctx, services }) => services.evaluations.evaluate(parseGraphQLInput(EvaluateRequestSchema, input), ctx),
  }),
);

builder.queryField('evalRun', (t) =>
  t.field({
    type: EvalRunRef,
    description: 'A stored evaluation; not_found if there is none (REST: GET /v1/evals/{run_id}).',
    args: { runId: t.arg.string({ required: true, description: 'The run id.' }) },
    resolve: (_r, { runId }, { services }) => services.evaluations.get(runId),
  }),
);

const BatchStatus = enumFrom('BatchStatus', BATCH_STATUSES, {
  description: 'Where a batch evaluation is.',
  values: {
    queued: 'Waiting to start.',
    running: 'Records are being answered and scored.',
    completed: 'Every record was answered and scored.',
    completed_with_failures: 'Done, but some records could not be answered (progress.failed).',
    failed: 'Ended without results: an error stopped it, or no record could be answered (`error` says which).',
    cancelled: 'Cancelled before it finished.',
  },
});

const BatchItemStatus = enumFrom('BatchItemStatus', ITEM_STATUSES, {
  description: 'Whether a record was answered.',
  values: {
    succeeded: 'Answered and scored (it may still not pass: see passed and reason).',
    failed: 'Not answered (see reason).',
  },
});

const FailureReason = enumFrom('FailureReason', FAILURE_REASONS, {
  description: 'Why a record did not pass.',
  values: {
    generation_error: 'The model failed to answer after every attempt.',
    context_overflow: "The prompt does not fit the model's context window.",
    latency_exceeded: 'Answered, but slower than the record’s expected.max_latency_ms.',
    unscored: 'A required criterion could not be scored (no reference, a judge parse error).',
    below_threshold: 'A required criterion scored below the pass threshold.',
  },
});

const Progress = builder.objectRef<BatchRun>('BatchProgress').implement({
  description: 'How far a batch evaluation is.',
  fields: (t) => ({
    total: t.exposeInt('total', { description: 'Records in the dataset.' }),
    completed: t.exposeInt('completed', { description: 'Records answered and scored.' }),
    failed: t.exposeInt('failed', { description: 'Records that could not be answered.' }),
  }),
});

const Summary = builder.objectRef<BatchSummary>('BatchSummary').implement({
  description: "A batch evaluation's results so far (REST: GET /v1/batch-evals/{id}/result); docs/evaluation.md defines each figure.",
  fields: (t) => ({
    meanScores: t.field({ type: JsonScalar, description: '{criterion: mean of its scored values}, null where none is scored.', resolve: (s) => s.meanScores }),
    totalItems: t.exposeInt('totalItems', { description: 'Records done.' }),
    failedItems: t.exposeInt('failedItems', { description: 'Records that could not be answered.' }),
    passRate: t.exposeFloat('passRate', { nullable: true, description: 'Share of records that pass; null with none done.' }),
    passRateCi95Lower: t.exposeFloat('passRateCi95Lower', { nullable: true, description: "Lower end of the pass rate's 95% Wilson interval." }),
    passRateCi95Upper: t.exposeFloat('passRateCi95Upper', { nullable: true, description: "Upper end of the pass rate's 95% Wilson interval." }),
    latencyP50Ms: t.exposeFloat('latencyP50Ms', { nullable: true, description: 'Median answer latency (nearest rank), in milliseconds.' }),
    latencyP95Ms: t.exposeFloat('latencyP95Ms', { nullable: true, description: '95th-percentile answer latency (nearest rank), in milliseconds.' }),
    totalInputTokens: t.exposeInt('totalInputTokens', { description: 'Prompt tokens read, all records together.' }),
    totalOutputTokens: t.exposeInt('totalOutputTokens', { description: 'Tokens generated, all records together.' }),
  }),
});

const Bucket = builder.objectRef<{ score: string; count: number }>('ScoreBucket').implement({
  description: 'How many records got one score.',
  fields: (t) => ({
    score: t.exposeString('score', { description: `The score, ${SCORE_MIN}..${SCORE_MAX}.` }),
    count: t.exposeInt('count', { description: 'Records with that score.' }),
  }),
});

const DistributionRef = builder.objectRef<Distribution>('ScoreDistribution').implement({
  description: "One criterion's scores over a batch (REST: GET /v1/batch-evals/{id}/distribution); unscored records are left out.",
  fields: (t) => ({
    criterion: t.field({ type: Criterion, description: 'The criterion.', resolve: (d) => criterion(d.criterion) }),
    buckets: t.field({
      type: [Bucket],
      description: `Counts per score, ${SCORE_MIN} to ${SCORE_MAX} (0 when none); they sum to count.`,
      resolve: (d) => Object.entries(d.buckets).map(([score, count]) => ({ score, count })),
    }),
    count: t.int({ description: 'Scored records.', resolve: (d) => d.summary.count }),
    mean: t.float({ nullable: true, description: 'Mean score; null when none is scored.', resolve: (d) => d.summary.mean }),
    min: t.float({ nullable: true, description: 'Lowest score.', resolve: (d) => d.summary.min }),
    max: t.float({ nullable: true, description: 'Highest score.', resolve: (d) => d.summary.max }),
    p50: t.float({ nullable: true, description: 'Median score (nearest rank).', resolve: (d) => d.summary.p50 }),
  }),
});

const Item = builder.objectRef<BatchItem>('BatchItem').implement({
  description: "One record's result in a batch evaluation.",
  fields: (t) => ({
    recordId: t.exposeString('recordId', { description: "The record's record_id." }),
    index: t.exposeInt('index', { description: "The record's position in the dataset (0-based)." }),
    status: t.field({ type: BatchItemStatus, description: 'Whether it was answered.', resolve: (i) => i.status }),
    passed: t.exposeBoolean('passed', { nullable: true, description: 'Whether it passes the pass rule (false when not answered).' }),
    reason: t.field({ type: FailureReason, nullable: true, description: 'Why it did not pass; null when it passed.', resolve: (i) => i.reason }),
    message: t.exposeString('message', { nullable: true, description: 'The failure, in words.' }),
    response: t.exposeString('response', { nullable: true, description: "The model's answer; null when there is none." }),
    scores: t.field({ type: [Score], description: 'The run’s criteria, scored.', resolve: (i) => i.scores }),
    latencyMs: t.exposeInt('latencyMs', { nullable: true, description: 'Milliseconds the answer took.' }),
    promptTokens: t.exposeInt('promptTokens', { nullable: true, description: 'Prompt tokens read; null when not answered.' }),
    completionTokens: t.exposeInt('completionTokens', { nullable: true, description: 'Tokens generated; null when not answered.' }),
    attempts: t.exposeInt('attempts', { description: 'Generation attempts made (transient failures are retried).' }),
  }),
});

/** A page of failures: the connection, plus the total and the page's own next cursor. */
type FailureConnection = Connection<BatchItem> & { count: number; nextCursor: string | null };

const BatchFailureConnection = builder.connectionObject<typeof Item, FailureConnection>(
  {
    type: Item,
    name: 'BatchFailureConnection',
    description: 'A page of the records that did not pass, in record order.',
    fields: (t) => ({
      count: t.exposeInt('count', { description: 'Records that did not pass, on every page.' }),
      // The flat fields of this list before it became a connection; pageInfo holds them now.
      endCursor: t.exposeString('nextCursor', {
        nullable: true,
        description: 'The cursor of the next page; null on the last page.',
        deprecationReason: 'Use pageInfo { endCursor hasNextPage }.',
      }),
      hasNextPage: t.boolean({
        description: 'Whether more records follow this page.',
        deprecationReason: 'Use pageInfo { hasNextPage }.',
        resolve: (p) => p.pageInfo.hasNextPage,
      }),
    }),
  },
  { name: 'BatchFailureEdge', description: 'A record that did not pass.' },
);

const BatchEval = builder.objectRef<BatchRun>('BatchEval').implement({
  description: 'A batch evaluation over an eval_set dataset (REST: /v1/batch-evals).',
  fields: (t) => ({
    batchEvalId: t.exposeString('id', { description: 'The batch evaluation id (`be_…`).' }),
    datasetId: t.exposeString('datasetId', { description: 'The eval_set it runs over.' }),
    status: t.field({ type: BatchStatus, description: 'Where it is.', resolve: (b) => b.status }),
    progress: t.field({ type: Progress, description: 'Records done so far.', resolve: (b) => b }),
    criteria: t.field({ type: [Criterion], description: 'The criteria every record is scored on.', resolve: (b) => b.criteria.map(criterion) }),
    params: t.field({
      type: JsonScalar,
      description: 'Its parameters, fully defaulted when it started: model, concurrency, max_new_tokens, temperature, seed, judge.',
      resolve: (b) => b.params,
    }),
    error: t.exposeString('error', { nullable: true, description: 'Why it failed; null unless status is FAILED.' }),
    createdAt: t.exposeString('createdAt', { description: 'When it was started (ISO-8601, UTC).' }),
    startedAt: t.exposeString('startedAt', { nullable: true, description: 'When its first record began; null while queued.' }),
    updatedAt: t.exposeString('updatedAt', { description: 'When it last changed.' }),
    completedAt: t.exposeString('completedAt', { nullable: true, description: 'When it ended; null until then.' }),
    result: t.field({
      type: Summary,
      description: 'Its results so far (REST: /result).',
      resolve: async (b, _a, { services }) => (await services.batchEvals.summary(b.id)).summary,
    }),
    distribution: t.field({
      type: DistributionRef,
      description: "One criterion's scores (REST: /distribution).",
      args: { criterion: t.arg({ type: Criterion, defaultValue: DEFAULT_CRITERION, description: "One of the run's criteria." }) },
      resolve: (b, { criterion }, { services }) => services.batchEvals.distribution(b.id, criterion ?? undefined),
    }),
    failures: t.field({
      type: BatchFailureConnection,
      description: 'The records that did not pass, a page at a time (REST: /failures).',
      args: pageArgs(t.arg),
      resolve: async (b, args, { services }): Promise<FailureConnection> => {
        const page = await services.batchEvals.failures(b.id, parsePageArgs(FailuresQuerySchema, args));
        return { ...connectionFrom(page, itemCursor, itemPosition), count: page.count, nextCursor: page.nextCursor };
      },
    }),
  }),
});

const startDocs = fieldDocs(StartBatchSchema);

const StartBatchEvalInput = builder.inputType('StartBatchEvalInput', {
  description: 'A batch evaluation to start (REST: POST /v1/batch-evals).',
  fields: (t) => ({
    datasetId: t.string({ required: true, description: startDocs('dataset_id', 'The eval_set dataset to run over') }),
    criteria: t.field({ type: [Criterion], description: startDocs('criteria', 'What to score every record on') }),
    model: t.string({ description: startDocs('model', 'The model to answer with; must be the served one (the default)') }),
    concurrency: t.int({ description: startDocs('concurrency', 'Records in flight at once') }),
    maxNewTokens: t.int({ description: startDocs('max_new_tokens', 'Tokens to generate at most per record') }),
    temperature: t.float({ description: startDocs('temperature', 'Sampling temperature; 0 is greedy') }),
    seed: t.float({ description: startDocs('seed', 'A whole number; record i is generated with seed + i') }),
    judge: t.field({ type: Judge, description: startDocs('judge', 'Who scores') }),
  }),
});

builder.mutationField('startBatchEval', (t) =>
  t.field({
    type: BatchEval,
    description: 'Starts a batch evaluation; it runs in the background (status QUEUED, then RUNNING).',
    args: { input: t.arg({ type: StartBatchEvalInput, required: true, description: 'What to run.' }) },
    resolve: (_r, { input }, { ctx, services }) => services.batchEvals.start(parseGraphQLInput(StartBatchSchema, input), ctx),
  }),
);

builder.queryField('batchEval', (t) =>
  t.field({
    type: BatchEval,
    description: 'A batch evaluation; not_found if there is none (REST: GET /v1/batch-evals/{id}).',
    args: { id: t.arg.string({ required: true, description: 'The batch evaluation id.' }) },
    resolve: (_r, { id }, { services }) => services.batchEvals.get(id),
  }),
);

const BatchEvalConnection = builder.connectionObject(
  {
    type: BatchEval,
    name: 'BatchEvalConnection',
    description: 'A page of batch evaluations, newest first.',
  },
  { name: 'BatchEvalEdge', description: 'A batch evaluation in a page of them.' },
);

builder.queryField('batchEvals', (t) =>
  t.field({
    type: BatchEvalConnection,
    description: 'Batch evaluations, newest first, a page at a time.',
    args: {
      status: t.arg({ type: BatchStatus, description: 'Only runs in this status.' }),
      datasetId: t.arg.string({ description: 'Only runs over this dataset.' }),
      ...pageArgs(t.arg),
    },
    resolve: async (_r, { datasetId, ...args }, { services }) =>
      connectionFrom(
        await services.batchEvals.list(parsePageArgs(BatchListSchema, { ...args, dataset_id: datasetId })),
        batchRunCursor,
        batchRunPosition,
      ),
  }),
);

builder.mutationField('cancelBatchEval', (t) =>
  t.field({
    type: BatchEval,
    description: 'Cancels a queued or running batch evaluation; conflict once it has ended.',
    args: { id: t.arg.string({ required: true, description: 'The batch evaluation id.' }) },
    resolve: (_r, { id }, { services }) => services.batchEvals.cancel(id),
  }),
);

builder.subscriptionField('batchEvalProgress', (t) =>
  t.field({
    type: BatchEval,
    description:
      "A batch evaluation's progress: the run now, then each change (records stored, status), until it ends; on any replica, whichever process does the work.",
    args: { id: t.arg.id({ required: true, description: 'The batch evaluation id (`be_…`).' }) },
    subscribe: (_r, { id }, { ctx, services }) => services.batchEvals.watch(String(id), ctx.signal),
    resolve: (run) => run,
  }),
);
