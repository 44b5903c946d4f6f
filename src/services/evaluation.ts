import { z } from 'zod';
import type { Engine } from '../engine/engine.js';
import { notFound } from '../errors.js';
import type { EvalRun, ScoreRecord, Storage } from '../storage/types.js';
import type { RequestContext } from './context.js';
import { newId } from './datasets/service.js';
import type { ModelHost } from './model-host.js';
import { CRITERIA, scoreDeterministic, type Criterion, type CriterionScore } from './scoring/criteria.js';
import { judgeCriteria } from './scoring/judge.js';

const text = (name: string) =>
  z
    .string({ error: (i) => (i.input === undefined ? `${name} is required` : `${name} must be a string`) })
    .max(200_000, { error: `${name} must be at most 200000 characters` })
    .refine((s) => s.trim().length > 0, { error: `${name} must be non-empty` });

export const CriteriaSchema = z
  .array(z.enum(CRITERIA as [Criterion, ...Criterion[]], { error: `criteria must be among ${CRITERIA.join(', ')}` }), {
    error: 'criteria must be an array',
  })
  .min(1, { error: 'criteria must name at least one criterion' })
  .transform((c) => [...new Set(c)]);

export const JudgeSchema = z.enum(['deterministic', 'model'], { error: 'judge must be "deterministic" or "model"' });

/** POST /v1/evaluate (contract section 3), both surfaces. */
export const EvaluateRequestSchema = z.object(
  {
    prompt: text('prompt'),
    response: text('response'),
    criteria: CriteriaSchema.default(['overall']),
    reference: z.string({ error: 'reference must be a string' }).max(200_000, { error: 'reference must be at most 200000 characters' }).nullish(),
    context: z.string({ error: 'context must be a string' }).max(200_000, { error: 'context must be at most 200000 characters' }).nullish(),
    judge: JudgeSchema.default('deterministic'),
  },
  { error: 'request body must be a JSON object' },
);
export type EvaluateRequest = z.infer<typeof EvaluateRequestSchema>;

export interface ScoringRequest {
  prompt: string;
  response: string;
  reference?: string | null;
  context?: string | null;
  finishReason?: 'stop' | 'length' | null;
  criteria: Criterion[];
  judge: 'deterministic' | 'model';
  /** Seed for the judge's generations (greedy anyway; kept for reproducibility). */
  seed?: number;
  signal?: AbortSignal;
}

/** Scores by measurements of the texts, or by the served model as a judge. */
export class Scorer {
  constructor(private readonly host: ModelHost) {}

  async score(req: ScoringRequest): Promise<CriterionScore[]> {
    if (req.judge === 'deterministic') return scoreDeterministic(req, req.criteria);
    const engine: Engine = this.host.require();
    const generate = async (prompt: string) => {
      const r = await engine.generate(
        prompt,
        { maxNewTokens: 96, temperature: 0, topP: 1, topK: 0, repetitionPenalty: 1, seed: req.seed ?? 0, stop: ['}'] },
        { signal: req.signal },
      );
      // The stop string ends the JSON object; put its brace back.
      return r.finishReason === 'stop' ? `${r.text}}` : r.text;
    };
    return judgeCriteria(generate, req.criteria, req);
  }
}

export const toScoreRecords = (scores: CriterionScore[]): ScoreRecord[] =>
  scores.map((s) => ({
    criterion: s.criterion,
    score: s.score,
    rationale: s.rationale,
    ...(s.evaluatorError ? { evaluatorError: s.evaluatorError } : {}),
  }));

/** Single evaluations, stored as runs that can be read back. */
export class EvaluationService {
  constructor(
    private readonly storage: Storage,
    private readonly scorer: Scorer,
    private readonly host: ModelHost,
  ) {}

  async evaluate(req: EvaluateRequest, ctx: RequestContext): Promise<EvalRun> {
    const started = performance.now();
    const scores = await this.scorer.score({ ...req, signal: ctx.signal });
    const run: EvalRun = {
      runId: newId('ev'),
      prompt: req.prompt,
      response: req.response,
      reference: req.reference ?? null,
      context: req.context ?? null,
      criteria: req.criteria,
      scores: toScoreRecords(scores),
      judge: req.judge,
      model: req.judge === 'model' ? this.host.modelName : 'deterministic-v1',
      latencyMs: Math.round(performance.now() - started),
      keyId: ctx.keyId,
      createdAt: new Date().toISOString(),
    };
    await this.storage.evalRuns.create(run);
    return run;
  }

  async get(runId: string): Promise<EvalRun> {
    const run = await this.storage.evalRuns.get(runId);
    if (!run) throw notFound(`evaluation run ${runId} not found`, { run_id: runId });
    return run;
  }
}
