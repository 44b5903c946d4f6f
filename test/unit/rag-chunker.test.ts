import { describe, expect, it } from 'vitest';
import { chunkId, chunkText, contentTokenCounter, type TextChunk } from '../../src/services/rag/chunker.js';

/** Whitespace tokens plus [CLS] and [SEP], as the fake embedder counts. */
const words = contentTokenCounter((t) => (t.match(/\S+/g)?.length ?? 0) + 2);
/** A subword-ish tokenizer: a token per 4 characters of each word, plus one special token. */
const subwords = contentTokenCounter((t) => (t.match(/\S+/g) ?? []).reduce((n, w) => n + Math.ceil(w.length / 4), 0) + 1);

const opts = (maxTokens: number, overlap: number, tokens = words.tokens) => ({ maxTokens, overlap, tokens });

/** `count` sentences of `len` words each: "s3w0 s3w1 ... s3w9." */
const sentences = (count: number, len: number, tag = 's') =>
  Array.from({ length: count }, (_, i) => `${Array.from({ length: len }, (_, j) => `${j === 0 ? 'S' : ''}${tag}${i}w${j}`).join(' ')}.`).join(' ');

const cp = (text: string, c: TextChunk) => [...text].slice(c.start, c.end).join('');

function expectWellFormed(text: string, chunks: TextChunk[], max: number, tokens = words.tokens) {
  chunks.forEach((c, i) => {
    expect(c.ordinal).toBe(i);
    expect(cp(text, c)).toBe(c.text);
    expect(c.tokens).toBe(tokens(c.text));
    expect(c.tokens).toBeLessThanOrEqual(max);
    expect(c.text.trim()).toBe(c.text);
  });
  // Every word of the text is in some chunk, in order.
  const covered = chunks.flatMap((c) => c.text.split(/\s+/));
  expect(new Set(covered)).toEqual(new Set(text.split(/\s+/).filter(Boolean)));
  for (let i = 1; i < chunks.length; i++) {
    expect(chunks[i]!.start).toBeGreaterThan(chunks[i - 1]!.start);
    expect(chunks[i]!.end).toBeGreaterThan(chunks[i - 1]!.end);
  }
}

describe('chunkText', () => {
  it('keeps a short document whole', () => {
    const text = '  Hello there, world.\n\nSecond paragraph.  ';
    const chunks = chunkText(text, opts(256, 32));
    expect(chunks).toEqual([{ ordinal: 0, start: 2, end: 40, text: 'Hello there, world.\n\nSecond paragraph.', tokens: 5 }]);
    expect(chunkText('   \n\n  ', opts(256, 32))).toEqual([]);
  });

  it('fills chunks up to the budget, every word covered, spans exact', () => {
    const text = sentences(60, 10);
    const chunks = chunkText(text, opts(64, 8));
    expectWellFormed(text, chunks, 64);
    expect(chunks.length).toBeGreaterThan(10);
    // At least MIN_FILL of the budget, but for the last.
    for (const c of chunks.slice(0, -1)) expect(c.tokens).toBeGreaterThanOrEqual(32);
  });

  it('ends chunks at sentence ends and starts overlaps at sentence starts', () => {
    const text = sentences(40, 10);
    const chunks = chunkText(text, opts(64, 16));
    for (const c of chunks.slice(0, -1)) expect(c.text.endsWith('.')).toBe(true);
    for (const c of chunks) expect(c.text).toMatch(/^S/);
    for (let i = 1; i < chunks.length; i++) {
      const prev = chunks[i - 1]!;
      const shared = prev.end - chunks[i]!.start;
      // One 10-word sentence of overlap: within the 16 allowed, and at a sentence start.
      expect(shared).toBeGreaterThan(0);
      expect(words.tokens(prev.text.slice(prev.text.length - shared))).toBeLessThanOrEqual(16);
    }
  });

  it('prefers paragraph ends to sentence ends once a chunk is half full', () => {
    const para = (i: number) => sentences(4, 10, `p${i}s`);
    const text = Array.from({ length: 8 }, (_, i) => para(i)).join('\n\n');
    const chunks = chunkText(text, opts(100, 0));
    expectWellFormed(text, chunks, 100);
    // Two 40-word paragraphs fit in 100 tokens, three do not: each chunk is two whole paragraphs.
    expect(chunks).toHaveLength(4);
    for (const c of chunks) expect(c.text.split('\n\n')).toHaveLength(2);
  });

  it('with no overlap, chunks partition the words', () => {
    const text = sentences(30, 7);
    const chunks = chunkText(text, opts(50, 0));
    expect(chunks.map((c) => c.text).join(' ')).toBe(text);
  });

  it('overlaps by whole words when no sentence starts close enough', () => {
    const text = Array.from({ length: 300 }, (_, i) => `w${i}`).join(' ');
    const chunks = chunkText(text, opts(50, 10));
    expectWellFormed(text, chunks, 50);
    for (let i = 1; i < chunks.length; i++) {
      const prevWords = chunks[i - 1]!.text.split(' ');
      const nextWords = chunks[i]!.text.split(' ');
      expect(nextWords.slice(0, 10)).toEqual(prevWords.slice(-10));
    }
    expect(chunks[0]!.tokens).toBe(50);
  });

  it('does not end sentences at abbreviations, initials or list numbers', () => {
    const filler = (n: number) => Array.from({ length: n }, (_, i) => `f${i}`).join(' ');
    const text = `${filler(20)} e.g. Something J. Smith said 3. Things ${filler(20)}. Next sentence ${filler(10)}`;
    const chunks = chunkText(text, opts(40, 0));
    expect(chunks[0]!.text.endsWith('e.g.')).toBe(false);
    expect(chunks[0]!.text.endsWith('J.')).toBe(false);
    expect(chunks[0]!.text.endsWith('3.')).toBe(false);
  });

  it('cuts a sentence longer than the budget at words, and a word longer than the budget by characters', () => {
    const long = Array.from({ length: 200 }, (_, i) => `x${i}`).join(' ');
    const chunks = chunkText(long, opts(30, 5));
    expectWellFormed(long, chunks, 30);

    const blob = 'A'.repeat(1000);
    const text = `Intro words here. ${blob} tail.`;
    const cut = chunkText(text, opts(20, 4, subwords.tokens));
    for (const c of cut) {
      expect(cp(text, c)).toBe(c.text);
      expect(c.tokens).toBeLessThanOrEqual(20);
    }
    expect(cut.map((c) => c.text).join('').replace(/\s/g, '')).toContain(blob);
  });

  it('counts spans in code points, whatever the UTF-16 length', () => {
    const text = `${'😀 emoji '.repeat(40)}\n\n${'日本語の文 '.repeat(40)}𝒳 end.`;
    const chunks = chunkText(text, opts(25, 5));
    expectWellFormed(text, chunks, 25);
    expect(chunks.at(-1)!.end).toBe([...text].length);
  });

  it('shortens a chunk when the whole counts more tokens than its words did', () => {
    // Words cost one token each alone, but a chunk of n words costs 2n (a tokenizer that is not additive).
    const greedy = (t: string) => {
      const n = t.match(/\S+/g)?.length ?? 0;
      return n <= 1 ? n : 2 * n;
    };
    const text = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');
    const chunks = chunkText(text, opts(10, 0, greedy));
    for (const c of chunks) expect(greedy(c.text)).toBeLessThanOrEqual(10);
    expect(chunks.map((c) => c.text).join(' ')).toBe(text);
  });

  it('checks its options', () => {
    expect(() => chunkText('x', opts(0, 0))).toThrow(RangeError);
    expect(() => chunkText('x', opts(10, 10))).toThrow(RangeError);
    expect(() => chunkText('x', opts(10, -1))).toThrow(RangeError);
  });
});

describe('contentTokenCounter', () => {
  it('takes the special tokens off', () => {
    expect(words.overhead).toBe(2);
    expect(words.tokens('')).toBe(0);
    expect(words.tokens('one two three')).toBe(3);
  });
});

describe('chunkId', () => {
  it('is stable across runs with the same options, unique within a document, and changes with the cut', () => {
    const text = sentences(50, 9);
    const a = chunkText(text, opts(60, 12)).map((c) => chunkId('doc-1', c));
    const b = chunkText(text, opts(60, 12)).map((c) => chunkId('doc-1', c));
    expect(a).toEqual(b);
    expect(new Set(a).size).toBe(a.length);
    for (const id of a) expect(id).toMatch(/^ch_[0-9a-f]{24}$/);
    const other = chunkText(text, opts(80, 12)).map((c) => chunkId('doc-1', c));
    expect(other.filter((id) => a.includes(id)).length).toBeLessThan(other.length);
    expect(chunkText(text, opts(60, 12)).map((c) => chunkId('doc-2', c)).some((id) => a.includes(id))).toBe(false);
  });
});
