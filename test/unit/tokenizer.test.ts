import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AutoTokenizer, env, type PreTrainedTokenizer } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pieceIndex, readLlama2cTokenizer, referenceDecode, referenceEncode, type Llama2cVocab } from '../../src/engine/llama2c.js';
import { mulberry32 } from '../../src/engine/random-weights.js';
import { buildSyntheticVocab } from '../../src/engine/synthetic-vocab.js';
import { buildMerges, writeTokenizerFiles } from '../../src/engine/tokenizer-export.js';

env.allowRemoteModels = false;

const TOK512 = path.resolve('../shared/models/stories260K/tok512.bin');
const hasTok512 = fs.existsSync(TOK512);
if (!hasTok512) console.warn(`skipping stories260K tokenizer tests: ${TOK512} not found`);

const FIXED = [
  '',
  ' ',
  '   ',
  'a',
  'Once upon a time',
  "Lily's mom said",
  'One day, a big bear',
  'Hello, world! How are you?',
  'The quick brown fox jumps over the lazy dog.',
  'tabs\tand\nnewlines\n\nand  double  spaces   ',
  ' leading space',
  'trailing space ',
  '"Quoted," she said; (parens) [brackets] {braces} 100% #1 @home a+b=c ~tilde',
  'Café crème brûlée, naïve façade, Ærøskøbing, Straße',
  '日本語のテキストと中文文本',
  '😀 emoji 👍🏽 family 👨‍👩‍👧 flags 🇫🇷',
  'mixed: héllo 世界 🌍 end',
  'numbers 0123456789 3.14159',
  '\u00a0non-breaking\u2009thin\u200bzero-width',
];

/** Random strings biased towards vocabulary pieces so that merges, and their tie-breaking, are exercised. */
function randomStrings(vocab: Llama2cVocab, count: number, seed: number): string[] {
  const rand = mulberry32(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)]!;
  const pieces = vocab.pieces.slice(259);
  const extra = ['é', 'ü', 'ñ', 'ß', '中', '文', '😀', '👍🏽', ' ', '  ', '\n', '\t', '.', ',', '!', '"', "'", '\u00a0'];
  return Array.from({ length: count }, () => {
    const n = Math.floor(rand() * 14);
    let s = '';
    for (let i = 0; i < n; i++) {
      const r = rand();
      if (r < 0.6) s += pick(pieces);
      else if (r < 0.8) s += pick(extra);
      else if (r < 0.9) s += String.fromCharCode(32 + Math.floor(rand() * 95));
      else s += String.fromCodePoint(0xa0 + Math.floor(rand() * 0x2f00)); // Latin to CJK punctuation; no surrogates
    }
    // U+2581 is the tokenizer's space marker and "<s>"-style text is special
    // to Hugging Face tokenizers: both are documented differences, tested apart.
    return s.replaceAll('\u2581', '_').replace(/<\/?s>|<unk>/g, '<>');
  });
}

async function exportTokenizer(vocab: Llama2cVocab): Promise<{ dir: string; tokenizer: PreTrainedTokenizer }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tok-test-'));
  writeTokenizerFiles(vocab, dir, 512);
  return { dir, tokenizer: await AutoTokenizer.from_pretrained(dir) };
}

function compareOn(vocab: Llama2cVocab, tokenizer: PreTrainedTokenizer, strings: string[]): void {
  const index = pieceIndex(vocab);
  const mismatches: string[] = [];
  for (const s of strings) {
    const expected = referenceEncode(vocab, s, index);
    const actual = tokenizer.encode(s);
    if (JSON.stringify(actual) !== JSON.stringify(expected)) {
      mismatches.push(`${JSON.stringify(s)}: run.c ${expected.join(',')} vs tokenizer.json ${actual.join(',')}`);
    }
  }
  expect(mismatches.slice(0, 5)).toEqual([]);
}

function roundTrip(vocab: Llama2cVocab, tokenizer: PreTrainedTokenizer, strings: string[]): void {
  for (const s of strings) {
    const ids = tokenizer.encode(s);
    expect(tokenizer.decode(ids, { skip_special_tokens: true })).toBe(s);
    expect(referenceDecode(vocab, ids)).toBe(s);
  }
}

describe.skipIf(!hasTok512)('stories260K tokenizer (tok512.bin) exported to tokenizer.json', () => {
  let vocab: Llama2cVocab;
  let dir: string;
  let tokenizer: PreTrainedTokenizer;

  beforeAll(async () => {
    vocab = readLlama2cTokenizer(TOK512);
    ({ dir, tokenizer } = await exportTokenizer(vocab));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('encodes like run.c on fixed strings', () => {
    compareOn(vocab, tokenizer, FIXED);
    expect(tokenizer.encode('Once upon a time')).toEqual([1, 403, 407, 261, 378]);
  });

  it('encodes like run.c on 4000 seeded random strings', () => {
    compareOn(vocab, tokenizer, randomStrings(vocab, 4000, 1234));
  });

  it('round-trips ASCII, accented, CJK and emoji text', () => {
    roundTrip(vocab, tokenizer, FIXED);
    roundTrip(vocab, tokenizer, randomStrings(vocab, 500, 99));
  });

  it('decodes a byte-fallback character split across tokens once all its bytes are there', () => {
    const ids = tokenizer.encode('中');
    expect(ids.length).toBe(1 + 1 + 3); // BOS, "▁", three byte tokens
    expect(tokenizer.decode(ids, { skip_special_tokens: true })).toBe('中');
  });

  it('has BOS/EOS/UNK as special tokens that decoding can skip', () => {
    expect(tokenizer.bos_token_id).toBe(1);
    expect(tokenizer.eos_token_id).toBe(2);
    expect(tokenizer.decode([1, 403, 407, 2], { skip_special_tokens: true })).toBe('Once upon');
  });

  // Known, deliberate differences from run.c (see tokenizer-export.ts):
  it('treats literal "<s>" text as the special token, unlike run.c', () => {
    expect(tokenizer.encode('<s>')).toEqual([1, 1]);
    expect(referenceEncode(vocab, '<s>')).not.toEqual([1, 1]);
  });
  it('reads a literal U+2581 as a space, unlike run.c', () => {
    expect(tokenizer.encode('\u2581x')).toEqual(tokenizer.encode(' x'));
  });
});

describe('synthetic byte-level vocabulary', () => {
  it('has exactly the requested size, unique pieces and prefix-closed merged pieces', () => {
    const v = buildSyntheticVocab(3000);
    expect(v.pieces).toHaveLength(3000);
    expect(new Set(v.pieces).size).toBe(3000);
    expect(v.pieces.slice(0, 4)).toEqual(['<unk>', '\n<s>\n', '\n</s>\n', '<0x00>']);
    const index = new Set(v.pieces);
    for (const p of v.pieces.slice(259)) {
      const chars = Array.from(p);
      if (chars.length > 1) expect(index.has(chars.slice(0, -1).join(''))).toBe(true);
    }
    expect(buildMerges(v).length).toBeGreaterThan(2000);
  });

  it('is deterministic and reaches distil size without error', () => {
    const big = buildSyntheticVocab(50257);
    expect(big.pieces).toHaveLength(50257);
    expect(new Set(big.pieces).size).toBe(50257);
    expect(buildSyntheticVocab(50257).pieces).toEqual(big.pieces);
  });

  it('exports a tokenizer.json that encodes like run.c and round-trips any text', async () => {
    const vocab = buildSyntheticVocab(3000);
    const { dir, tokenizer } = await exportTokenizer(vocab);
    try {
      compareOn(vocab, tokenizer, [...FIXED, ...randomStrings(vocab, 1500, 5)]);
      roundTrip(vocab, tokenizer, FIXED);
      expect(tokenizer.encode(' the').length).toBeLessThan(4);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
