import { describe, expect, it } from 'vitest';
import { SeededRng } from '../../src/engine/rng.js';
import { applyRepetitionPenalty, argmax, nucleusCandidates, sampleToken } from '../../src/engine/sampling.js';

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

  it('the nucleus over a large vocabulary is the full-sort definition, flat or peaked', () => {
    const rng = new SeededRng(9);
    for (const spread of [0.05, 1, 8]) {
      const logits = Float32Array.from({ length: 5000 }, () => rng.next() * spread);
      for (const topP of [0.5, 0.9, 0.95]) {
        const max = Math.max(...logits);
        const w = Float64Array.from(logits, (l) => Math.exp((l - max) / 0.8));
        const total = w.reduce((a, b) => a + b, 0);
        // Reference: sort everything, keep the shortest prefix reaching top_p.
        const sorted = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b);
        const expected: number[] = [];
        let c = 0;
        for (const id of sorted) {
          expected.push(id);
          c += w[id]!;
          if (c >= topP * total) break;
        }
        const got = nucleusCandidates(logits, w, logits.length, total, topP, 1 / 0.8);
        expect(new Set(got), `spread ${spread} top_p ${topP}`).toEqual(new Set(expected));
        expect(got.length).toBe(expected.length);
      }
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
