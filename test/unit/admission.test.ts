import { describe, expect, it } from 'vitest';
import { decodes, nextChunk, planAdmission, type AdmissionLimits, type BatchSnapshot } from '../../src/engine/admission.js';
import { mulberry32 } from '../../src/engine/random-weights.js';

const limits = (l: Partial<AdmissionLimits> = {}): AdmissionLimits => ({ capacity: 8, maxPrefillTokens: 10, chunking: true, ...l });
const batch = (b: Partial<BatchSnapshot> = {}): BatchSnapshot => ({ waiting: [], running: 0, chunked: 0, prefilling: false, ...b });
const whole = (...lens: number[]) => lens.map((prefill) => ({ prefill, pending: 0 }));

describe('planAdmission', () => {
  it('admits nothing when nothing waits', () => {
    expect(planAdmission(batch(), limits())).toEqual([]);
  });

  it('admits the oldest prompts first, up to the batch capacity (rows already running count)', () => {
    expect(planAdmission(batch({ waiting: [1, 2, 3, 1, 1] }), limits({ capacity: 3 }))).toEqual(whole(1, 2, 3));
    expect(planAdmission(batch({ waiting: [1, 2, 3], running: 2 }), limits({ capacity: 3 }))).toEqual(whole(1));
    expect(planAdmission(batch({ waiting: [1, 2, 3], running: 3 }), limits({ capacity: 3 }))).toEqual([]);
    // A row still being prefilled in chunks holds its place too.
    expect(planAdmission(batch({ waiting: [1], running: 1, prefilling: true, chunked: 2 }), limits({ capacity: 1 }))).toEqual([]);
  });

  it("respects the step's prefill budget", () => {
    expect(planAdmission(batch({ waiting: [4, 4, 4] }), limits())).toEqual(whole(4, 4));
    expect(planAdmission(batch({ waiting: [4, 6, 1] }), limits())).toEqual(whole(4, 6));
    expect(planAdmission(batch({ waiting: [3, 3, 3, 1] }), limits())).toEqual(whole(3, 3, 3, 1));
  });

  it('never lets a later prompt overtake one that does not fit (first come, first served)', () => {
    // The 1 behind the 7 would fit, but the 7 does not: both wait for the next step.
    expect(planAdmission(batch({ waiting: [4, 7, 1] }), limits())).toEqual(whole(4));
  });

  it('lets the first prompt exceed a budget no other prompt or chunk is using (no starvation)', () => {
    // Without chunking a prompt longer than the whole budget still gets in, alone.
    expect(planAdmission(batch({ waiting: [25, 1] }), limits({ chunking: false }))).toEqual(whole(25));
    // The last chunk of a long prompt used part of the budget but no row is prefilling any more.
    expect(planAdmission(batch({ waiting: [9, 1], running: 1, chunked: 4 }), limits())).toEqual(whole(9));
  });

  it('starts a long prompt alone with its first chunk when the backend can extend a row', () => {
    expect(planAdmission(batch({ waiting: [25, 1] }), limits())).toEqual([{ prefill: 10, pending: 15 }]);
    expect(planAdmission(batch({ waiting: [11], running: 3 }), limits())).toEqual([{ prefill: 10, pending: 1 }]);
    // Exactly the budget is not long: prefilled whole.
    expect(planAdmission(batch({ waiting: [10, 1] }), limits())).toEqual(whole(10));
  });

  it('makes a long prompt behind admitted ones wait for a step of its own', () => {
    expect(planAdmission(batch({ waiting: [3, 25, 1] }), limits())).toEqual(whole(3));
    // The next step, at the head of the queue with the whole budget, it starts.
    expect(planAdmission(batch({ waiting: [25, 1], running: 1 }), limits())).toEqual([{ prefill: 10, pending: 15 }]);
  });

  it('makes a long prompt wait for a whole unused budget', () => {
    // A chunk finished another prompt this step: some budget is gone.
    expect(planAdmission(batch({ waiting: [25], running: 1, chunked: 1 }), limits())).toEqual([]);
  });

  it('prefills a long prompt whole and alone when the backend cannot extend a row', () => {
    expect(planAdmission(batch({ waiting: [3, 25, 1] }), limits({ chunking: false }))).toEqual(whole(3));
    expect(planAdmission(batch({ waiting: [25, 1], running: 1 }), limits({ chunking: false }))).toEqual(whole(25));
  });

  it('admits nothing while another row is prefilled in chunks and its chunk took the budget', () => {
    expect(planAdmission(batch({ waiting: [1], running: 2, prefilling: true, chunked: 10 }), limits())).toEqual([]);
    expect(planAdmission(batch({ waiting: [5, 1], running: 2, prefilling: true, chunked: 6 }), limits())).toEqual([]);
  });

  it('admits short prompts beside a chunked row within what its chunk left of the budget', () => {
    expect(planAdmission(batch({ waiting: [2, 2, 1], running: 2, prefilling: true, chunked: 6 }), limits())).toEqual(whole(2, 2));
  });

  it('starts no second chunked prompt while one is still being prefilled', () => {
    expect(planAdmission(batch({ waiting: [25], running: 1, prefilling: true, chunked: 10 }), limits())).toEqual([]);
    // Even when its last chunk is small and the budget mostly unused.
    expect(planAdmission(batch({ waiting: [25], running: 1, prefilling: true, chunked: 1 }), limits())).toEqual([]);
  });

  it('holds for seeded random batches: capacity, FIFO, budget, one chunked prompt at a time', () => {
    const rand = mulberry32(2024);
    const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
    for (let n = 0; n < 5000; n++) {
      const l = limits({ capacity: int(1, 6), maxPrefillTokens: int(1, 16), chunking: rand() < 0.7 });
      const prefilling = l.chunking && rand() < 0.3;
      const b = batch({
        waiting: Array.from({ length: int(0, 8) }, () => int(1, 3 * l.maxPrefillTokens)),
        running: int(prefilling ? 1 : 0, l.capacity),
        prefilling,
        chunked: prefilling || rand() < 0.3 ? int(1, l.maxPrefillTokens) : 0,
      });
      const plan = planAdmission(b, l);
      const ctx = JSON.stringify({ l, b, plan });
      expect(b.running + plan.length, ctx).toBeLessThanOrEqual(l.capacity);
      expect(plan.length, ctx).toBeLessThanOrEqual(b.waiting.length);
      plan.forEach((a, i) => expect(a.prefill + a.pending, ctx).toBe(b.waiting[i]));
      const used = plan.reduce((s, a) => s + a.prefill, 0);
      const alone = plan.length === 1 && !b.prefilling;
      if (!alone) expect(b.chunked + used, ctx).toBeLessThanOrEqual(l.maxPrefillTokens);
      const chunked = plan.filter((a) => a.pending > 0);
      if (chunked.length > 0) {
        expect(l.chunking && alone && chunked[0]!.prefill === l.maxPrefillTokens && b.chunked === 0, ctx).toBe(true);
      }
      if (!l.chunking) expect(chunked, ctx).toEqual([]);
      // Something is admitted whenever a row is free, the batch idle and a prompt waits.
      if (b.running === 0 && b.waiting.length > 0 && b.chunked === 0) expect(plan.length, ctx).toBeGreaterThan(0);
    }
  });
});

describe('nextChunk', () => {
  it('takes fixed-size chunks, the last one shorter', () => {
    const chunks: number[] = [];
    for (let pending = 25 - 10; pending > 0; pending -= chunks.at(-1)!) chunks.push(nextChunk(pending, { maxPrefillTokens: 10 }));
    expect(chunks).toEqual([10, 5]);
    expect(nextChunk(10, { maxPrefillTokens: 10 })).toBe(10);
  });
});

describe('decodes', () => {
  it('decodes only when some row has finished its prefill', () => {
    expect(decodes([])).toBe(false);
    expect(decodes([true])).toBe(false);
    expect(decodes([false])).toBe(true);
    expect(decodes([true, false])).toBe(true);
  });
});
