import { randomInt } from 'node:crypto';
import { GenerationCancelledError } from '../../engine/errors.js';
import type { Log } from '../../observability/log.js';
import type { RagIndex } from '../../storage/types.js';
import type { RequestContext } from '../context.js';
import type { ModelHost } from '../model-host.js';
import type { RagQueryRequest } from '../rag-schema.js';
import { samplingParams } from '../sampling.js';
import { fitAnswerPrompt } from './answer-prompt.js';
import type { RetrievedChunk } from './retrieval.js';
import { requireReady, type RagService } from './service.js';

/** A chunk the answer's prompt held, numbered as the prompt numbers it. */
export interface RagCitation extends RetrievedChunk {
  /** Its number in the prompt ([1] is the best ranked). */
  number: number;
  /** Whether the answer cites it by its number. */
  cited: boolean;
}

export interface RagAnswer {
  answer: string;
  /** The chunks the prompt held, best first (a prefix of the retrieved ones). */
  citations: RagCitation[];
  index: RagIndex;
  retrieval: {
    mode: RagQueryRequest['mode'];
    topK: number;
    /** Chunks retrieval returned (at most topK). */
    retrieved: number;
    /** Of those, how many fitted the context window with the question and the answer's tokens. */
    used: number;
    latencyMs: number;
    embeddingMs: number;
  };
  generation: {
    model: string;
    latencyMs: number;
    promptTokens: number;
    completionTokens: number;
    finishReason: 'stop' | 'length';
    timeToFirstTokenMs: number | null;
    /** The sampler's seed; null when nothing was sampled (greedy). */
    seed: number | null;
  };
  latencyMs: number;
}

/** Bare numbers cited in an answer: `[2]`, `[1][3]`, `[1, 3]`. */
export function citedNumbers(answer: string): Set<number> {
  const out = new Set<number>();
  for (const m of answer.matchAll(/\[(\d+(?:\s*,\s*\d+)*)\]/g)) {
    for (const n of m[1]!.split(',')) out.add(Number(n.trim()));
  }
  return out;
}

/**
 * Retrieval-augmented answers (POST /v1/rag, GraphQL rag and ragStream):
 * the ranked chunks of a ready index, as many as fit the model's context
 * window with the question and max_new_tokens, numbered in a documented
 * prompt (answer-prompt.ts) that asks the served model to cite them; the
 * answer generated on the shared engine, with its citations.
 */
export class RagAnswerService {
  constructor(
    private readonly rag: RagService,
    private readonly host: ModelHost,
    private readonly log: Log,
  ) {}

  async answer(req: RagQueryRequest, ctx: RequestContext, onText?: (text: string) => void): Promise<RagAnswer> {
    const started = performance.now();
    const index = requireReady(await this.rag.resolveIndex(req));
    // Fail before retrieving when the model cannot answer anyway.
    const engine = this.host.require();
    const retrieval = await this.rag.retrieve(index, req, ctx.signal);
    const retrievalMs = performance.now() - started;

    const window = engine.info.contextWindow;
    const fitted = fitAnswerPrompt(
      req.query,
      retrieval.results.map((r) => ({ docId: r.chunk.docId, text: r.chunk.text })),
      // The answer's room: its max_new_tokens, but never all of the window (the engine cuts it there anyway).
      { contextWindow: window, reserve: Math.min(req.max_new_tokens, Math.floor(window / 2)), countTokens: (t) => engine.encode(t).length },
    );
    const seed = req.seed ?? randomInt(0, 2 ** 32 - 1);
    const sampling = { max_new_tokens: req.max_new_tokens, temperature: req.temperature, top_p: 1, top_k: 0, repetition_penalty: 1, stop: [] };
    const genStarted = performance.now();
    const g = await engine.generate(fitted.prompt, samplingParams(sampling, seed), { signal: ctx.signal, onText });
    if (g.finishReason === 'cancelled') {
      this.log.info({ request_id: ctx.requestId, prompt_tokens: g.promptTokens, completion_tokens: g.completionTokens }, 'generation cancelled: client went away');
      throw new GenerationCancelledError({ promptTokens: g.promptTokens, completionTokens: g.completionTokens });
    }
    ctx.usage = { promptTokens: g.promptTokens, completionTokens: g.completionTokens, cacheHit: false };
    const cited = citedNumbers(g.text);
    return {
      answer: g.text,
      citations: retrieval.results.slice(0, fitted.used).map((r, i) => ({ ...r, number: i + 1, cited: cited.has(i + 1) })),
      index,
      retrieval: {
        mode: req.mode,
        topK: req.top_k,
        retrieved: retrieval.results.length,
        used: fitted.used,
        latencyMs: retrievalMs,
        embeddingMs: retrieval.embeddingMs,
      },
      generation: {
        model: engine.info.name,
        latencyMs: performance.now() - genStarted,
        promptTokens: g.promptTokens,
        completionTokens: g.completionTokens,
        finishReason: g.finishReason === 'stop' ? 'stop' : 'length',
        timeToFirstTokenMs: g.timeToFirstTokenMs,
        seed: req.temperature > 0 ? seed : null,
      },
      latencyMs: performance.now() - started,
    };
  }
}
