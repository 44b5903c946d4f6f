import { randomInt } from 'node:crypto';
import type { Engine } from '../engine/engine.js';
import type { Log } from '../observability/log.js';
import { GenerationCancelledError } from '../engine/errors.js';
import { plainChatPrompt } from '../engine/tokenizer.js';
import type { GenerationResult } from '../engine/types.js';
import type { RequestContext } from './context.js';
import type { ModelHost } from './model-host.js';
import type { ChatRequest } from './chat-schema.js';
import type { CachedChat, ChatCache } from './chat-cache.js';
import { samplingParams } from './sampling.js';
import { toOutputConstraint } from './response-format-schema.js';
import type { CompiledConstraint } from '../engine/constraint-compiler.js';

export type ChatPhase = 'answer' | 'critique' | 'rewrite';

/** A piece of streamed text, and which part of a refine run produced it. */
export interface ChatToken {
  text: string;
  index: number;
  phase: ChatPhase;
}

/** The chat result of contract section 3, in camelCase; each surface shapes it. */
export interface ChatResult {
  response: string;
  latencyMs: number;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  model: string;
  requestId: string;
  finishReason: 'stop' | 'length';
  cacheHit: boolean;
  contextWindow: number;
  contextUsedPct: number;
  modelType: string;
  attentionMasking: string;
  attentionHeads: number;
  hiddenSize: number;
  estimatedAttentionOps: number;
  outputToInputRatio: number;
  refined: boolean;
  originalResponse: string | null;
  critique: string | null;
  refineStepsUsed: number;
  /**
   * The seed the sampler used (random when the request gave none), to
   * reproduce a sampled answer; null when nothing was sampled (greedy).
   */
  seed: number | null;
  timeToFirstTokenMs: number | null;
  interTokenLatencyMs: number | null;
  /** Tokens read and written by the critique and rewrite steps of refine mode. */
  refineUsage: { promptTokens: number; completionTokens: number } | null;
  /**
   * With a response_format other than text: its type, and whether the
   * answer is a complete document (false: max_new_tokens or a stop string
   * cut it first, so it may not parse). Null without one.
   */
  structured: StructuredOutcome | null;
}

/** How a constrained answer ended. */
export interface StructuredOutcome {
  type: 'json_object' | 'json_schema' | 'choice' | 'regex';
  complete: boolean;
}

const round4 = (x: number) => Math.round(x * 10_000) / 10_000;

function critiquePrompt(prompt: string, answer: string): string {
  return (
    `Request:\n${prompt}\n\nDraft answer:\n${answer}\n\n` +
    `Point out what is wrong, missing or unclear in the draft answer, briefly.\nCritique:`
  );
}

function rewritePrompt(prompt: string, answer: string, critique: string): string {
  return (
    `Request:\n${prompt}\n\nDraft answer:\n${answer}\n\nCritique:\n${critique}\n\n` +
    `Rewrite the draft answer so that it fixes every point of the critique.\nImproved answer:`
  );
}

/** Chat completions: single answers and self-refinement, over the shared engine. */
export class ChatService {
  constructor(
    private readonly host: ModelHost,
    private readonly log: Log,
    private readonly cache?: ChatCache | null,
  ) {}

  /**
   * Answers one chat request. `onToken` receives text as it is generated
   * (streaming); the returned result is the same either way.
   */
  async chat(req: ChatRequest, ctx: RequestContext, onToken?: (t: ChatToken) => void): Promise<ChatResult> {
    const engine = this.host.require();
    const started = performance.now();
    // Deterministic requests only (greedy or seeded). A stream always generates, token by token
    // (its client wants them as they come, and their timings); its answer is stored all the same.
    const cacheKey = this.cache?.keyFor(engine.info.name, req);
    if (this.cache && cacheKey && !onToken) {
      const hit = await this.cache.get(engine.info.name, cacheKey);
      if (hit) return this.fromCache(hit, ctx, started);
    }
    const seed = req.seed ?? randomInt(0, 2 ** 32 - 1);
    let index = 0;
    // A conversation is read through the model's chat template; refinement quotes it as a plain transcript.
    const conversation = req.messages ? engine.tokenizer.renderChat(req.messages) : undefined;
    const requestText = req.prompt ?? plainChatPrompt(req.messages ?? []);
    // The answer and its rewrites follow response_format; critiques are free text.
    const format = toOutputConstraint(req.response_format);
    const compiled: CompiledConstraint | undefined = format ? await engine.compileConstraint(format) : undefined;
    const run = async (prompt: string | number[], phase: ChatPhase, temperature: number, seedOffset: number) => {
      const r = await engine.generate(prompt, samplingParams({ ...req, temperature }, seed + seedOffset), {
        signal: ctx.signal,
        constraint: compiled && phase !== 'critique' ? await compiled.matcher() : undefined,
        onText: onToken ? (text) => onToken({ text, index: index++, phase }) : undefined,
      });
      if (r.finishReason === 'cancelled') {
        const usage = { promptTokens: r.promptTokens, completionTokens: r.completionTokens };
        this.log.info({ request_id: ctx.requestId, prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens }, 'generation cancelled: client went away');
        throw new GenerationCancelledError(usage);
      }
      return r;
    };

    const first = await run(conversation?.ids ?? requestText, 'answer', req.temperature, 0);
    let final: GenerationResult = first;
    let critique: string | null = null;
    let steps = 0;
    const refineUsage = { promptTokens: 0, completionTokens: 0 };
    if (req.mode === 'refine') {
      for (let step = 0; step < req.refine_steps; step++) {
        const cPrompt = critiquePrompt(requestText, final.text);
        const rDraft = final.text;
        if (!this.fits(engine, cPrompt)) break;
        const c = await run(cPrompt, 'critique', req.critique_temperature, 1 + 2 * step);
        const rPrompt = rewritePrompt(requestText, rDraft, c.text.trim());
        if (!this.fits(engine, rPrompt)) break;
        const r = await run(rPrompt, 'rewrite', req.temperature, 2 + 2 * step);
        refineUsage.promptTokens += c.promptTokens + r.promptTokens;
        refineUsage.completionTokens += c.completionTokens + r.completionTokens;
        critique = c.text.trim();
        final = r;
        steps++;
      }
    }
    const sampled = req.temperature > 0 || (steps > 0 && req.critique_temperature > 0);
    const result = this.result(engine, ctx, {
      started,
      seed: sampled ? seed : null,
      promptTokens: first.promptTokens,
      final,
      original: steps > 0 ? first.text : null,
      critique: steps > 0 ? critique : null,
      steps,
      refineUsage: req.mode === 'refine' ? refineUsage : null,
      ttft: first.timeToFirstTokenMs,
      structured: format ? { type: format.type, complete: final.constraintComplete === true } : null,
    });
    if (this.cache && cacheKey) await this.cache.set(engine.info.name, result, cacheKey);
    return result;
  }

  /** A cached answer with this request's id and latency. */
  private fromCache(hit: CachedChat, ctx: RequestContext, started: number): ChatResult {
    ctx.usage = { promptTokens: hit.promptTokens, completionTokens: hit.completionTokens, cacheHit: true };
    return {
      ...hit,
      requestId: ctx.requestId,
      latencyMs: Math.round(performance.now() - started),
      cacheHit: true,
      timeToFirstTokenMs: null,
      interTokenLatencyMs: null,
    };
  }

  /** Refinement stops early rather than failing when its own prompt outgrows the window. */
  private fits(engine: Engine, prompt: string): boolean {
    return engine.encode(prompt).length < engine.info.contextWindow - 1;
  }

  private result(
    engine: Engine,
    ctx: RequestContext,
    r: {
      started: number;
      seed: number | null;
      promptTokens: number;
      final: GenerationResult;
      original: string | null;
      critique: string | null;
      steps: number;
      refineUsage: ChatResult['refineUsage'];
      ttft: number | null;
      structured: StructuredOutcome | null;
    },
  ): ChatResult {
    const info = engine.info;
    const completion = r.final.completionTokens;
    const total = r.promptTokens + completion;
    ctx.usage = { promptTokens: r.promptTokens, completionTokens: completion, cacheHit: false };
    return {
      response: r.final.text,
      latencyMs: Math.round(performance.now() - r.started),
      promptTokens: r.promptTokens,
      completionTokens: completion,
      totalTokens: total,
      model: info.name,
      requestId: ctx.requestId,
      finishReason: r.final.finishReason === 'stop' ? 'stop' : 'length',
      cacheHit: false,
      contextWindow: info.contextWindow,
      contextUsedPct: round4((100 * total) / info.contextWindow),
      modelType: 'decoder-only',
      attentionMasking: 'causal',
      attentionHeads: info.attentionHeads,
      hiddenSize: info.hiddenSize,
      estimatedAttentionOps: total * total,
      outputToInputRatio: round4(completion / Math.max(r.promptTokens, 1)),
      refined: r.steps > 0,
      originalResponse: r.original,
      critique: r.critique,
      refineStepsUsed: r.steps,
      seed: r.seed,
      timeToFirstTokenMs: r.ttft === null ? null : Math.round(r.ttft * 100) / 100,
      interTokenLatencyMs: r.final.interTokenMs === null ? null : Math.round(r.final.interTokenMs * 1000) / 1000,
      refineUsage: r.refineUsage,
      structured: r.structured,
    };
  }
}
