import fs from 'node:fs';
import type { LlamaConfig, LlamaLayerWeights, LlamaWeights } from './onnx-graph.js';

/** llama2.c's fixed numerics (not stored in the checkpoint). */
export const LLAMA2C_ROPE_THETA = 10000;
export const LLAMA2C_NORM_EPS = 1e-5;

/** Token ids llama2.c's sentencepiece vocabularies reserve. */
export const UNK_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;
/** Byte-fallback token for byte `b` is `BYTE_TOKEN_OFFSET + b` (`<0xNN>`). */
export const BYTE_TOKEN_OFFSET = 3;

const HEADER_INTS = 7;

/** A llama2.c tokenizer: piece text (UTF-8 decoded) and merge score per id. */
export interface Llama2cVocab {
  pieces: string[];
  scores: Float32Array;
  maxTokenLength: number;
}

/** Parses a llama2.c checkpoint's header. A negative vocab size means the classifier is stored separately. */
export function parseLlama2cHeader(buf: Uint8Array): { config: LlamaConfig; sharedClassifier: boolean } {
  if (buf.byteLength < HEADER_INTS * 4) throw new Error('llama2.c checkpoint too short for its header');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const h = Array.from({ length: HEADER_INTS }, (_, i) => view.getInt32(i * 4, true));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = h as [number, number, number, number, number, number, number];
  if ([dim, hiddenDim, nLayers, nHeads, nKvHeads, seqLen].some((v) => v <= 0) || vocab === 0) {
    throw new Error(`not a llama2.c checkpoint (header ${h.join(', ')})`);
  }
  return {
    config: {
      dim,
      hiddenDim,
      nLayers,
      nHeads,
      nKvHeads,
      vocabSize: Math.abs(vocab),
      maxSeqLen: seqLen,
      ropeTheta: LLAMA2C_ROPE_THETA,
      normEps: LLAMA2C_NORM_EPS,
    },
    sharedClassifier: vocab > 0,
  };
}

/** Reads just the header of a llama2.c checkpoint file (not the weights). */
export function readLlama2cHeader(path: string): { config: LlamaConfig; sharedClassifier: boolean } {
  const header = Buffer.alloc(HEADER_INTS * 4);
  const fd = fs.openSync(path, 'r');
  try {
    fs.readSync(fd, header, 0, header.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  return parseLlama2cHeader(header);
}

/**
 * Reads a llama2.c `.bin` checkpoint (the legacy v0 format run.c reads):
 * 7-int32 header, then float32 weights in a fixed order, the two legacy RoPE
 * tables (skipped: the graph computes its own), then `wcls` when untied.
 */
export function parseLlama2cCheckpoint(buf: Uint8Array): LlamaWeights {
  const { config: c, sharedClassifier } = parseLlama2cHeader(buf);
  const headDim = c.dim / c.nHeads;
  const kvDim = c.nKvHeads * headDim;
  // Copy into an aligned buffer: Float32Array views need 4-byte alignment,
  // which a Buffer from the pool does not guarantee.
  const floatCount = (buf.byteLength - HEADER_INTS * 4) / 4;
  if (!Number.isInteger(floatCount)) throw new Error('llama2.c checkpoint size is not a whole number of floats');
  const data = new Float32Array(floatCount);
  new Uint8Array(data.buffer).set(buf.subarray(HEADER_INTS * 4, HEADER_INTS * 4 + floatCount * 4));

  let offset = 0;
  const take = (n: number): Float32Array => {
    if (offset + n > data.length) throw new Error(`llama2.c checkpoint truncated: need ${offset + n} floats, have ${data.length}`);
    const a = data.subarray(offset, offset + n);
    offset += n;
    return a;
  };
  const perLayer = (n: number): Float32Array[] => Array.from({ length: c.nLayers }, () => take(n));

  const tokenEmbedding = take(c.vocabSize * c.dim);
  const rmsAtt = perLayer(c.dim);
  const wq = perLayer(c.dim * c.nHeads * headDim);
  const wk = perLayer(c.dim * kvDim);
  const wv = perLayer(c.dim * kvDim);
  const wo = perLayer(c.nHeads * headDim * c.dim);
  const rmsFfn = perLayer(c.dim);
  const w1 = perLayer(c.hiddenDim * c.dim);
  const w2 = perLayer(c.dim * c.hiddenDim);
  const w3 = perLayer(c.hiddenDim * c.dim);
  const rmsFinal = take(c.dim);
  take(c.maxSeqLen * (headDim / 2)); // freq_cis_real (legacy)
  take(c.maxSeqLen * (headDim / 2)); // freq_cis_imag (legacy)
  const wcls = sharedClassifier ? undefined : take(c.vocabSize * c.dim);
  if (offset !== data.length) {
    throw new Error(`llama2.c checkpoint has ${data.length - offset} unexpected trailing floats`);
  }

  const layers: LlamaLayerWeights[] = Array.from({ length: c.nLayers }, (_, i) => ({
    rmsAtt: rmsAtt[i]!,
    wq: wq[i]!,
    wk: wk[i]!,
    wv: wv[i]!,
    wo: wo[i]!,
    rmsFfn: rmsFfn[i]!,
    w1: w1[i]!,
    w2: w2[i]!,
    w3: w3[i]!,
  }));
  // llama2.c rotates adjacent pairs (README: the interleaved layout).
  return { config: c, ropeLayout: 'interleaved', tokenEmbedding, layers, rmsFinal, ...(wcls ? { wcls } : {}) };
}

/** Reads and parses a llama2.c checkpoint file. */
export function readLlama2cCheckpoint(path: string): LlamaWeights {
  return parseLlama2cCheckpoint(fs.readFileSync(path));
}

/**
 * Parses a llama2.c `tok*.bin`: int32 max_token_length, then per token
 * float32 score, int32 byte length, bytes. `vocabSize` (from the checkpoint)
 * is checked when given; otherwise the file is read to its end.
 */
export function parseLlama2cTokenizer(buf: Uint8Array, vocabSize?: number): Llama2cVocab {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const decoder = new TextDecoder('utf-8');
  const maxTokenLength = view.getInt32(0, true);
  const pieces: string[] = [];
  const scores: number[] = [];
  let o = 4;
  while (o < buf.byteLength && (vocabSize === undefined || pieces.length < vocabSize)) {
    if (o + 8 > buf.byteLength) throw new Error('llama2.c tokenizer truncated');
    scores.push(view.getFloat32(o, true));
    const len = view.getInt32(o + 4, true);
    if (len < 0 || o + 8 + len > buf.byteLength) throw new Error(`llama2.c tokenizer: bad length ${len} for token ${pieces.length}`);
    pieces.push(decoder.decode(buf.subarray(o + 8, o + 8 + len)));
    o += 8 + len;
  }
  if (vocabSize !== undefined && pieces.length !== vocabSize) {
    throw new Error(`llama2.c tokenizer has ${pieces.length} tokens, checkpoint expects ${vocabSize}`);
  }
  if (pieces.length < BYTE_TOKEN_OFFSET + 256) throw new Error('llama2.c tokenizer lacks the 256 byte tokens');
  return { pieces, scores: Float32Array.from(scores), maxTokenLength };
}

/** Reads and parses a llama2.c tokenizer file. */
export function readLlama2cTokenizer(path: string, vocabSize?: number): Llama2cVocab {
  return parseLlama2cTokenizer(fs.readFileSync(path), vocabSize);
}

/** Piece → id lookup as run.c's str_lookup does it (first id wins for duplicate pieces). */
export function pieceIndex(vocab: Llama2cVocab): Map<string, number> {
  const index = new Map<string, number>();
  vocab.pieces.forEach((p, id) => {
    if (!index.has(p)) index.set(p, id);
  });
  return index;
}

/**
 * llama2.c run.c's `encode()` with bos=1, eos=0, reimplemented directly: the
 * reference the exported Hugging Face tokenizer is tested against. Prepends
 * BOS, prefixes non-empty text with a space, looks each code point up (bytes
 * as `<0xNN>` tokens when absent), then repeatedly merges the adjacent pair
 * with the highest score whose concatenation is a piece (leftmost on ties).
 */
export function referenceEncode(vocab: Llama2cVocab, text: string, index: Map<string, number> = pieceIndex(vocab)): number[] {
  const tokens: number[] = [];
  if (text.length > 0) {
    for (const ch of ' ' + text) {
      const id = index.get(ch);
      if (id !== undefined) tokens.push(id);
      else for (const byte of new TextEncoder().encode(ch)) tokens.push(byte + BYTE_TOKEN_OFFSET);
    }
  }
  for (;;) {
    let bestScore = -1e10;
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i < tokens.length - 1; i++) {
      const id = index.get(vocab.pieces[tokens[i]!]! + vocab.pieces[tokens[i + 1]!]!);
      if (id !== undefined && vocab.scores[id]! > bestScore) {
        bestScore = vocab.scores[id]!;
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx === -1) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  return [BOS_ID, ...tokens];
}

/**
 * run.c's decoding of a whole id sequence: byte tokens become raw bytes, the
 * leading space of a piece right after BOS is dropped, BOS/EOS print nothing.
 */
export function referenceDecode(vocab: Llama2cVocab, ids: number[]): string {
  const bytes: number[] = [];
  const enc = new TextEncoder();
  let prev = -1;
  for (const id of ids) {
    if (id === BOS_ID || id === EOS_ID) {
      prev = id;
      continue;
    }
    if (id >= BYTE_TOKEN_OFFSET && id < BYTE_TOKEN_OFFSET + 256) {
      bytes.push(id - BYTE_TOKEN_OFFSET);
    } else {
      let piece = vocab.pieces[id] ?? '';
      if (prev === BOS_ID && piece.startsWith(' ')) piece = piece.slice(1);
      bytes.push(...enc.encode(piece));
    }
    prev = id;
  }
  return new TextDecoder().decode(Uint8Array.from(bytes));
}
