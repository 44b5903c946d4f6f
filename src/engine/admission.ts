/**
 * The scheduler's step policy as pure functions of plain numbers, so that it
 * is tested without a model or a backend (as text-generation-inference tests
 * its router's `next_batch`). A step runs, in this order:
 *  1. the next chunk of the one prompt being prefilled in chunks, if any
 *     (`nextChunk`);
 *  2. admission of waiting prompts with what is left of the step's prefill
 *     budget (`planAdmission`);
 *  3. one decode step, if some row has finished its prefill (`decodes`).
 * The scheduler applies these decisions and makes the backend calls; nothing
 * here knows about sequences, sampling or the model.
 */

/** The fixed facts admission works within, the same every step. */
export interface AdmissionLimits {
  /** Most rows in the batch: the smaller of the configured batch size and the backend's capacity. */
  capacity: number;
  /** Prompt tokens prefilled per step; also the size of every chunk of a long prompt. */
  maxPrefillTokens: number;
  /** Whether the backend can extend a row (prefill a long prompt in chunks); otherwise long prompts go in whole. */
  chunking: boolean;
}

/** The batch as admission sees it, after this step's chunk (if any) has run. */
export interface BatchSnapshot {
  /** Prompt lengths of the waiting requests, oldest first. */
  waiting: readonly number[];
  /** Rows in the batch, whether decoding or still being prefilled. */
  running: number;
  /** Prompt tokens this step's chunk used (0 when there was none). */
  chunked: number;
  /** Whether a row still has prompt tokens to prefill after this step's chunk. */
  prefilling: boolean;
}

/** How one admitted prompt joins the batch. */
export interface Admission {
  /** Prompt tokens prefilled now: the whole prompt, or the first chunk of a long one. */
  prefill: number;
  /** Prompt tokens left for later chunks, one chunk per step (0 for a prompt prefilled whole). */
  pending: number;
}

/** Length of the next chunk of a row with `pending` prompt tokens left. */
export function nextChunk(pending: number, limits: Pick<AdmissionLimits, 'maxPrefillTokens'>): number {
  // Chunks have a fixed size (only the last is shorter), so a request's
  // computation does not depend on its company.
  return Math.min(pending, limits.maxPrefillTokens);
}

/**
 * Which waiting prompts join the batch this step: the oldest ones, in order,
 * as many as the row limit and the prefill budget left after the step's chunk
 * allow. Strictly first come, first served: a prompt that does not fit holds
 * back those behind it, so a long prompt is never overtaken for ever by short
 * ones. The admitted prompts are `waiting.slice(0, plan.length)`.
 */
export function planAdmission(batch: BatchSnapshot, limits: AdmissionLimits): Admission[] {
  const max = limits.maxPrefillTokens;
  let budget = max - batch.chunked;
  const plan: Admission[] = [];
  for (const len of batch.waiting) {
    if (batch.running + plan.length >= limits.capacity) break;
    // Another prompt prefilled in this step, or a row still being chunked.
    const company = plan.length > 0 || batch.prefilling;
    if (len > max && limits.chunking) {
      // A long prompt starts alone, with its first chunk and a whole unused
      // budget; the rest follows one chunk per step. One row is chunked at a
      // time (`extend` takes one row per call).
      if (company || budget < max) break;
      plan.push({ prefill: max, pending: len - max });
      break;
    }
    // Alone (no other prompt beside it, no row still chunked) a prompt may
    // exceed what is left of the budget: else one longer than the budget
    // (any long prompt, without chunking) could wait for ever.
    if (len > budget && company) break;
    plan.push({ prefill: len, pending: 0 });
    budget -= len;
  }
  return plan;
}

/**
 * Whether the step decodes: only when some row has finished its prefill. A row
 * being prefilled in chunks sits the decode out (its token is null) until its
 * last chunk gives its first logits.
 */
export function decodes(prefilling: readonly boolean[]): boolean {
  return prefilling.some((p) => !p);
}
