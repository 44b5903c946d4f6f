import { describe, expect, it } from 'vitest';
import { SeededRng } from '../../src/engine/rng.js';
import { applyRepetitionPenalty, argmax, sampleToken } from '../../src/engine/sampling.js';

const base = { temperature: 1, topP: 1, topK: 0, repetitionPenalty: 1 };
const logits = () => Float32Array.from([1.0, 3.0, 2.0, 0.5, 2.9]);

describe('sampling', () => {
  it('argmax takes the largest, lowest index on ties', () => {
    expect(argmax(Float32Array.from([1, 5, 5, 2]))).toBe(1);
  });

  it('temperature 0 is greedy', () => {
    const rng = new SeededRng(1);
    for (let i = 0; i < 20; i++) expect(sampleToken(logits(), { ...base, temperature: 0 }, rng, [])).toBe(1);
  });

  it('the same seed gives the same draws; a different seed differs', () => {
    const draw = (seed: number) => {
      const rng = new SeededRng(seed);
      return Array.from({ length: 50 }, () => sampleToken(logits(), base, rng, []));
    };
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
  });

  it('top_k 1 is greedy whatever the seed', () => {
    const rng = new SeededRng(7);
    for (let i = 0; i < 20; i++) expect(sampleToken(logits(), { ...base, topK: 1 }, rng, [])).toBe(1);
  });

  it('top_k 2 only ever picks the two best', () => {
    const rng = new SeededRng(3);
    const seen = new Set(Array.from({ length: 200 }, () => sampleToken(logits(), { ...base, topK: 2 }, rng, [])));
    expect([...seen].sort()).toEqual([1, 4]);
  });

  it('top_p keeps the smallest prefix reaching the mass', () => {
    // Probabilities ~ [0.5, 0.3, 0.2]: top_p 0.6 keeps the first two only.
    const l = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
    const rng = new SeededRng(11);
    const seen = new Set(Array.from({ length: 300 }, () => sampleToken(l.slice(), { ...base, topP: 0.6 }, rng, [])));
    expect([...seen].sort()).toEqual([0, 1]);
  });

  it('draw frequencies follow the softmax', () => {
    const l = Float32Array.from([Math.log(0.7), Math.log(0.2), Math.log(0.1)]);
    const rng = new SeededRng(5);
    const counts = [0, 0, 0];
    for (let i = 0; i < 20_000; i++) counts[sampleToken(l.slice(), base, rng, [])]!++;
    expect(counts[0]! / 20_000).toBeCloseTo(0.7, 1);
    expect(counts[2]! / 20_000).toBeCloseTo(0.1, 1);
  });

  it('top_p over a large vocabulary equals the full-sort definition', () => {
    const rng = new SeededRng(9);
    const big = Float32Array.from({ length: 5000 }, () => rng.next() * 8);
    // The reference: sort everything, cut at top_p, draw with the same RNG.
    const reference = (seed: number) => {
      const ids = Array.from(big.keys()).sort((a, b) => big[b]! - big[a]! || a - b);
      const max = big[ids[0]!]!;
      const w = ids.map((i) => Math.exp((big[i]! - max) / 0.8));
      const total = w.reduce((a, b) => a + b, 0);
      let keep = ids.length;
      let c = 0;
      for (let i = 0; i < ids.length; i++) {
        c += w[i]! / total;
        if (c >= 0.9) {
          keep = i + 1;
          break;
        }
      }
      const mass = w.slice(0, keep).reduce((a, b) => a + b, 0);
      let r = new SeededRng(seed).next() * mass;
      for (let i = 0; i < keep; i++) {
        r -= w[i]!;
        if (r < 0) return ids[i];
      }
      return ids[keep - 1];
    };
    for (let seed = 0; seed < 30; seed++) {
      expect(sampleToken(big.slice(), { ...base, temperature: 0.8, topP: 0.9 }, new SeededRng(seed), [])).toBe(reference(seed));
    }
  });

  it('repetition penalty divides positive and multiplies negative logits of seen tokens', () => {
    const l = Float32Array.from([2, -2, 1]);
    applyRepetitionPenalty(l, [0, 1], 2);
    expect(Array.from(l)).toEqual([1, -4, 1]);
    // and it can change a greedy choice
    expect(sampleToken(Float32Array.from([2, 1.5]), { ...base, temperature: 0, repetitionPenalty: 2 }, new SeededRng(0), [0])).toBe(1);
  });
});
