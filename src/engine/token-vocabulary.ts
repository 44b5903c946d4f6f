import fs from 'node:fs';
import path from 'node:path';

/**
 * A tokenizer's token strings as the grammar engine reads them, with how
 * they spell text: `byte_level` (GPT-2's byte-to-unicode alphabet, "Ġ" a
 * space), `byte_fallback` (SentencePiece: "▁" a space, "<0xNN>" one byte),
 * or `raw` (the strings are the text).
 */
export interface TokenVocabulary {
  /** Indexed by token id, as long as the model's logits; "" for special, added and unused ids (never allowed under a constraint). */
  tokens: string[];
  kind: 'raw' | 'byte_fallback' | 'byte_level';
  /** Whether tokenization prepends a space to the text (SentencePiece's dummy prefix). */
  prependSpace: boolean;
}

type Json = Record<string, unknown>;

/** The decoder/pre-tokenizer types of a tokenizer.json section, a Sequence flattened. */
function typesOf(section: unknown): string[] {
  if (!section || typeof section !== 'object') return [];
  const s = section as Json;
  const inner = (s.decoders ?? s.pretokenizers ?? s.normalizers) as unknown[] | undefined;
  return [String(s.type ?? ''), ...(Array.isArray(inner) ? inner.flatMap(typesOf) : [])];
}

/**
 * Reads the vocabulary of a tokenizer.json (Hugging Face tokenizers format):
 * BPE and WordPiece vocabularies (token → id) and Unigram ones ([piece,
 * score] by id). `size` is the model's vocabulary (its logits' width).
 */
export function readTokenVocabulary(tokenizerJson: Json, size: number): TokenVocabulary {
  const model = (tokenizerJson.model ?? {}) as Json;
  const tokens: string[] = [];
  const vocab = model.vocab;
  if (Array.isArray(vocab)) {
    vocab.forEach((entry, id) => (tokens[id] = Array.isArray(entry) ? String(entry[0]) : String(entry)));
  } else if (vocab && typeof vocab === 'object') {
    for (const [piece, id] of Object.entries(vocab as Record<string, number>)) tokens[id] = piece;
  }
  // Added tokens (special or not) are whole strings outside the byte alphabet: a constraint never produces them.
  for (const added of (tokenizerJson.added_tokens ?? []) as Array<{ id: number }>) tokens[added.id] = '';
  const n = Math.max(size, tokens.length);
  for (let i = 0; i < n; i++) tokens[i] ??= '';
  const decoders = typesOf(tokenizerJson.decoder);
  const pre = [...typesOf(tokenizerJson.pre_tokenizer), ...typesOf(tokenizerJson.normalizer)];
  const kind = decoders.includes('ByteLevel') ? 'byte_level' : decoders.includes('ByteFallback') || model.byte_fallback === true ? 'byte_fallback' : 'raw';
  const prependSpace = pre.includes('Prepend') || pre.includes('Metaspace');
  return { tokens: tokens.slice(0, n), kind, prependSpace };
}

/** The vocabulary of a model directory's tokenizer.json. */
export function readTokenVocabularyFile(dir: string, size: number): TokenVocabulary {
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')) as Json;
  return readTokenVocabulary(json, size);
}
