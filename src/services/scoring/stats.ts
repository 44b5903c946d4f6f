/**
 * Summary statistics for batch evaluations: mean, nearest-rank percentiles,
 * the Wilson score interval of a pass rate, score distributions.
 * Documented in docs/evaluation.md.
 */

/** z for a two-sided 95% interval. */
export const Z_95 = 1.959964;

/** Arithmetic mean; null for no values. */
export function mean(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/**
 * Nearest-rank percentile: the smallest value such that at least p% of the
 * values are ≤ it, i.e. sorted[ceil(p/100 · n) − 1] (p = 0: the minimum).
 * Always one of the observed values. null for no values; p must be in 0..100.
 */
export function percentile(values: readonly number[], p: number): number | null {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile p must be in 0..100, got ${p}`);
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

export interface Interval {
  lower: number;
  upper: number;
}

/**
 * Wilson score interval for `successes` out of `n` (default 95%, z = 1.959964):
 * center = (p̂ + z²/2n) / (1 + z²/n),
 * half   = z / (1 + z²/n) · sqrt(p̂(1 − p̂)/n + z²/4n²),
 * [center − half, center + half] clamped to [0, 1] (exactly 0 at k = 0 and
 * exactly 1 at k = n). null when n = 0.
 */
export function wilsonInterval(successes: number, n: number, z: number = Z_95): Interval | null {
  if (n === 0) return null;
  if (!(n > 0) || successes < 0 || successes > n) throw new RangeError(`need 0 ≤ successes ≤ n, got ${successes}/${n}`);
  const p = successes / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const center = (p + z2 / (2 * n)) / denom;
  const half = (z / denom) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  // At k = 0 (k = n) the lower (upper) bound is exactly 0 (1); avoid float residue there.
  return {
    lower: successes === 0 ? 0 : Math.max(0, center - half),
    upper: successes === n ? 1 : Math.min(1, center + half),
  };
}

/**
 * Counts of each score: keys "1".."5" always present (0 when none), plus any
 * other score that occurs; null scores (unscored) are not counted, so the
 * counts sum to the number of scored values.
 */
export function scoreDistribution(scores: ReadonlyArray<number | null>, range: readonly [number, number] = [1, 5]): Record<string, number> {
  const buckets: Record<string, number> = {};
  for (let s = range[0]; s <= range[1]; s++) buckets[String(s)] = 0;
  for (const s of scores) {
    if (s === null) continue;
    const k = String(s);
    buckets[k] = (buckets[k] ?? 0) + 1;
  }
  return buckets;
}

export interface ScoreSummary {
  count: number;
  mean: number | null;
  min: number | null;
  max: number | null;
  p50: number | null;
}

/** count, mean, min, max and nearest-rank p50 of the non-null scores. */
export function summarizeScores(scores: ReadonlyArray<number | null>): ScoreSummary {
  const xs = scores.filter((s): s is number => s !== null);
  if (xs.length === 0) return { count: 0, mean: null, min: null, max: null, p50: null };
  let min = Infinity;
  let max = -Infinity;
  for (const x of xs) {
    if (x < min) min = x;
    if (x > max) max = x;
  }
  return { count: xs.length, mean: mean(xs), min, max, p50: percentile(xs, 50) };
}
