import { describe, expect, it } from 'vitest';
import { IncrementalDecoder, StopMatcher } from '../../src/engine/tokenizer.js';

describe('StopMatcher', () => {
  it('passes text through without stop strings', () => {
    const m = new StopMatcher([]);
    expect(m.push('abc')).toBe('abc');
    expect(m.flush()).toBe('');
  });

  it('withholds a possible stop prefix, then releases it when it is not one', () => {
    const m = new StopMatcher(['END']);
    expect(m.push('hello E')).toBe('hello ');
    expect(m.push('x')).toBe('Ex');
    expect(m.stopped).toBe(false);
  });

  it('cuts at a stop string split across pieces', () => {
    const m = new StopMatcher(['\n\n', 'END']);
    expect(m.push('one E')).toBe('one ');
    expect(m.push('N')).toBe('');
    expect(m.push('D tail')).toBe('');
    expect(m.stopped).toBe(true);
    expect(m.flush()).toBe('');
  });

  it('cuts at the earliest of several stop strings', () => {
    const m = new StopMatcher(['b', 'a']);
    expect(m.push('xxab')).toBe('xx');
  });
});

describe('IncrementalDecoder', () => {
  // A toy tokenizer: ids are UTF-8 bytes; decode replaces incomplete sequences with U+FFFD like real decoders.
  const tok = { decode: (ids: readonly number[]) => Buffer.from(ids).toString('utf8') };

  it('holds back a character split across tokens', () => {
    const ids: number[] = [...Buffer.from('hi ')];
    const d = new IncrementalDecoder(tok, ids);
    const out: string[] = [];
    for (const b of Buffer.from('é😀!')) {
      ids.push(b);
      out.push(d.next());
    }
    out.push(d.flush());
    expect(out.join('')).toBe('é😀!');
    expect(out.some((p) => p.includes('\uFFFD'))).toBe(false);
  });
});
