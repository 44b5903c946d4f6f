import { describe, expect, it } from 'vitest';
import {
  applyFrequencyPresence,
  applyLogitBias,
  applyMinTokens,
  processLogits,
  tokenLogprob,
} from '../../src/engine/logits-processors.js';
import { SeededRng } from '../../src/engine/rng.js';
import { argmax, drawToken } from '../../src/engine/sampling.js';
import type { SamplingParams } from '../../src/engine/types.js';

const row = () => Float32Array.from([1.0, 3.0, 2.0, 0.5, 2.9]);
const params = (p: Partial<SamplingParams> = {}): SamplingParams => ({
  maxNewTokens: 10,
  temperature: 0,
  topP: 1,
  topK: 0,
  repetitionPenalty: 1,
  seed: 0,
  stop: [],
  ...p,
});

describe('logits processors', () => {
  it('logit bias adds to the named ids only, ignoring ids outside the vocabulary', () => {
    const l = row();
    applyLogitBias(l, new Map([[0, 5], [4, -100], [99, 1]]));
    expect(Array.from(l)).toEqual([6, 3, 2, 0.5, 2.9 - 100].map((x) => Math.fround(x)));
  });

  it('frequency and presence penalties follow OpenAI: minus frequency × count + presence for generated tokens', () => {
    const l = row();
    applyFrequencyPresence(l, new Map([[1, 3], [2, 1]]), 0.5, 0.25);
    expect(l[1]).toBeCloseTo(3 - 1.5 - 0.25, 6);
    expect(l[2]).toBeCloseTo(2 - 0.5 - 0.25, 6);
    expect(l[0]).toBe(1);
    // Negative values reward repetition, as OpenAI allows.
    const r = row();
    applyFrequencyPresence(r, new Map([[0, 1]]), -1, 0);
    expect(r[0]).toBe(2);
  });

  it('min_tokens masks end-of-sequence tokens until enough were generated', () => {
    const l = row();
    applyMinTokens(l, new Set([1]), 2, 3);
    expect(l[1]).toBe(-Infinity);
    expect(argmax(l)).toBe(4);
    const m = row();
    applyMinTokens(m, new Set([1]), 3, 3);
    expect(m[1]).toBe(3);
  });

  it('the chain in order: bias before penalties (a biased token is then penalised as seen)', () => {
    const l = row();
    processLogits(l, params({ logitBias: new Map([[0, 3]]), repetitionPenalty: 2 }), { seen: new Set([0]), generated: new Map(), count: 0 }, new Set());
    // (1 + 3) / 2, not 1 / 2 + 3.
    expect(l[0]).toBe(2);
  });

  it('every processor off changes nothing', () => {
    const l = row();
    processLogits(l, params(), { seen: new Set([0, 1]), generated: new Map([[1, 2]]), count: 0 }, new Set([2]));
    expect(l).toEqual(row());
  });
});

describe('token log-probabilities', () => {
  it('is the log-softmax of the raw logits, top sorted, finite, exp summing to at most 1', () => {
    const raw = row();
    const lp = tokenLogprob(raw, 2, 3);
    const z = Math.log(Array.from(raw).reduce((s, x) => s + Math.exp(x), 0));
    expect(lp.logprob).toBeCloseTo(2 - z, 6);
    expect(lp.top.map((t) => t.id)).toEqual([1, 4, 2]);
    expect(lp.top[0]!.logprob).toBeGreaterThanOrEqual(lp.top[1]!.logprob);
    expect(lp.top.reduce((s, t) => s + Math.exp(t.logprob), 0)).toBeLessThanOrEqual(1);
    expect(tokenLogprob(raw, 0, 0).top).toEqual([]);
    // Huge logits stay finite.
    const big = Float32Array.from([1e30, -1e30, 0]);
    const b = tokenLogprob(big, 1, 2);
    expect(Number.isFinite(b.logprob)).toBe(true);
    expect(b.top[0]).toEqual({ id: 0, logprob: 0 });
  });
});

describe('min-p', () => {
  it('drops tokens less probable than min_p × the best, with and without top-k and top-p', () => {
    // Probabilities relative to the best: 1, 0.5, 0.25, 0.125.
    const l = () => Float32Array.from([0, -Math.LN2, -2 * Math.LN2, -3 * Math.LN2]);
    for (const extra of [{}, { topK: 3 }, { topP: 0.99 }]) {
      const rng = new SeededRng(5);
      const seen = new Set(Array.from({ length: 400 }, () => drawToken(l(), { temperature: 1, topP: 1, topK: 0, minP: 0.3, ...extra }, rng)));
      expect([...seen].sort(), JSON.stringify(extra)).toEqual([0, 1]);
    }
    // Off: all four appear.
    const rng = new SeededRng(5);
    const all = new Set(Array.from({ length: 400 }, () => drawToken(l(), { temperature: 1, topP: 1, topK: 0 }, rng)));
    expect(all.size).toBe(4);
  });
});
