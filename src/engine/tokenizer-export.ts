import fs from 'node:fs';
import path from 'node:path';
import { BOS_ID, BYTE_TOKEN_OFFSET, EOS_ID, UNK_ID, pieceIndex, referenceEncode, type Llama2cVocab } from './llama2c.js';

/** sentencepiece's visible space; Hugging Face Llama tokenizers store spaces in pieces as this. */
export const SPACE_MARK = '\u2581';

const SPECIAL_NAMES: Record<number, string> = { [UNK_ID]: '<unk>', [BOS_ID]: '<s>', [EOS_ID]: '</s>' };

const isByteId = (id: number): boolean => id >= BYTE_TOKEN_OFFSET && id < BYTE_TOKEN_OFFSET + 256;
const byteTokenName = (byte: number): string => `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`;

/** The Hugging Face token string for each llama2.c id. */
export function hfTokenStrings(vocab: Llama2cVocab): string[] {
  return vocab.pieces.map((piece, id) => {
    const special = SPECIAL_NAMES[id];
    if (special !== undefined) return special;
    if (isByteId(id)) return byteTokenName(id - BYTE_TOKEN_OFFSET);
    return piece.replaceAll(' ', SPACE_MARK);
  });
}

/**
 * Every merge `(a, b)` such that a, b and a+b are ordinary pieces, ranked by
 * the score of a+b, highest first. Hugging Face BPE then applies, at each
 * step, the lowest-ranked pair present (leftmost among equal pairs), which is
 * run.c's "highest-scoring adjacent pair, leftmost on ties" whenever distinct
 * merged pieces have distinct scores.
 */
export function buildMerges(vocab: Llama2cVocab): [string, string][] {
  const index = new Map<string, number>();
  vocab.pieces.forEach((p, id) => {
    // Specials and byte tokens never take part in run.c merges of real text
    // (their pieces are markup like "<0x41>" that adjacent text cannot spell
    // except by accident), so they are left out of the merge table.
    if (SPECIAL_NAMES[id] === undefined && !isByteId(id) && !index.has(p)) index.set(p, id);
  });
  const merges: { a: string; b: string; id: number; score: number }[] = [];
  for (const [piece, id] of index) {
    const chars = Array.from(piece); // split between code points only, as BPE words are code points
    let left = '';
    for (let k = 0; k < chars.length - 1; k++) {
      left += chars[k];
      const right = piece.slice(left.length);
      if (index.has(left) && index.has(right)) merges.push({ a: left, b: right, id, score: vocab.scores[id]! });
    }
  }
  merges.sort((x, y) => y.score - x.score || x.id - y.id || y.a.length - x.a.length);
  return merges.map((m) => [m.a.replaceAll(' ', SPACE_MARK), m.b.replaceAll(' ', SPACE_MARK)]);
}

const isSpaceChar = (ch: string): boolean => ch === ' ' || ch === SPACE_MARK;

/**
 * The regular expression that cuts normalized text ("▁"-spaced) into words
 * for BPE, or null when the vocabulary allows no split that is provably
 * harmless.
 *
 * run.c merges only adjacent tokens whose concatenation is a piece, so a
 * boundary between two characters x|y can never be crossed if no piece
 * contains "xy": no token will ever span it, and the merges on either side
 * never see each other. Merging then goes on in each word independently, and
 * the greedy "best pair, leftmost on ties" over the whole text performs
 * exactly each word's own greedy sequence, interleaved (a cross-boundary pair
 * is never a candidate, and a word's best pair stays its best whatever
 * happens elsewhere). Likewise for Hugging Face BPE, whose merges table holds
 * only pairs that concatenate to a piece. So splitting at such boundaries
 * changes no output, and lets transformers.js cache BPE results per word
 * (it caches words under 256 characters, never a whole long prompt).
 *
 * - No piece has a space after its first character (sentencepiece's usual
 *   vocabularies, stories260K, the synthetic presets): split before every
 *   "▁", runs of spaces included ("▁▁a" is "▁", "▁a").
 * - Spaces occur later in pieces but only after spaces (whitespace pieces
 *   such as "▁▁▁▁" in Llama 2's vocabulary): split only where a "▁" follows
 *   another character, so a run of spaces starts the word it precedes.
 * - Otherwise (a piece like "a▁b"): no split.
 *
 * A literal "▁" inside a piece counts as a space, since the exported
 * vocabulary spells spaces that way.
 */
export function wordSplitRegex(vocab: Llama2cVocab): string | null {
  let spaceAfterSpace = false;
  for (const piece of vocab.pieces) {
    const chars = Array.from(piece);
    for (let k = 1; k < chars.length; k++) {
      if (!isSpaceChar(chars[k]!)) continue;
      if (!isSpaceChar(chars[k - 1]!)) return null;
      spaceAfterSpace = true;
    }
  }
  // Each alternative set tiles any string, so the "words" are exactly the
  // matches whether a reader keeps matches and gaps (Rust tokenizers,
  // "Isolated") or splits around matches (transformers.js, which ignores the
  // behaviour field apart from "Removed").
  return spaceAfterSpace ? `${SPACE_MARK}*[^${SPACE_MARK}]+|${SPACE_MARK}+` : `${SPACE_MARK}?[^${SPACE_MARK}]+|${SPACE_MARK}`;
}

/**
 * Whether every ordinary token that a word could equal is what run.c makes of
 * that word. BPE with `ignore_merges` emits a word found in the vocabulary as
 * that one token without merging; that is only run.c's result when run.c's
 * greedy merges reach the whole piece. Words always start with "▁" (the
 * normalizer prepends one to every section of text between special tokens),
 * so only tokens spelled with a leading "▁" need checking; byte tokens and
 * specials never do.
 */
export function wordsInVocabEncodeWhole(vocab: Llama2cVocab, names: readonly string[]): boolean {
  const index = pieceIndex(vocab);
  for (let id = 0; id < names.length; id++) {
    const name = names[id]!;
    if (SPECIAL_NAMES[id] !== undefined || isByteId(id) || !name.startsWith(SPACE_MARK)) continue;
    if (name === SPACE_MARK) {
      if (index.get(' ') !== id) return false;
      continue;
    }
    // referenceEncode prepends the space itself; the text run.c sees is `name` with spaces.
    const ids = referenceEncode(vocab, name.slice(1).replaceAll(SPACE_MARK, ' '), index);
    if (ids.length !== 2 || ids[1] !== id) return false;
  }
  return true;
}

/**
 * A Hugging Face `tokenizer.json` (BPE with byte fallback) that encodes like
 * llama2.c's run.c: BOS first, one space prepended to non-empty text, spaces
 * as "▁", byte tokens for code points the vocabulary lacks; and decodes like
 * it: bytes reassembled, the first leading space dropped.
 *
 * Where the vocabulary allows (see {@link wordSplitRegex}) a pre-tokenizer
 * splits the text into words, so that transformers.js caches BPE per word;
 * and where whole words that are tokens are what run.c makes of them (see
 * {@link wordsInVocabEncodeWhole}) BPE skips merging for them. Neither changes
 * any encoding; both are left out when that cannot be shown from the vocabulary.
 */
export function buildTokenizerJson(vocab: Llama2cVocab): object {
  const names = hfTokenStrings(vocab);
  const seen = new Map<string, number>();
  names.forEach((n, id) => {
    const other = seen.get(n);
    if (other !== undefined) throw new Error(`tokens ${other} and ${id} both map to ${JSON.stringify(n)}`);
    seen.set(n, id);
  });
  const wordRegex = wordSplitRegex(vocab);
  const ignoreMerges = wordRegex !== null && wordsInVocabEncodeWhole(vocab, names);
  const special = (id: number): object => ({
    id,
    content: SPECIAL_NAMES[id],
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(UNK_ID), special(BOS_ID), special(EOS_ID)],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: SPACE_MARK },
        { type: 'Replace', pattern: { String: ' ' }, content: SPACE_MARK },
      ],
    },
    pre_tokenizer:
      wordRegex === null ? null : { type: 'Split', pattern: { Regex: wordRegex }, behavior: 'Isolated', invert: false },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [BOS_ID], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPACE_MARK }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: ignoreMerges,
      vocab: Object.fromEntries(names.map((n, id) => [n, id])),
      merges: buildMerges(vocab),
    },
  };
}

/** `tokenizer_config.json` to go with {@link buildTokenizerJson}. */
export function buildTokenizerConfig(maxLength: number): object {
  const added = (id: number): object => ({
    content: SPECIAL_NAMES[id],
    lstrip: false,
    normalized: false,
    rstrip: false,
    single_word: false,
    special: true,
  });
  return {
    tokenizer_class: 'LlamaTokenizer',
    add_bos_token: true,
    add_eos_token: false,
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    pad_token: null,
    // Cleanup would rewrite " ." to "." and break exact round trips.
    clean_up_tokenization_spaces: false,
    legacy: true,
    model_max_length: maxLength,
    padding_side: 'left',
    added_tokens_decoder: { [UNK_ID]: added(UNK_ID), [BOS_ID]: added(BOS_ID), [EOS_ID]: added(EOS_ID) },
  };
}

/** Writes `tokenizer.json` and `tokenizer_config.json` into `dir`. */
export function writeTokenizerFiles(vocab: Llama2cVocab, dir: string, maxLength: number): void {
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(buildTokenizerJson(vocab)));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(buildTokenizerConfig(maxLength), null, 2));
}
