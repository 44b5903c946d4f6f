import type { Engine } from '../engine/engine.js';
import { notFound } from '../errors.js';
import type { EvalRun, Judge, ScoreRecord, Storage } from '../storage/types.js';
import type { RequestContext } from './context.js';
import { newId } from './ids.js';
import type { ModelHost } from './model-host.js';
import type { EvaluateRequest } from './evaluation-schema.js';
import { samplingParams, type SamplingFields } from './sampling.js';
import { scoreDeterministic, type Criterion, type CriterionScore } from './scoring/criteria.js';
import { JUDGE_REPLY_SCHEMA, judgeCriteria } from './scoring/judge.js';

export interface ScoringRequest {
  prompt: string;
  response: string;
  reference?: string | null;
  context?: string | null;
  finishReason?: 'stop' | 'length' | null;
  criteria: Criterion[];
  judge: Judge;
  /** Seed for the judge's generations (greedy anyway; kept for reproducibility). */
  seed?: number;
  signal?: AbortSignal;
}

/**
 * How the model judge generates: greedy, constrained to JUDGE_REPLY_SCHEMA
 * (the grammar ends the reply after its closing brace), with room for the
 * longest reply the schema allows (a 160-character rationale).
 */
const JUDGE_SAMPLING: SamplingFields = { max_new_tokens: 160, temperature: 0, top_p: 1, top_k: 0, repetition_penalty: 1, stop: [] };

/** Scores by measurements of the texts, or by the served model as a judge. */
export class Scorer {
  constructor(private readonly host: ModelHost) {}

  async score(req: ScoringRequest): Promise<CriterionScore[]> {
    if (req.judge === 'deterministic') return scoreDeterministic(req, req.criteria);
    const engine: Engine = this.host.require();
    // The reply's schema is compiled once per model and cached; each generation walks its own matcher.
    const compiled = await engine.compileConstraint({ type: 'json_schema', schema: JUDGE_REPLY_SCHEMA });
    const generate = async (prompt: string) => {
      const r = await engine.generate(prompt, samplingParams(JUDGE_SAMPLING, req.seed ?? 0), { signal: req.signal, constraint: await compiled.matcher() });
      return r.text;
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
