/**
 * How queued embedding inputs become encoder runs: pure functions of the
 * inputs' token counts, so the policy is tested without a model.
 */

export interface BatchLimits {
  /** Most inputs in one batch. */
  maxBatchSize: number;
  /** Most padded tokens (inputs × longest input) in one batch. */
  maxBatchTokens: number;
}

/**
 * How many inputs from the head of the queue (first come, first served) the
 * next batch takes: as many as fit both limits, and always at least one, so
 * an input longer than the token budget still runs (alone).
 */
export function takeCount(lengths: readonly number[], limits: BatchLimits): number {
  let n = 0;
  let longest = 0;
  for (const len of lengths) {
    const l = Math.max(longest, len);
    if (n > 0 && (n + 1 > limits.maxBatchSize || (n + 1) * l > limits.maxBatchTokens)) break;
    n++;
    longest = l;
  }
  return n;
}

/**
 * Splits a batch into encoder runs so that little compute goes to padding:
 * the inputs sorted by length, cut into consecutive groups minimising the
 * padded tokens of all runs plus `runOverhead` tokens' worth per run (the
 * fixed cost of a run; it keeps near-equal lengths together). Returns the
 * runs as lists of indices into `lengths`, shortest run first. With equal
 * lengths this is one run; a 500-token input among 20-token ones runs alone
 * rather than padding the others to 500.
 */
export function planRuns(lengths: readonly number[], runOverhead: number): number[][] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[a]! - lengths[b]! || a - b);
  const n = order.length;
  // best[j]: cheapest cost of the first j sorted inputs; cut[j]: where its last run starts.
  const best = new Float64Array(n + 1);
  const cut = new Int32Array(n + 1);
  for (let j = 1; j <= n; j++) {
    best[j] = Infinity;
    const longest = lengths[order[j - 1]!]!;
    for (let i = 0; i < j; i++) {
      const cost = best[i]! + (j - i) * longest + runOverhead;
      if (cost < best[j]!) {
        best[j] = cost;
        cut[j] = i;
      }
    }
  }
  const runs: number[][] = [];
  for (let j = n; j > 0; j = cut[j]!) runs.unshift(order.slice(cut[j]!, j));
  return runs;
}
