import type { SamplingParams, TokenConstraint, TokenLogprob } from './types.js';

/**
 * The steps applied to one row's logits before a token is drawn, in the
 * order vLLM applies them: logit bias; repetition, frequency and presence
 * penalties; the end-of-sequence mask of min_tokens; the grammar mask of a
 * structured-output constraint. (Temperature, top-k,
 * top-p and min-p follow, in the sampler.) Each step works in place and is
 * a no-op when its parameter is off.
 */

/** What the processors know of a row's history. */
export interface RowHistory {
  /** Every token id the row has read or written (prompt included): the repetition penalty's set. */
  seen: ReadonlySet<number>;
  /** How often each token was generated (prompt excluded): OpenAI's penalties count these. */
  generated: ReadonlyMap<number, number>;
  /** Tokens generated so far. */
  count: number;
}

/** Adds OpenAI's logit_bias. */
export function applyLogitBias(logits: Float32Array, bias: ReadonlyMap<number, number> | undefined): void {
  if (!bias) return;
  for (const [id, b] of bias) if (id >= 0 && id < logits.length) logits[id]! += b;
}

/**
 * Hugging Face's repetition penalty: each token already seen has a positive
 * logit divided by the penalty, a negative one multiplied. Works in place.
 */
export function applyRepetitionPenalty(logits: Float32Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const id of seen) {
    const v = logits[id];
    if (v === undefined) continue;
    logits[id] = v > 0 ? v / penalty : v * penalty;
  }
}

/** OpenAI's frequency and presence penalties over the tokens generated so far. */
export function applyFrequencyPresence(logits: Float32Array, generated: ReadonlyMap<number, number>, frequency: number, presence: number): void {
  if (frequency === 0 && presence === 0) return;
  for (const [id, n] of generated) {
    if (id < 0 || id >= logits.length) continue;
    logits[id]! -= frequency * n + presence;
  }
}

/** Masks the end-of-sequence tokens while fewer than `minTokens` were generated. */
export function applyMinTokens(logits: Float32Array, eos: ReadonlySet<number>, count: number, minTokens: number): void {
  if (count >= minTokens) return;
  for (const id of eos) if (id >= 0 && id < logits.length) logits[id] = -Infinity;
}

/**
 * Sets the logit of every token whose bit is clear in `bitmask` (32 tokens a
 * word, lowest bit first: xgrammar's layout) to -Infinity, and of every id
 * at or past `vocabSize` (the logits may be wider than the tokenizer).
 */
export function applyTokenMask(logits: Float32Array, bitmask: Int32Array, vocabSize: number): void {
  const n = Math.min(logits.length, vocabSize);
  const words = Math.ceil(n / 32);
  for (let w = 0; w < words; w++) {
    const bits = bitmask[w]! | 0;
    // Whole words allowed are the common case inside free text; skip them.
    if (bits === -1) continue;
    const base = w * 32;
    const end = Math.min(32, n - base);
    for (let b = 0; b < end; b++) if (((bits >>> b) & 1) === 0) logits[base + b] = -Infinity;
  }
  for (let i = n; i < logits.length; i++) logits[i] = -Infinity;
}

/**
 * The whole chain for one row, in order. With a constraint, min_tokens does
 * not hold back the end of a complete document (the grammar may allow
 * nothing else there).
 */
export function processLogits(logits: Float32Array, p: SamplingParams, history: RowHistory, eos: ReadonlySet<number>, constraint?: TokenConstraint): void {
  applyLogitBias(logits, p.logitBias);
  applyRepetitionPenalty(logits, history.seen, p.repetitionPenalty);
  applyFrequencyPresence(logits, history.generated, p.frequencyPenalty ?? 0, p.presencePenalty ?? 0);
  if (!constraint) applyMinTokens(logits, eos, history.count, p.minTokens ?? 0);
  constraint?.mask(logits);
}

/**
 * Log-probabilities from raw logits (log-softmax, in float64): the chosen
 * token's and the `top` most probable (sorted descending; ties by lower id).
 * Always finite for finite logits.
 */
export function tokenLogprob(raw: Float32Array, chosen: number, top: number): TokenLogprob {
  let max = -Infinity;
  for (let i = 0; i < raw.length; i++) if (raw[i]! > max) max = raw[i]!;
  let sum = 0;
  for (let i = 0; i < raw.length; i++) sum += Math.exp(raw[i]! - max);
  const lse = max + Math.log(sum);
  const best: number[] = [];
  if (top > 0) {
    for (let i = 0; i < raw.length; i++) {
      const v = raw[i]!;
      if (best.length === top && v <= raw[best[top - 1]!]!) continue;
      let pos = best.length < top ? best.push(i) - 1 : top - 1;
      while (pos > 0 && raw[best[pos - 1]!]! < v) {
        best[pos] = best[pos - 1]!;
        pos--;
      }
      best[pos] = i;
    }
  }
  return { id: chosen, logprob: raw[chosen]! - lse, top: best.map((id) => ({ id, logprob: raw[id]! - lse })) };
}
