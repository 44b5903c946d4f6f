import type { SeededRng } from './rng.js';

export interface TokenSampler {
  temperature: number;
  topP: number;
  topK: number;
  repetitionPenalty: number;
}

/** Index of the largest value; the lowest index wins ties. */
export function argmax(logits: Float32Array): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
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

/** Reusable work space for sampling, so a step allocates nothing vocabulary-sized. */
export class SamplingScratch {
  weights = new Float64Array(0);
  ensure(n: number): Float64Array {
    if (this.weights.length < n) this.weights = new Float64Array(n);
    return this.weights;
  }
}

/**
 * Picks the next token from one row of logits (may modify `logits`).
 * temperature 0 is greedy; otherwise temperature, top-k, then top-p
 * (nucleus) filtering, then one draw from the request's own RNG.
 */
export function sampleToken(
  logits: Float32Array,
  p: TokenSampler,
  rng: SeededRng,
  seen: Iterable<number>,
  scratch: SamplingScratch = new SamplingScratch(),
): number {
  applyRepetitionPenalty(logits, seen, p.repetitionPenalty);
  if (p.temperature === 0) return argmax(logits);

  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!;
  const invT = 1 / p.temperature;

  if (p.topK > 0 && p.topK < n) {
    // Top-k first, then top-p over the renormalised k.
    const ids = topKIndices(logits, p.topK);
    const w = ids.map((id) => Math.exp((logits[id]! - max) * invT));
    return drawNucleus(ids, (i) => w[i]!, w.reduce((a, b) => a + b, 0), p.topP, rng);
  }

  // One pass of exponentials over the vocabulary, kept for the draw.
  const w = scratch.ensure(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp((logits[i]! - max) * invT);
    w[i] = e;
    total += e;
  }
  if (p.topP >= 1) {
    // No filter: draw over the whole vocabulary in id order, no sort needed.
    let r = rng.next() * total;
    for (let i = 0; i < n; i++) {
      r -= w[i]!;
      if (r < 0) return i;
    }
    return n - 1;
  }
  const ids = nucleusCandidates(logits, w, n, total, p.topP);
  return drawNucleus(ids, (i) => w[ids[i]!]!, total, p.topP, rng);
}

/**
 * Keeps the smallest prefix of `ids` (sorted by probability, descending)
 * whose mass reaches top_p of `total`, at least one token, and draws from it.
 */
function drawNucleus(ids: number[], weight: (i: number) => number, total: number, topP: number, rng: SeededRng): number {
  let keep = ids.length;
  let mass = 0;
  for (let i = 0; i < ids.length; i++) {
    mass += weight(i);
    if (topP < 1 && mass / total >= topP) {
      keep = i + 1;
      break;
    }
  }
  let r = rng.next() * mass;
  for (let i = 0; i < keep; i++) {
    r -= weight(i);
    if (r < 0) return ids[i]!;
  }
  return ids[keep - 1]!;
}

/**
 * The ids that can be in the nucleus, sorted descending by logit (ties: lower
 * id first). Sorting the whole vocabulary each step is the slow part of
 * sampling, so only tokens above a probability cutoff are sorted; if they
 * together hold at least top_p of the mass the nucleus lies among them (it is
 * a prefix of the descending order), so the result is exact. Otherwise the
 * cutoff is lowered and it tries again.
 */
function nucleusCandidates(logits: Float32Array, w: Float64Array, n: number, total: number, topP: number): number[] {
  for (let cutoff = 1e-4 * total; ; cutoff *= 1e-3) {
    const ids: number[] = [];
    let mass = 0;
    for (let i = 0; i < n; i++) {
      if (w[i]! >= cutoff) {
        ids.push(i);
        mass += w[i]!;
      }
    }
    if (mass >= topP * total || ids.length === n || cutoff === 0) {
      ids.sort((a, b) => logits[b]! - logits[a]! || a - b);
      return ids;
    }
    if (cutoff < Number.MIN_VALUE * 1e6) cutoff = 0;
  }
}

/** The k largest entries' indices, sorted descending (ties: lower index first). */
function topKIndices(logits: Float32Array, k: number): number[] {
  // A bounded selection is O(n·k) worst case, but k is small in practice and this avoids sorting 50k entries.
  const ids: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (ids.length === k && v <= logits[ids[k - 1]!]!) continue;
    let pos = ids.length === k ? k - 1 : ids.length;
    if (ids.length < k) ids.push(i);
    while (pos > 0 && logits[ids[pos - 1]!]! < v) {
      ids[pos] = ids[pos - 1]!;
      pos--;
    }
    ids[pos] = i;
  }
  return ids;
}
