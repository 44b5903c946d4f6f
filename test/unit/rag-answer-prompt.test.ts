import { describe, expect, it } from 'vitest';
import { fitAnswerPrompt, renderAnswerPrompt, type SourceChunk } from '../../src/services/rag/answer-prompt.js';

const words = (s: string) => s.split(/\s+/).filter(Boolean).length;
const chunk = (i: number, n = 20): SourceChunk => ({ docId: `doc${i}`, text: Array.from({ length: n }, (_, j) => `w${i}_${j}`).join(' ') });

describe('RAG answer prompt', () => {
  it('numbers the sources best first and ends with the question', () => {
    const p = renderAnswerPrompt('  Who is Lily? ', [chunk(1, 2), chunk(2, 2)]);
    expect(p).toContain('[1] (doc1) w1_0 w1_1\n[2] (doc2) w2_0 w2_1\n');
    expect(p.endsWith('Question: Who is Lily?\nAnswer:')).toBe(true);
    expect(renderAnswerPrompt('q', [])).toContain('Sources:\n(none)\n');
    // `$&` and friends in the texts stay literal.
    expect(renderAnswerPrompt('cost $&?', [{ docId: 'd', text: 'price $1' }])).toContain('[1] (d) price $1\n\nQuestion: cost $&?');
  });

  it('uses as many chunks as fit with the answer reserve, a prefix of the ranking', () => {
    const ranked = Array.from({ length: 10 }, (_, i) => chunk(i + 1));
    const all = words(renderAnswerPrompt('q', ranked));
    expect(fitAnswerPrompt('q', ranked, { contextWindow: all + 10, reserve: 10, countTokens: words }).used).toBe(10);
    for (const window of [60, 100, 150, 200]) {
      const r = fitAnswerPrompt('q', ranked, { contextWindow: window, reserve: 16, countTokens: words });
      expect(words(r.prompt) + 16).toBeLessThanOrEqual(window);
      // One more would not have fitted.
      if (r.used < ranked.length) expect(words(renderAnswerPrompt('q', ranked.slice(0, r.used + 1))) + 16).toBeGreaterThan(window);
      expect(r.prompt).toBe(renderAnswerPrompt('q', ranked.slice(0, r.used)));
    }
  });

  it('never fails: with nothing fitting it holds no source', () => {
    const r = fitAnswerPrompt('q', [chunk(1, 500)], { contextWindow: 64, reserve: 1000, countTokens: words });
    expect(r.used).toBe(0);
    expect(r.prompt).toContain('(none)');
  });
});
