import type { SamplingParams } from '../engine/types.js';

/**
 * The sampling fields of a validated request, as the contract names them.
 * Chat requests carry all of them; batch runs fix the ones they do not take.
 */
export interface SamplingFields {
  max_new_tokens: number;
  temperature: number;
  top_p: number;
  top_k: number;
  repetition_penalty: number;
  stop: string[];
}

/** The one translation from a request's sampling fields to the engine's parameters. */
export function samplingParams(f: SamplingFields, seed: number): SamplingParams {
  return {
    maxNewTokens: f.max_new_tokens,
    temperature: f.temperature,
    topP: f.top_p,
    topK: f.top_k,
    repetitionPenalty: f.repetition_penalty,
    seed: seed >>> 0,
    stop: f.stop,
  };
}
