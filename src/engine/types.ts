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
}

export interface GenerateOptions {
  signal?: AbortSignal;
  /** Receives text as it becomes final (stop strings withheld, whole characters only). */
  onText?: (text: string) => void;
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
}
