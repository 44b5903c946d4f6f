import { describe, expect, it } from 'vitest';
import { serializeLlama2cCheckpoint, serializeLlama2cTokenizer } from '../../bench/llamacpp/llama2c-writer.js';
import { parseLlama2cCheckpoint, parseLlama2cTokenizer } from '../../src/engine/llama2c.js';
import { getPreset } from '../../src/engine/presets.js';
import { randomLlamaWeights } from '../../src/engine/random-weights.js';
import { buildSyntheticVocab } from '../../src/engine/synthetic-vocab.js';

// The llama.cpp side-by-side bench (bench/llamacpp.ts) hands llama.cpp our weights as a llama2.c checkpoint.
describe('llama2.c writer', () => {
  it('writes a checkpoint that parses back to the same weights (tied classifier)', () => {
    const w = randomLlamaWeights(getPreset('tiny'), 7);
    const buf = serializeLlama2cCheckpoint(w);
    // The header says "shared classifier" with a positive vocabulary size.
    expect(buf.readInt32LE(5 * 4)).toBe(512);
    const back = parseLlama2cCheckpoint(buf);
    expect(back.config).toEqual(w.config);
    expect(back.ropeLayout).toBe('interleaved');
    expect(back.wcls).toBeUndefined();
    expect(Buffer.from(back.tokenEmbedding.buffer, back.tokenEmbedding.byteOffset, back.tokenEmbedding.byteLength).equals(Buffer.from(w.tokenEmbedding.buffer))).toBe(true);
    expect(back.rmsFinal).toEqual(w.rmsFinal);
    back.layers.forEach((l, i) => {
      for (const k of ['rmsAtt', 'wq', 'wk', 'wv', 'wo', 'rmsFfn', 'w1', 'w2', 'w3'] as const) expect(l[k], `layer ${i} ${k}`).toEqual(w.layers[i]![k]);
    });
  });

  it('writes an untied classifier after the legacy RoPE tables (negative vocabulary size)', () => {
    const w = randomLlamaWeights(getPreset('tiny'), 3);
    const wcls = Float32Array.from(w.tokenEmbedding, (v) => v * 2);
    const back = parseLlama2cCheckpoint(serializeLlama2cCheckpoint({ ...w, wcls }));
    expect(back.wcls).toEqual(wcls);
    expect(back.tokenEmbedding).toEqual(w.tokenEmbedding);
  });

  it('writes the legacy RoPE tables as llama2.c export.py does (cos then sin of pos * theta^(-2i/head_dim))', () => {
    const w = randomLlamaWeights(getPreset('tiny'), 1);
    const c = w.config;
    const buf = serializeLlama2cCheckpoint(w);
    const half = c.dim / c.nHeads / 2;
    const tableFloats = c.maxSeqLen * half;
    const tablesStart = buf.length - 2 * tableFloats * 4;
    const pos = 5;
    const i = 3;
    const angle = pos / 10000 ** ((2 * i) / (c.dim / c.nHeads));
    expect(buf.readFloatLE(tablesStart + (pos * half + i) * 4)).toBeCloseTo(Math.cos(angle), 6);
    expect(buf.readFloatLE(tablesStart + (tableFloats + pos * half + i) * 4)).toBeCloseTo(Math.sin(angle), 6);
  });

  it('refuses half-split RoPE weights', () => {
    expect(() => serializeLlama2cCheckpoint(randomLlamaWeights(getPreset('tiny'), 1, 0.02, 'half-split'))).toThrow(/permuted/);
  });

  it('writes a tokenizer.bin that parses back to the same pieces and scores', () => {
    const vocab = buildSyntheticVocab(512);
    const back = parseLlama2cTokenizer(serializeLlama2cTokenizer(vocab), 512);
    expect(back.pieces).toEqual(vocab.pieces);
    expect(back.scores).toEqual(vocab.scores);
    expect(back.maxTokenLength).toBe(vocab.maxTokenLength);
  });
});
