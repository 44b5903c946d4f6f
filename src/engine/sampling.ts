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

/**
 * Picks the next token from one row of logits (may modify `logits`).
 * temperature 0 is greedy; otherwise temperature, top-k, then top-p
 * (nucleus) filtering, then one draw from the request's own RNG.
 */
export function sampleToken(logits: Float32Array, p: TokenSampler, rng: SeededRng, seen: Iterable<number>): number {
  applyRepetitionPenalty(logits, seen, p.repetitionPenalty);
  if (p.temperature === 0) return argmax(logits);

  const n = logits.length;
  const k = p.topK > 0 ? Math.min(p.topK, n) : n;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!;
  const weight = (id: number) => Math.exp((logits[id]! - max) / p.temperature);

  // Candidates in descending logit order (ties: lower id first, so the order is deterministic).
  let ids: number[];
  if (k < n) {
    ids = topKIndices(logits, k);
  } else if (p.topP < 1) {
    ids = nucleusCandidates(logits, max, p.temperature, p.topP);
  } else {
    // No filter at all: draw over the whole vocabulary in id order, no sort needed.
    ids = Array.from({ length: n }, (_, i) => i);
  }
  const probs = new Float64Array(ids.length);
  let sum = 0;
  for (let i = 0; i < ids.length; i++) {
    probs[i] = weight(ids[i]!);
    sum += probs[i]!;
  }
  // Nucleus: keep the smallest prefix whose mass reaches top_p (always at least one token).
  let keep = ids.length;
  if (p.topP < 1) {
    const total = k < n ? sum : softmaxMass(logits, max, p.temperature);
    let cumulative = 0;
    for (let i = 0; i < ids.length; i++) {
      cumulative += probs[i]! / total;
      if (cumulative >= p.topP) {
        keep = i + 1;
        break;
      }
    }
  }
  let mass = 0;
  for (let i = 0; i < keep; i++) mass += probs[i]!;
  let r = rng.next() * mass;
  for (let i = 0; i < keep; i++) {
    r -= probs[i]!;
    if (r < 0) return ids[i]!;
  }
  return ids[keep - 1]!;
}

function softmaxMass(logits: Float32Array, max: number, temperature: number): number {
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp((logits[i]! - max) / temperature);
  return sum;
}

/**
 * The ids that can be in the nucleus, sorted descending. Sorting the whole
 * vocabulary each step is the slow part of sampling, so only tokens above a
 * probability cutoff are sorted; if they together hold at least top_p of the
 * mass the nucleus lies among them (it is a prefix of the descending order),
 * so the result is exact. Otherwise the cutoff is lowered and it tries again.
 */
function nucleusCandidates(logits: Float32Array, max: number, temperature: number, topP: number): number[] {
  const total = softmaxMass(logits, max, temperature);
  for (let cutoff = 1e-4; ; cutoff *= 1e-3) {
    const ids: number[] = [];
    let mass = 0;
    for (let i = 0; i < logits.length; i++) {
      const w = Math.exp((logits[i]! - max) / temperature) / total;
      if (w >= cutoff) {
        ids.push(i);
        mass += w;
      }
    }
    if (mass >= topP || cutoff < 1e-30 || ids.length === logits.length) {
      if (mass < topP && ids.length < logits.length) return sortedAll(logits);
      ids.sort((a, b) => logits[b]! - logits[a]! || a - b);
      return ids;
    }
  }
}

function sortedAll(logits: Float32Array): number[] {
  const ids = Array.from({ length: logits.length }, (_, i) => i);
  ids.sort((a, b) => logits[b]! - logits[a]! || a - b);
  return ids;
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
