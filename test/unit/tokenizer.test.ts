import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AutoTokenizer, env, type PreTrainedTokenizer } from '@huggingface/transformers';
import { describe, expect, it } from 'vitest';
import { referenceEncode, type Llama2cVocab } from '../../src/engine/llama2c.js';
import { buildSyntheticVocab } from '../../src/engine/synthetic-vocab.js';
import {
  buildMerges,
  buildTokenizerConfig,
  buildTokenizerJson,
  wordSplitRegex,
  wordsInVocabEncodeWhole,
  hfTokenStrings,
} from '../../src/engine/tokenizer-export.js';
import { compareOn, exportTokenizer, FIXED, randomStrings, roundTrip, type ExportedJson } from '../helpers/tokenizer-cases.js';

env.allowRemoteModels = false;

// The stories260K tokenizer's own tests (tok512.bin) are in test/integration/tokenizer-stories.test.ts.

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
