import { describe, expect, it } from 'vitest';
import { fusionWeights, pseudoQuery } from '../../src/services/rag/calibration.js';

describe('pseudoQuery', () => {
  it('takes the middle sentence of 5 to 40 words', () => {
    const text = 'Short one. This sentence has exactly six words. And here is the second usable sentence of the chunk. Tiny end.';
    expect(pseudoQuery(text)).toBe('And here is the second usable sentence of the chunk.');
    expect(pseudoQuery('Title\n\nA paragraph without a final stop but with enough words in it')).toBe('A paragraph without a final stop but with enough words in it');
  });

  it('falls back to 12 words from the middle, and to nothing for a tiny chunk', () => {
    const words = Array.from({ length: 100 }, (_, i) => `w${i}`).join(' ');
    expect(pseudoQuery(words)).toBe(Array.from({ length: 12 }, (_, i) => `w${44 + i}`).join(' '));
    expect(pseudoQuery('too few words')).toBeNull();
  });
});

describe('fusionWeights', () => {
  it('gives the better retriever 1 and the other the square of its share of the better MRR', () => {
    expect(fusionWeights(64, 0.9, 0.45)).toEqual({ lexical: 1, dense: 0.25, queries: 64, lexicalMrr: 0.9, denseMrr: 0.45 });
    expect(fusionWeights(64, 0.2, 0.8)).toEqual({ lexical: 0.0625, dense: 1, queries: 64, lexicalMrr: 0.2, denseMrr: 0.8 });
    expect(fusionWeights(64, 0.96, 0.04).dense).toBeCloseTo(0.0017, 4);
    expect(fusionWeights(10, 0.7, 0.7)).toMatchObject({ lexical: 1, dense: 1 });
  });

  it('is plain RRF when nothing could be measured', () => {
    expect(fusionWeights(0, 0, 0)).toEqual({ lexical: 1, dense: 1, queries: 0, lexicalMrr: 0, denseMrr: 0 });
    expect(fusionWeights(5, 0, 0)).toMatchObject({ lexical: 1, dense: 1 });
  });
});
