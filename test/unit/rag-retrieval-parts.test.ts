import { describe, expect, it } from 'vitest';
import { ExactIndex } from '../../src/services/rag/exact-index.js';
import { matchesFilter } from '../../src/services/rag/filter.js';
import { reciprocalRankFusion, RRF_K } from '../../src/services/rag/fusion.js';
import { COMMON_TERM_SHARE, LEXICAL_EXACT_MAX, lexicalOptions, lexicalTerms, MAX_TERMS } from '../../src/services/rag/lexical.js';
import { TopK } from '../../src/services/rag/top-k.js';

describe('reciprocalRankFusion', () => {
  it('sums 1/(k + rank) over the lists and reports each rank', () => {
    const fused = reciprocalRankFusion([10, 20, 30], [30, 40]);
    expect(RRF_K).toBe(60);
    const byKey = new Map(fused.map((h) => [h.key, h]));
    expect(byKey.get(30)).toEqual({ key: 30, score: 1 / 63 + 1 / 61, lexicalRank: 3, denseRank: 1 });
    expect(byKey.get(10)).toEqual({ key: 10, score: 1 / 61, lexicalRank: 1, denseRank: null });
    expect(byKey.get(40)).toEqual({ key: 40, score: 1 / 62, lexicalRank: null, denseRank: 2 });
    // In both lists beats first in one; equal scores go to the better single rank, then the lower key.
    expect(fused.map((h) => h.key)).toEqual([30, 10, 20, 40]);
    expect(reciprocalRankFusion([1, 2], [2, 1]).map((h) => h.key)).toEqual([1, 2]);
    expect(reciprocalRankFusion([5], [6]).map((h) => h.key)).toEqual([5, 6]);
  });

  it('handles empty lists, duplicates and another k', () => {
    expect(reciprocalRankFusion([], [])).toEqual([]);
    expect(reciprocalRankFusion([], [7, 8]).map((h) => [h.key, h.denseRank, h.lexicalRank])).toEqual([[7, 1, null], [8, 2, null]]);
    expect(reciprocalRankFusion([1, 1, 2], []).map((h) => [h.key, h.lexicalRank])).toEqual([[1, 1], [2, 3]]);
    expect(reciprocalRankFusion([1], [], { k: 0 })[0]!.score).toBe(1);
  });

  it('a chunk ranked well by both retrievers beats one ranked first by only one', () => {
    const fused = reciprocalRankFusion([1, 2, 3, 4, 5], [9, 8, 7, 3, 6]);
    expect(fused[0]!.key).toBe(3);
  });

  it('weighs each list: a retriever of little weight reorders little', () => {
    const fused = reciprocalRankFusion([1, 2, 3], [3, 2, 9], { weights: { lexical: 1, dense: 0.01 } });
    expect(fused.map((h) => h.key)).toEqual([1, 2, 3, 9]);
    expect(fused[1]!.score).toBeCloseTo(1 / 62 + 0.01 / 62, 12);
    // Ranks are close in RRF (1/61 against 1/62): a tenth of a weight already reorders them.
    expect(reciprocalRankFusion([1, 2, 3], [3, 2, 9], { weights: { lexical: 1, dense: 0.1 } }).map((h) => h.key)).toEqual([2, 3, 1, 9]);
    expect(reciprocalRankFusion([1, 2], [2, 1], { weights: { lexical: 0, dense: 1 } }).map((h) => h.key)).toEqual([2, 1]);
  });
});

describe('lexicalTerms', () => {
  it('keeps lower-cased words and numbers, once each, without stop words or syntax', () => {
    expect(lexicalTerms('How do I compress a FILE with gzip -9?')).toEqual(['compress', 'file', 'gzip', '9']);
    expect(lexicalTerms('"NEAR" AND (x OR y*) col:val ^z')).toEqual(['near', 'x', 'y', 'col', 'val', 'z']);
    expect(lexicalTerms('Ünïcode café naïve Straße')).toEqual(['ünïcode', 'café', 'naïve', 'straße']);
    expect(lexicalTerms('ｆｕｌｌｗｉｄｔｈ')).toEqual(['fullwidth']);
  });

  it('keeps stop words when nothing else is left, and caps the count', () => {
    expect(lexicalTerms('what is the')).toEqual(['what', 'is', 'the']);
    expect(lexicalTerms('?!')).toEqual([]);
    const many = Array.from({ length: 50 }, (_, i) => `w${i}`).join(' ');
    expect(lexicalTerms(many)).toHaveLength(MAX_TERMS);
  });
});

describe('lexicalOptions', () => {
  it('prunes only above the exact size, at the common share of the index', () => {
    expect(lexicalOptions(LEXICAL_EXACT_MAX)).toEqual({});
    expect(lexicalOptions(100_000)).toEqual({ commonDocs: Math.ceil(COMMON_TERM_SHARE * 100_000) });
    expect(lexicalOptions(50, 0)).toEqual({ commonDocs: 3 });
  });
});

describe('matchesFilter', () => {
  it('requires every key, with exactly its value and type', () => {
    const meta = { pkg: 'gzip', year: 2020, stable: true, owner: null, tags: ['a'] };
    expect(matchesFilter(meta, {})).toBe(true);
    expect(matchesFilter(meta, { pkg: 'gzip', year: 2020 })).toBe(true);
    expect(matchesFilter(meta, { owner: null, stable: true })).toBe(true);
    expect(matchesFilter(meta, { year: '2020' })).toBe(false);
    expect(matchesFilter(meta, { tags: 'a' })).toBe(false);
    expect(matchesFilter(meta, { missing: null })).toBe(false);
    expect(matchesFilter({}, { toString: 'x' })).toBe(false);
  });
});

describe('TopK', () => {
  it('keeps the k best of a stream, best first', () => {
    const scores = Array.from({ length: 1000 }, (_, i) => Math.sin(i * 12.9898) * 43758.5453 % 1);
    const top = new TopK(10);
    scores.forEach((s, i) => top.push(i, s));
    const expected = scores.map((score, slot) => ({ slot, score: Math.fround(score) })).sort((a, b) => b.score - a.score).slice(0, 10);
    expect(top.sorted()).toEqual(expected);
    const none = new TopK(0);
    none.push(1, 1);
    expect(none.sorted()).toEqual([]);
  });
});

describe('ExactIndex', () => {
  it('finds the rows with the highest inner product, within the allowed ones', () => {
    const d = 6;
    const rows = [
      [1, 0, 0, 0, 0, 0],
      [0, 1, 0, 0, 0, 0],
      [0.6, 0.8, 0, 0, 0, 0],
      [0, 0, 0, 0, 0, 1],
    ];
    const index = new ExactIndex(Float32Array.from(rows.flat()), d);
    const q = Float32Array.from([0.8, 0.6, 0, 0, 0, 0]);
    const hits = index.search(q, 2);
    expect(hits.map((h) => h.slot)).toEqual([2, 0]);
    expect(hits[0]!.score).toBeCloseTo(0.96, 5);
    expect(index.search(q, 10)).toHaveLength(4);
    expect(index.search(q, 2, (slot) => slot !== 2).map((h) => h.slot)).toEqual([0, 1]);
    expect(() => index.search(Float32Array.from([1, 0]), 1)).toThrow(RangeError);
    expect(Array.from(index.row(1))).toEqual(rows[1]);
  });
});
