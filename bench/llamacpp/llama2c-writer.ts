/**
 * Writes weights and a vocabulary in llama2.c's file formats, the inverse of
 * src/engine/llama2c.ts: the legacy v0 checkpoint (`.bin`, what run.c and
 * llama.cpp's `llama-convert-llama2c-to-ggml` read) and the tokenizer
 * (`tokenizer.bin`). Used by the llama.cpp side-by-side bench to give
 * llama.cpp exactly the weights our engine serves.
 */
import { LLAMA2C_ROPE_THETA, type Llama2cVocab } from '../../src/engine/llama2c.js';
import type { LlamaWeights } from '../../src/engine/onnx-graph.js';

const HEADER_INTS = 7;

/**
 * The legacy v0 checkpoint: 7 int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size — negative when the classifier is stored
 * separately —, seq_len), then float32: token embedding, per-layer blocks in
 * llama2.c's order, the final norm, the two legacy RoPE tables
 * (freq_cis_real/imag, [seq_len, head_dim / 2] each, as llama2.c's
 * export.py writes them; readers skip them), then `wcls` when untied.
 * Only the interleaved RoPE layout can be written: llama2.c rotates adjacent
 * pairs, and so does llama.cpp's llama architecture for a converted checkpoint.
 */
export function serializeLlama2cCheckpoint(w: LlamaWeights): Buffer {
  const c = w.config;
  if (w.ropeLayout !== 'interleaved') throw new Error(`llama2.c checkpoints rotate adjacent pairs; weights with ${w.ropeLayout} RoPE need their q/k rows permuted first`);
  const headDim = c.dim / c.nHeads;
  const half = headDim / 2;
  const ropeTable = (fn: (x: number) => number): Float32Array => {
    const t = new Float32Array(c.maxSeqLen * half);
    for (let pos = 0; pos < c.maxSeqLen; pos++) {
      for (let i = 0; i < half; i++) t[pos * half + i] = fn(pos / LLAMA2C_ROPE_THETA ** ((2 * i) / headDim));
    }
    return t;
  };
  const perLayer = (k: keyof LlamaWeights['layers'][number]) => w.layers.map((l) => l[k]);
  const parts: Float32Array[] = [
    w.tokenEmbedding,
    ...perLayer('rmsAtt'),
    ...perLayer('wq'),
    ...perLayer('wk'),
    ...perLayer('wv'),
    ...perLayer('wo'),
    ...perLayer('rmsFfn'),
    ...perLayer('w1'),
    ...perLayer('w2'),
    ...perLayer('w3'),
    w.rmsFinal,
    ropeTable(Math.cos),
    ropeTable(Math.sin),
    ...(w.wcls ? [w.wcls] : []),
  ];
  const floats = parts.reduce((s, p) => s + p.length, 0);
  const out = Buffer.alloc(HEADER_INTS * 4 + floats * 4);
  const header = [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, w.wcls ? -c.vocabSize : c.vocabSize, c.maxSeqLen];
  header.forEach((v, i) => out.writeInt32LE(v, i * 4));
  let o = HEADER_INTS * 4;
  for (const p of parts) {
    // Float32Array bytes are little-endian on every platform Node runs on here (x86, arm64).
    out.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), o);
    o += p.byteLength;
  }
  return out;
}

/** llama2.c's `tokenizer.bin`: int32 max_token_length, then per token float32 score, int32 byte length, UTF-8 bytes. */
export function serializeLlama2cTokenizer(vocab: Llama2cVocab): Buffer {
  const enc = new TextEncoder();
  const bytes = vocab.pieces.map((p) => enc.encode(p));
  const out = Buffer.alloc(4 + bytes.reduce((s, b) => s + 8 + b.length, 0));
  out.writeInt32LE(vocab.maxTokenLength, 0);
  let o = 4;
  bytes.forEach((b, id) => {
    out.writeFloatLE(vocab.scores[id]!, o);
    out.writeInt32LE(b.length, o + 4);
    out.set(b, o + 8);
    o += 8 + b.length;
  });
  return out;
}
