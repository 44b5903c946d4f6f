import { applyRepetitionPenalty } from './logits-processors.js';
import type { SeededRng } from './rng.js';

export { applyRepetitionPenalty };

/** What the draw itself takes: the truncations, after the logits processors (logits-processors.ts) have run. */
export interface TokenDraw {
  temperature: number;
  topP: number;
  topK: number;
  /** 0 = off. */
  minP?: number;
}

export interface TokenSampler extends TokenDraw {
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

/** Reusable work space for sampling, so a step allocates nothing vocabulary-sized. */
export class SamplingScratch {
  weights = new Float64Array(0);
  ensure(n: number): Float64Array {
    if (this.weights.length < n) this.weights = new Float64Array(n);
    return this.weights;
  }
}

/**
 * Picks the next token from one row of logits (may modify `logits`): the
 * repetition penalty, then the draw. The scheduler runs the whole processor
 * chain (processLogits) and then drawToken; this is the two together for
 * callers with only a repetition penalty.
 */
export function sampleToken(
  logits: Float32Array,
  p: TokenSampler,
  rng: SeededRng,
  seen: Iterable<number>,
  scratch: SamplingScratch = new SamplingScratch(),
): number {
  applyRepetitionPenalty(logits, seen, p.repetitionPenalty);
  return drawToken(logits, p, rng, scratch);
}

/**
 * Draws the next token from processed logits: temperature 0 is greedy;
 * otherwise temperature, top-k, top-p (nucleus), then min-p (relative to
 * the most probable token), then one draw from the request's own RNG.
 */
export function drawToken(logits: Float32Array, p: TokenDraw, rng: SeededRng, scratch: SamplingScratch = new SamplingScratch()): number {
  if (p.temperature === 0) return argmax(logits);
  // Weights are exp((l - max) / T), so the most probable token weighs 1 and min-p is a weight floor.
  const minW = p.minP ?? 0;

  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!;
  const invT = 1 / p.temperature;

  if (p.topK > 0 && p.topK < n) {
    // Top-k first, then top-p over the renormalised k.
    const ids = topKIndices(logits, p.topK);
    const w = ids.map((id) => Math.exp((logits[id]! - max) * invT));
    return drawNucleus(ids, (i) => w[i]!, w.reduce((a, b) => a + b, 0), p.topP, rng, minW);
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
    // No top-p: draw over the whole vocabulary (less what min-p drops) in id order, no sort needed.
    if (minW > 0) {
      total = 0;
      for (let i = 0; i < n; i++) if (w[i]! < minW) w[i] = 0;
      for (let i = 0; i < n; i++) total += w[i]!;
    }
    let r = rng.next() * total;
    let last = 0;
    for (let i = 0; i < n; i++) {
      if (w[i]! === 0) continue;
      last = i;
      r -= w[i]!;
      if (r < 0) return i;
    }
    return last;
  }
  let ids = nucleusCandidates(logits, w, n, total, p.topP, invT);
  // The nucleus is taken from the whole distribution, then min-p thins it (the most probable always stays).
  if (minW > 0) ids = ids.filter((id) => w[id]! >= minW);
  // `ids` is the nucleus already: draw over all of it (drawNucleus with top_p 1 and no min-p,
  // inlined: tens of thousands of ids in a flat distribution made its closure calls cost ms a row).
  let mass = 0;
  for (let i = 0; i < ids.length; i++) mass += w[ids[i]!]!;
  let r = rng.next() * mass;
  for (let i = 0; i < ids.length; i++) {
    r -= w[ids[i]!]!;
    if (r < 0) return ids[i]!;
  }
  return ids[ids.length - 1]!;
}

/**
 * Keeps the smallest prefix of `ids` (sorted by probability, descending)
 * whose mass reaches top_p of `total`, at least one token, less the tokens
 * weighing under `minW`, and draws from it.
 */
function drawNucleus(ids: number[], weight: (i: number) => number, total: number, topP: number, rng: SeededRng, minW = 0): number {
  let keep = ids.length;
  for (let i = 1; i < ids.length; i++) {
    if (weight(i) < minW) {
      keep = i;
      break;
    }
  }
  let mass = 0;
  for (let i = 0; i < keep; i++) {
    mass += weight(i);
    if (topP < 1 && mass / total >= topP) {
      keep = i + 1;
      break;
    }
  }
  mass = 0;
  for (let i = 0; i < keep; i++) mass += weight(i);
  let r = rng.next() * mass;
  for (let i = 0; i < keep; i++) {
    r -= weight(i);
    if (r < 0) return ids[i]!;
  }
  return ids[keep - 1]!;
}

/**
 * The nucleus: the fewest most-probable ids whose mass reaches top_p, as
 * the full-sort definition gives (ties at the boundary: lower id first).
 * Sorting the whole vocabulary every step is what makes sampling slow (a
 * flat distribution's nucleus holds most of a 50k vocabulary), so ids are
 * first bucketed by log-probability; whole buckets above the boundary are
 * taken as they are and only the bucket the boundary falls in is sorted.
 * The ids come back in a fixed order (by bucket, then id), so the draw is
 * deterministic for a given seed.
 */
export function nucleusCandidates(logits: Float32Array, w: Float64Array, n: number, total: number, topP: number, invT: number): number[] {
  const BUCKETS = 1024;
  let lMax = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i]! > lMax) lMax = logits[i]!;
  // Bucket b holds ids whose probability is within [e^-(b+1)/32, e^-b/32) of the largest:
  // -ln(w / wMax) is (lMax - l) / T, so no logarithm is needed.
  const scale = invT * 32;
  const bucket = new Int32Array(n);
  const mass = new Float64Array(BUCKETS);
  const count = new Int32Array(BUCKETS);
  for (let i = 0; i < n; i++) {
    const x = w[i]!;
    let b = Math.floor((lMax - logits[i]!) * scale);
    if (!(b < BUCKETS - 1)) b = BUCKETS - 1;
    bucket[i] = b;
    mass[b]! += x;
    count[b]!++;
  }
  const target = topP * total;
  let cumulative = 0;
  let boundary = BUCKETS - 1;
  for (let b = 0; b < BUCKETS; b++) {
    if (cumulative + mass[b]! >= target) {
      boundary = b;
      break;
    }
    cumulative += mass[b]!;
  }
  // Counting sort of the ids above the boundary into bucket order (ids ascending within a bucket).
  const start = new Int32Array(boundary + 1);
  for (let b = 1; b <= boundary; b++) start[b] = start[b - 1]! + count[b - 1]!;
  const ids: number[] = new Array<number>(start[boundary]!);
  const edge: number[] = [];
  for (let i = 0; i < n; i++) {
    const b = bucket[i]!;
    if (b < boundary) ids[start[b]!++] = i;
    else if (b === boundary) edge.push(i);
  }
  for (const id of sortDescending(logits, edge)) {
    ids.push(id);
    cumulative += w[id]!;
    if (cumulative >= target) break;
  }
  return ids;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * `ids` (ascending) ordered by logit descending, ties by id ascending: the
 * order of `sort((a, b) => logits[b] - logits[a] || a - b)`, by a stable
 * two-pass radix sort (16 bits a pass) of each logit's bits mapped to an
 * unsigned integer that orders like the float, inverted so larger logits
 * come first. A flat distribution's boundary bucket holds tens of thousands
 * of ids; the comparator sort took ~10-50 ms a row to order them.
 */
function sortDescending(logits: Float32Array, ids: number[]): number[] {
  const n = ids.length;
  if (n < 256) return ids.sort((a, b) => logits[b]! - logits[a]! || a - b);
  let keys = new Uint32Array(n);
  let vals = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    vals[i] = ids[i]!;
    f32[0] = logits[vals[i]!]! + 0; // -0 -> +0: the comparator treats them as equal
    const bits = u32[0]!;
    // Ascending order of floats as unsigned integers: negative ones bit-flipped, positive ones with the sign bit set.
    const ascending = bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
    keys[i] = 0xffffffff - ascending;
  }
  let keysOut = new Uint32Array(n);
  let valsOut = new Int32Array(n);
  const count = new Uint32Array(65536);
  for (const shift of [0, 16]) {
    count.fill(0);
    for (let i = 0; i < n; i++) count[(keys[i]! >>> shift) & 0xffff]!++;
    let sum = 0;
    for (let d = 0; d < 65536; d++) {
      const c = count[d]!;
      count[d] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const d = (keys[i]! >>> shift) & 0xffff;
      const at = count[d]!++;
      keysOut[at] = keys[i]!;
      valsOut[at] = vals[i]!;
    }
    [keys, keysOut] = [keysOut, keys];
    [vals, valsOut] = [valsOut, vals];
  }
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = vals[i]!;
  return out;
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
