import { randomInt } from 'node:crypto';
import { GenerationCancelledError } from '../engine/errors.js';
import type { ChatMessage, GenerateOptions, GenerationResult, SamplingParams, TokenLogprob, TokenStep } from '../engine/types.js';
import type { OutputConstraint } from '../engine/response-format.js';
import type { Log } from '../observability/log.js';
import type { ChatCache } from './chat-cache.js';
import { requestKey } from './chat-cache.js';
import type { RequestContext } from './context.js';
import type { ModelHost } from './model-host.js';
import { samplingParams, type SamplingFields } from './sampling.js';

/**
 * Completions as OpenAI-style clients ask for them: one or more prompts (a
 * conversation rendered by the model's chat template, or raw text), each
 * answered `n` times. Every choice is its own generation with its own seed,
 * submitted together so the scheduler batches them. The OpenAI surface
 * translates its requests into this one and back.
 */

/** Sampling beyond the contract's fields: what OpenAI and vLLM clients send. */
export interface ExtraSampling {
  presence_penalty: number;
  frequency_penalty: number;
  /** Token id → bias, -100..100. */
  logit_bias: Record<string, number>;
  min_p: number;
  min_tokens: number;
  ignore_eos: boolean;
}

export type CompletionInput = { kind: 'chat'; messages: ChatMessage[] } | { kind: 'text'; prompts: string[]; echo: boolean };

export interface CompletionRequest {
  input: CompletionInput;
  /** Answers per prompt, 1..8. */
  n: number;
  sampling: SamplingFields & ExtraSampling;
  /** The first choice's seed; choice i uses seed + i. Random when absent. */
  seed?: number;
  /** Alternatives reported per token (0..20); undefined: no log-probabilities. */
  logprobs?: number;
  /** Structured output: every choice is constrained to this (each with its own matcher). */
  format?: OutputConstraint;
}

/** A token's log-probability with the token texts, as clients show them. */
export interface NamedLogprob extends TokenLogprob {
  token: string;
  top: Array<{ id: number; logprob: number; token: string }>;
}

export interface CompletionChoice {
  /** Position among all choices: prompt p's choice i is p * n + i. */
  index: number;
  text: string;
  finishReason: 'stop' | 'length';
  logprobs: NamedLogprob[] | null;
  /** With a format: whether the text is a complete document (false: cut by max_tokens or a stop string); null without one. */
  complete: boolean | null;
}

export interface CompletionResult {
  choices: CompletionChoice[];
  /** Prompt tokens count each prompt once, however many choices it has (as OpenAI counts). */
  usage: { promptTokens: number; completionTokens: number; totalTokens: number };
  model: string;
  /** The seed of the first choice (null when nothing was sampled). */
  seed: number | null;
  cacheHit: boolean;
  /** Submission to first token over all choices, in ms (null on a cache hit). */
  timeToFirstTokenMs: number | null;
}

/**
 * A streamed event of one choice: text as it becomes final with the token
 * it came with (its log-probability when asked), or the choice's end.
 */
export type CompletionEvent =
  | { index: number; text: string; logprob: NamedLogprob | null; finishReason: null }
  | { index: number; text: ''; logprob: null; finishReason: 'stop' | 'length' };

type CachedCompletion = Omit<CompletionResult, 'cacheHit' | 'timeToFirstTokenMs'>;

export class CompletionService {
  constructor(
    private readonly host: ModelHost,
    private readonly log: Log,
    private readonly cache?: ChatCache | null,
  ) {}

  /**
   * Answers a completion request. `onEvent` receives every generated token
   * of every choice as it is sampled, and each choice's end (streaming); the
   * result is the same either way. A client going away (ctx.signal) cancels
   * every choice.
   */
  async complete(req: CompletionRequest, ctx: RequestContext, onEvent?: (e: CompletionEvent) => void): Promise<CompletionResult> {
    const engine = this.host.require();
    const model = engine.info.name;
    const sampled = req.sampling.temperature > 0;
    // Deterministic answers (greedy or seeded) are cached; a stream always generates, and is stored.
    const key = this.cache && (!sampled || req.seed !== undefined) ? requestKey(model, { completion: req }) : undefined;
    if (this.cache && key && !onEvent) {
      const hit = await this.cache.lookup<CachedCompletion>('completion', model, key);
      if (hit) {
        ctx.usage = { promptTokens: hit.usage.promptTokens, completionTokens: hit.usage.completionTokens, cacheHit: true };
        return { ...hit, cacheHit: true, timeToFirstTokenMs: null };
      }
    }
    const seed = req.seed ?? randomInt(0, 2 ** 32 - 1);
    const prompts: Array<{ ids: number[] | string; echo: string }> =
      req.input.kind === 'chat'
        ? [{ ids: engine.tokenizer.renderChat(req.input.messages).ids, echo: '' }]
        : req.input.prompts.map((p) => ({ ids: p, echo: (req.input as { echo: boolean }).echo ? p : '' }));
    // Compiled once (and cached across requests); each choice walks its own matcher.
    const compiled = req.format ? await engine.compileConstraint(req.format) : undefined;
    const bias = new Map(Object.entries(req.sampling.logit_bias).map(([id, b]) => [Number(id), b]));
    const base = samplingParams(req.sampling, seed);
    const params = (i: number): SamplingParams => ({
      ...base,
      seed: (seed + i) >>> 0,
      presencePenalty: req.sampling.presence_penalty,
      frequencyPenalty: req.sampling.frequency_penalty,
      logitBias: bias.size > 0 ? bias : undefined,
      minP: req.sampling.min_p,
      minTokens: req.sampling.min_tokens,
      ignoreEos: req.sampling.ignore_eos,
      logprobs: req.logprobs,
    });
    // Every choice at once: one more row each in the running batch.
    const controller = new AbortController();
    const abort = () => controller.abort();
    ctx.signal.addEventListener('abort', abort, { once: true });
    const named = (lp: TokenLogprob): NamedLogprob => ({
      ...lp,
      token: engine.tokenizer.decode([lp.id]),
      top: lp.top.map((t) => ({ ...t, token: engine.tokenizer.decode([t.id]) })),
    });
    const runs: Array<Promise<GenerationResult>> = [];
    prompts.forEach((p, pi) => {
      for (let i = 0; i < req.n; i++) {
        const index = pi * req.n + i;
        // Text is released by onText (the last of it when the generation ends); each token goes out with what it released.
        let pending = p.echo;
        const generate = async (opts: GenerateOptions) =>
          engine.generate(p.ids, params(index), { ...opts, constraint: compiled ? await compiled.matcher() : undefined });
        const run = generate({
          signal: controller.signal,
          onText: onEvent ? (piece) => void (pending += piece) : undefined,
          onToken: onEvent
            ? (step: TokenStep) => {
                onEvent({ index, text: pending, logprob: step.logprob ? named(step.logprob) : null, finishReason: null });
                pending = '';
              }
            : undefined,
        });
        if (onEvent) {
          void run.then((r) => {
            if (r.finishReason === 'cancelled') return;
            if (pending) onEvent({ index, text: pending, logprob: null, finishReason: null });
            onEvent({ index, text: '', logprob: null, finishReason: r.finishReason });
          }, () => undefined);
        }
        runs.push(run);
      }
    });
    let results: GenerationResult[];
    try {
      results = await Promise.all(runs);
    } catch (err) {
      // One choice failing fails the request: stop the others.
      controller.abort();
      await Promise.allSettled(runs);
      throw err;
    } finally {
      ctx.signal.removeEventListener('abort', abort);
    }
    if (results.some((r) => r.finishReason === 'cancelled')) {
      const usage = { promptTokens: sum(results.map((r) => r.promptTokens)), completionTokens: sum(results.map((r) => r.completionTokens)) };
      this.log.info({ request_id: ctx.requestId, prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens }, 'generation cancelled: client went away');
      throw new GenerationCancelledError(usage);
    }
    const choices: CompletionChoice[] = results.map((r, index) => ({
      index,
      text: prompts[Math.floor(index / req.n)]!.echo + r.text,
      finishReason: r.finishReason === 'stop' ? 'stop' : 'length',
      logprobs: r.logprobs?.map(named) ?? null,
      complete: r.constraintComplete ?? null,
    }));
    const promptTokens = sum(results.filter((_, i) => i % req.n === 0).map((r) => r.promptTokens));
    const completionTokens = sum(results.map((r) => r.completionTokens));
    ctx.usage = { promptTokens, completionTokens, cacheHit: false };
    const firsts = results.map((r) => r.timeToFirstTokenMs).filter((t): t is number => t !== null);
    const result: CompletionResult = {
      choices,
      usage: { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens },
      model,
      seed: sampled ? seed : null,
      cacheHit: false,
      timeToFirstTokenMs: firsts.length > 0 ? Math.round(Math.min(...firsts) * 100) / 100 : null,
    };
    if (this.cache && key) {
      const { cacheHit: _c, timeToFirstTokenMs: _t, ...entry } = result;
      await this.cache.save('completion', model, key, entry);
    }
    return result;
  }
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
