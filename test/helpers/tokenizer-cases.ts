import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AutoTokenizer, type PreTrainedTokenizer } from '@huggingface/transformers';
import { expect } from 'vitest';
import { pieceIndex, referenceDecode, referenceEncode, type Llama2cVocab } from '../../src/engine/llama2c.js';
import { mulberry32 } from '../../src/engine/random-weights.js';
import { writeTokenizerFiles } from '../../src/engine/tokenizer-export.js';

// Strings and checks shared by the tokenizer export's tests on synthetic
// vocabularies (test/unit) and on stories260K's tok512.bin (test/integration).

export const FIXED = [
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
  '  two leading',
  'two trailing  ',
  '\n',
  '\t',
  ' \n ',
  '\n\nparagraph\n\n',
  'a\n\n\nb\t\t\tc',
  '    indented code();\n        more',
  'x' + ' '.repeat(17) + 'y',
  ' '.repeat(40),
  '\t \t \n \r\n',
];

/** Random strings biased towards vocabulary pieces so that merges, and their tie-breaking, are exercised. */
export function randomStrings(vocab: Llama2cVocab, count: number, seed: number): string[] {
  const rand = mulberry32(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)]!;
  const pieces = vocab.pieces.slice(259);
  const extra = ['é', 'ü', 'ñ', 'ß', '中', '文', '😀', '👍🏽', ' ', '  ', '\n', '\t', '.', ',', '!', '"', "'", '\u00a0'];
  // Runs of whitespace: word splitting happens at spaces, so they get extra weight.
  const white = [' ', '\n', '\t', '\r'];
  const whiteRun = (): string => {
    const len = 1 + Math.floor(rand() * (rand() < 0.8 ? 4 : 12));
    let w = '';
    for (let i = 0; i < len; i++) w += rand() < 0.6 ? ' ' : pick(white);
    return w;
  };
  return Array.from({ length: count }, () => {
    const n = Math.floor(rand() * 14);
    let s = rand() < 0.2 ? whiteRun() : '';
    for (let i = 0; i < n; i++) {
      const r = rand();
      if (r < 0.55) s += pick(pieces);
      else if (r < 0.72) s += pick(extra);
      else if (r < 0.82) s += whiteRun();
      else if (r < 0.91) s += String.fromCharCode(32 + Math.floor(rand() * 95));
      else s += String.fromCodePoint(0xa0 + Math.floor(rand() * 0x2f00)); // Latin to CJK punctuation; no surrogates
    }
    if (rand() < 0.2) s += whiteRun();
    // U+2581 is the tokenizer's space marker and "<s>"-style text is special
    // to Hugging Face tokenizers: both are documented differences, tested apart.
    return s.replaceAll('\u2581', '_').replace(/<\/?s>|<unk>/g, '<>');
  });
}

export async function exportTokenizer(vocab: Llama2cVocab): Promise<{ dir: string; tokenizer: PreTrainedTokenizer }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tok-test-'));
  writeTokenizerFiles(vocab, dir, 512);
  return { dir, tokenizer: await AutoTokenizer.from_pretrained(dir) };
}

export type ExportedJson = { pre_tokenizer: { type: string; pattern: { Regex: string } } | null; model: { ignore_merges: boolean } };

export function compareOn(vocab: Llama2cVocab, tokenizer: PreTrainedTokenizer, strings: string[]): void {
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

export function roundTrip(vocab: Llama2cVocab, tokenizer: PreTrainedTokenizer, strings: string[]): void {
  for (const s of strings) {
    const ids = tokenizer.encode(s);
    expect(tokenizer.decode(ids, { skip_special_tokens: true })).toBe(s);
    expect(referenceDecode(vocab, ids)).toBe(s);
  }
}
