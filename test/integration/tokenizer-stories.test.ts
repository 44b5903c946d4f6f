import fs from 'node:fs';
import { env, type PreTrainedTokenizer } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLlama2cTokenizer, referenceEncode, type Llama2cVocab } from '../../src/engine/llama2c.js';
import { buildTokenizerJson } from '../../src/engine/tokenizer-export.js';
import { STORIES_TOKENIZER as TOK512, storiesTokenizer } from '../helpers/models.js';
import { compareOn, exportTokenizer, FIXED, randomStrings, roundTrip, type ExportedJson } from '../helpers/tokenizer-cases.js';

env.allowRemoteModels = false;

// The stories260K tokenizer exported to tokenizer.json; the export's tests on synthetic vocabularies are in test/unit/tokenizer.test.ts.

describe.skipIf(!storiesTokenizer.present)(storiesTokenizer.title('stories260K tokenizer (tok512.bin) exported to tokenizer.json'), () => {
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
