import type { QuantizationInfo } from './quantize.js';

/** One turn of a conversation, as chat templates take it. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** Parameters of one generation, already validated by the service layer. */
export interface SamplingParams {
  maxNewTokens: number;
  /** 0 = greedy. */
  temperature: number;
  topP: number;
  /** 0 = disabled. */
  topK: number;
  repetitionPenalty: number;
  /** Seed of the request's own RNG; same seed + same request = same text. */
  seed: number;
  stop: string[];
  /** OpenAI's presence penalty (-2..2): subtracted from the logit of every token generated so far. 0 = off. */
  presencePenalty?: number;
  /** OpenAI's frequency penalty (-2..2): subtracted once per time a token was generated so far. 0 = off. */
  frequencyPenalty?: number;
  /** Added to the logits of these token ids before anything else (OpenAI's logit_bias, -100..100). */
  logitBias?: ReadonlyMap<number, number>;
  /** Min-p: drop tokens less probable than minP × the most probable one (0 = off). */
  minP?: number;
  /** End-of-sequence tokens cannot be sampled until this many tokens were generated. */
  minTokens?: number;
  /** Keep generating through end-of-sequence tokens (benchmarks): only maxNewTokens and stop strings end it. */
  ignoreEos?: boolean;
  /**
   * Report each generated token's log-probability and this many most probable
   * alternatives (0..20), from the model's own distribution: the log-softmax
   * of the raw logits, before bias, penalties, temperature and truncation.
   * Undefined: none reported.
   */
  logprobs?: number;
}

/** A generated token's log-probability, and the most probable alternatives at its position (sorted, best first). */
export interface TokenLogprob {
  id: number;
  logprob: number;
  top: Array<{ id: number; logprob: number }>;
}

/** One generated token as it is sampled: its id, the text it released (may be empty: held back), its logprobs if asked. */
export interface TokenStep {
  id: number;
  text: string;
  logprob: TokenLogprob | null;
}

/** Why a generation ended: a stop token or string, the token limit, or the caller's signal. */
export const FINISH_REASONS = ['stop', 'length', 'cancelled'] as const;
export type FinishReason = (typeof FINISH_REASONS)[number];

export interface GenerationResult {
  text: string;
  promptTokens: number;
  completionTokens: number;
  finishReason: FinishReason;
  /** Milliseconds from submission to the first generated token. */
  timeToFirstTokenMs: number | null;
  /** Milliseconds spent waiting in the queue before prefill started. */
  queueMs: number;
  /** Mean milliseconds between consecutive tokens (null for fewer than two). */
  interTokenMs: number | null;
  /** Per generated token, when SamplingParams.logprobs asked for them; else null. */
  logprobs: TokenLogprob[] | null;
  /** With a structured-output constraint: whether the document was completed (false: cut by the token limit, a stop string or cancellation); null without one. */
  constraintComplete?: boolean | null;
}

/**
 * One generation's structured-output constraint (constraint-compiler.ts):
 * which tokens may come next. The scheduler awaits `prepare` before each
 * draw, `mask` sets the logits of the refused tokens to -Infinity (after
 * bias and penalties, before temperature and truncation), `accept` advances
 * it over the drawn token.
 */
export interface TokenConstraint {
  prepare(): Promise<void>;
  mask(logits: Float32Array): void;
  /** Advances over a drawn token; false when the grammar refuses it. */
  accept(token: number): boolean;
  /** Whether the document is complete and its end token accepted. */
  readonly terminated: boolean;
  dispose(): void;
}

export interface GenerateOptions {
  signal?: AbortSignal;
  /** Tokens that cannot extend the text toward a valid document are never drawn; disposed when the generation ends. */
  constraint?: TokenConstraint;
  /** Receives text as it becomes final (stop strings withheld, whole characters only). */
  onText?: (text: string) => void;
  /** Receives every generated token as it is sampled (an end-of-sequence token that ends the generation excluded). */
  onToken?: (step: TokenStep) => void;
}

/** Static facts about the loaded model, reported in responses and health. */
export interface ModelInfo {
  name: string;
  architecture: string;
  contextWindow: number;
  attentionHeads: number;
  kvHeads: number;
  hiddenSize: number;
  layers: number;
  vocabSize: number;
  source: string;
  /** Which graph runs: this project's fused one, or the plain transformers.js one. */
  graph: 'fused' | 'plain';
  /** A hash of the model directory's files (OpenAI's system_fingerprint is built from it). */
  fingerprint: string;
  /** How the running graph's weights are quantized; null: fp32 (also a quantized directory run on its fp32 plain graph). */
  quantization: QuantizationInfo | null;
}
