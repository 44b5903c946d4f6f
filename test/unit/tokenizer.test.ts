import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AutoTokenizer, env, type PreTrainedTokenizer } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pieceIndex, readLlama2cTokenizer, referenceDecode, referenceEncode, type Llama2cVocab } from '../../src/engine/llama2c.js';
import { mulberry32 } from '../../src/engine/random-weights.js';
import { buildSyntheticVocab } from '../../src/engine/synthetic-vocab.js';
import {
  buildMerges,
  buildTokenizerConfig,
  buildTokenizerJson,
  wordSplitRegex,
  wordsInVocabEncodeWhole,
  hfTokenStrings,
  writeTokenizerFiles,
} from '../../src/engine/tokenizer-export.js';

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
function randomStrings(vocab: Llama2cVocab, count: number, seed: number): string[] {
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

async function exportTokenizer(vocab: Llama2cVocab): Promise<{ dir: string; tokenizer: PreTrainedTokenizer }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tok-test-'));
  writeTokenizerFiles(vocab, dir, 512);
  return { dir, tokenizer: await AutoTokenizer.from_pretrained(dir) };
}

/** Loads a hand-edited tokenizer.json (to show what the export's checks guard against). */
async function loadTokenizerJson(json: object): Promise<{ dir: string; tokenizer: PreTrainedTokenizer }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tok-test-'));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(buildTokenizerConfig(512)));
  return { dir, tokenizer: await AutoTokenizer.from_pretrained(dir) };
}

/** `base` with extra pieces (and their scores) appended. */
function withPieces(base: Llama2cVocab, extra: [string, number][]): Llama2cVocab {
  const pieces = [...base.pieces, ...extra.map(([p]) => p)];
  const scores = Float32Array.from([...base.scores, ...extra.map(([, sc]) => sc)]);
  return { pieces, scores, maxTokenLength: Math.max(base.maxTokenLength, ...extra.map(([p]) => new TextEncoder().encode(p).length)) };
}

type ExportedJson = { pre_tokenizer: { type: string; pattern: { Regex: string } } | null; model: { ignore_merges: boolean } };

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

  it('splits text into words before every space and skips merging for whole-word tokens', () => {
    const json = buildTokenizerJson(vocab) as ExportedJson;
    expect(json.pre_tokenizer).toEqual({ type: 'Split', pattern: { Regex: '▁?[^▁]+|▁' }, behavior: 'Isolated', invert: false });
    expect(json.model.ignore_merges).toBe(true);
    const pre = (tokenizer as unknown as { _tokenizer: { pre_tokenizer: (t: string) => string[] } })._tokenizer.pre_tokenizer;
    expect(pre('▁Once▁upon▁▁a\n▁time▁')).toEqual(['▁Once', '▁upon', '▁', '▁a\n', '▁time', '▁']);
  });

  it('encodes a long text like run.c, word by word', () => {
    const text = [...FIXED, ...randomStrings(vocab, 150, 77)].join(' ');
    compareOn(vocab, tokenizer, [text, text + '  ', '\n' + text]);
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

describe('word splitting and whole-word tokens are emitted only where they cannot change an encoding', () => {
  const base = buildSyntheticVocab(3000);

  it('splits before every space when no piece has a space after its first character', () => {
    expect(wordSplitRegex(base)).toBe('▁?[^▁]+|▁');
    expect(wordsInVocabEncodeWhole(base, hfTokenStrings(base))).toBe(true);
  });

  it('keeps runs of spaces with the next word when pieces are made of spaces, and encodes like run.c', async () => {
    // Whitespace pieces as in Llama 2's vocabulary, scored high so that they merge first.
    const vocab = withPieces(base, [
      ['  ', 5],
      ['   ', 4],
      ['    ', 3],
      ['  the', 2],
      ['\n\n', 1],
    ]);
    expect(wordSplitRegex(vocab)).toBe('▁*[^▁]+|▁+');
    const { dir, tokenizer } = await exportTokenizer(vocab);
    try {
      const pre = (tokenizer as unknown as { _tokenizer: { pre_tokenizer: (t: string) => string[] } })._tokenizer.pre_tokenizer;
      expect(pre('▁▁▁the▁cat▁▁')).toEqual(['▁▁▁the', '▁cat', '▁▁']);
      expect(tokenizer.encode('   x')).toEqual(referenceEncode(vocab, '   x'));
      compareOn(vocab, tokenizer, [...FIXED, ...randomStrings(vocab, 1500, 11)]);
      roundTrip(vocab, tokenizer, FIXED);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('does not split when a piece has a space after another character, and still encodes like run.c', async () => {
    const vocab = withPieces(base, [
      ['e t', 5],
      ['e th', 4],
      ['d  ', 3],
    ]);
    expect(wordSplitRegex(vocab)).toBeNull();
    expect((buildTokenizerJson(vocab) as ExportedJson).pre_tokenizer).toBeNull();
    const { dir, tokenizer } = await exportTokenizer(vocab);
    try {
      // run.c merges across the space here: one token "e t" spans two words.
      const ids = referenceEncode(vocab, 'the the');
      expect(ids).toContain(vocab.pieces.indexOf('e th'));
      expect(tokenizer.encode('the the')).toEqual(ids);
      compareOn(vocab, tokenizer, [...FIXED, ...randomStrings(vocab, 1500, 12)]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a split that the check refuses would change the encoding', async () => {
    const vocab = withPieces(base, [['e t', 5]]);
    const json = buildTokenizerJson(vocab) as ExportedJson;
    json.pre_tokenizer = { type: 'Split', pattern: { Regex: '▁?[^▁]+|▁' }, behavior: 'Isolated', invert: false } as ExportedJson['pre_tokenizer'];
    const { dir, tokenizer } = await loadTokenizerJson(json);
    try {
      expect(tokenizer.encode('the tea')).not.toEqual(referenceEncode(vocab, 'the tea'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('merges whole-word tokens normally when run.c cannot reach one of them', async () => {
    // run.c on " abc": "ab" merges first, then neither " ab" nor "abc" is a piece, so " abc" is never made.
    const small = buildSyntheticVocab(259 + 97);
    const vocab = withPieces(small, [
      ['ab', -1],
      [' a', -2],
      ['bc', -3],
      [' abc', -4],
    ]);
    expect(referenceEncode(vocab, 'abc').map((id) => vocab.pieces[id])).toEqual(['\n<s>\n', ' ', 'ab', 'c']);
    expect(wordsInVocabEncodeWhole(vocab, hfTokenStrings(vocab))).toBe(false);
    const json = buildTokenizerJson(vocab) as ExportedJson;
    expect(json.pre_tokenizer).not.toBeNull();
    expect(json.model.ignore_merges).toBe(false);
    const exported = await loadTokenizerJson(json);
    const forced = await loadTokenizerJson({ ...json, model: { ...json.model, ignore_merges: true } });
    try {
      compareOn(vocab, exported.tokenizer, ['abc', 'x abc abcd', ' abc ', ...FIXED]);
      expect(forced.tokenizer.encode('abc')).not.toEqual(referenceEncode(vocab, 'abc'));
    } finally {
      fs.rmSync(exported.dir, { recursive: true, force: true });
      fs.rmSync(forced.dir, { recursive: true, force: true });
    }
  });
});
