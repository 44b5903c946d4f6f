import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { buildLlamaOnnxFused, type FusedGraphOptions } from '../../src/engine/onnx-graph-fused.js';
import type { LlamaConfig, LlamaWeights } from '../../src/engine/onnx-graph.js';
import { getPreset } from '../../src/engine/presets.js';
import { dequantize, quantizeBlockwise, type FusedQuantizeOptions } from '../../src/engine/quantize.js';
import { randomLlamaWeights } from '../../src/engine/random-weights.js';
import { GqaHarness, runExternal } from '../helpers/fused-graph-harness.js';
import { maxAbsDiff } from '../helpers/ort-decoder.js';
import { referenceForward } from '../helpers/reference-forward.js';

const { onnx } = onnxProto;

// hiddenDim 72: the down projection's K is not a multiple of 32, so its last block is padded.
const config: LlamaConfig = { ...getPreset('tiny'), hiddenDim: 72 };
const weights = randomLlamaWeights(config, 7, 0.15);
const headDim = config.dim / config.nHeads;
const tokens = [1, 17, 300, 42, 42, 511, 5, 99, 250, 3];

/** What MatMulNBits multiplies by: each [out, in] matrix quantized and dequantized. */
const roundTrip = (w: Float32Array, rows: number, cols: number, bits: 4 | 8): Float32Array => dequantize(quantizeBlockwise(w, rows, cols, bits));

/**
 * The weights the quantized graph computes with. External attention folds
 * 1/sqrt(headDim) into wq before quantizing, so wq's reference is the scaled
 * matrix's round trip, unscaled.
 */
function dequantizedWeights(w: LlamaWeights, bits: 4 | 8, lmHead: boolean, qScale: number): LlamaWeights {
  const c = w.config;
  const kv = c.nKvHeads * headDim;
  return {
    ...w,
    layers: w.layers.map((l) => ({
      ...l,
      wq: roundTrip(l.wq.map((x) => x * qScale), c.dim, c.dim, bits).map((x) => x / qScale),
      wk: roundTrip(l.wk, kv, c.dim, bits),
      wv: roundTrip(l.wv, kv, c.dim, bits),
      wo: roundTrip(l.wo, c.dim, c.dim, bits),
      w1: roundTrip(l.w1, c.hiddenDim, c.dim, bits),
      w2: roundTrip(l.w2, c.dim, c.hiddenDim, bits),
      w3: roundTrip(l.w3, c.hiddenDim, c.dim, bits),
    })),
    ...(lmHead ? { wcls: roundTrip(w.wcls ?? w.tokenEmbedding, c.vocabSize, c.dim, bits) } : {}),
  };
}

async function lastLogits(opts: FusedGraphOptions): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(buildLlamaOnnxFused(weights, opts));
  const empty = Array.from({ length: 2 * config.nLayers }, () => new Float32Array(config.nKvHeads * headDim));
  const out = await runExternal(session, config, [tokens], [0], empty, 1);
  const logits = out.logits!.data as Float32Array;
  await session.release();
  return logits;
}

describe('buildLlamaOnnxFused with quantize (MatMulNBits)', () => {
  it.each([
    [8, false],
    [4, false],
    [8, true],
    [4, true],
  ] as const)('bits %i, lmHead %s: replaces every linear MatMul and declares the attributes', (bits, lmHead) => {
    const q: FusedQuantizeOptions = { bits, blockSize: 32, accuracyLevel: 4, lmHead };
    const graph = onnx.ModelProto.decode(buildLlamaOnnxFused(weights, { quantize: q })).graph as onnxProto.onnx.GraphProto;
    const weightNames = new Set(graph.initializer.map((i) => i.name));
    const nbits = graph.node.filter((n) => n.opType === 'MatMulNBits');
    // packed QKV, o_proj, gate/up, down per layer (+ the LM head)
    expect(nbits).toHaveLength(4 * config.nLayers + (lmHead ? 1 : 0));
    for (const n of nbits) {
      expect(n.domain).toBe('com.microsoft');
      const attrs = Object.fromEntries((n.attribute ?? []).map((a) => [a.name, Number(a.i)]));
      expect(attrs).toMatchObject({ bits, block_size: 32, accuracy_level: 4 });
      expect(n.input).toHaveLength(3); // A, B, scales: no zero points (symmetric)
    }
    // No float MatMul or Gemm against a weight remains (attention's products are activation × activation).
    const floatProducts = graph.node.filter((n) => ['MatMul', 'Gemm'].includes(n.opType!) && (n.input ?? []).some((i) => weightNames.has(i)));
    expect(floatProducts.map((n) => n.name)).toEqual(lmHead ? [] : [graph.node.find((n) => n.opType === 'Gemm')!.name]);
    // The token embedding stays float32 for the Gather.
    expect(graph.initializer.find((i) => i.name === 'model.embed_tokens.weight')?.dataType).toBe(onnx.TensorProto.DataType.FLOAT);
  });

  it.each([
    [8, false],
    [4, false],
    [8, true],
    [4, true],
  ] as const)('accuracy_level 0, bits %i, lmHead %s: logits equal the reference forward pass on the dequantized weights', async (bits, lmHead) => {
    const logits = await lastLogits({ quantize: { bits, blockSize: 32, accuracyLevel: 0, lmHead } });
    const ref = referenceForward(dequantizedWeights(weights, bits, lmHead, 1 / Math.sqrt(headDim)), tokens).at(-1)!;
    expect(maxAbsDiff(logits, ref)).toBeLessThan(2e-4);
  });

  it('accuracy levels 1 and 4 stay near level 0; 8-bit stays nearer fp32 than 4-bit', async () => {
    const fp32 = await lastLogits({});
    const spread = Math.max(...fp32) - Math.min(...fp32);
    const diffs: Record<string, number> = {};
    for (const bits of [8, 4] as const) {
      const base = await lastLogits({ quantize: { bits, blockSize: 32, accuracyLevel: 0, lmHead: false } });
      diffs[`${bits}`] = maxAbsDiff(base, fp32);
      for (const level of [1, 4]) {
        const l = await lastLogits({ quantize: { bits, blockSize: 32, accuracyLevel: level, lmHead: false } });
        expect(maxAbsDiff(l, base) / spread, `bits ${bits} level ${level}`).toBeLessThan(level === 1 ? 1e-5 : 0.05);
      }
    }
    expect(diffs['8']!).toBeLessThan(diffs['4']!);
    expect(diffs['8']! / spread).toBeLessThan(0.02);
  });

  it('a right-padded batch gives each row the logits it gets alone (rows stay independent at accuracy_level 4)', async () => {
    const q: FusedQuantizeOptions = { bits: 4, blockSize: 32, accuracyLevel: 4, lmHead: false };
    const session = await ort.InferenceSession.create(buildLlamaOnnxFused(weights, { quantize: q }));
    const rows = [tokens, [1, 300, 4], [1, 60, 61, 62, 63]];
    const empty = (n: number) => Array.from({ length: 2 * config.nLayers }, () => new Float32Array(n * config.nKvHeads * headDim));
    const batch = (await runExternal(session, config, rows, [0, 0, 0], empty(3), 1)).logits!.data as Float32Array;
    for (const [b, r] of rows.entries()) {
      const alone = (await runExternal(session, config, [r], [0], empty(1), 1)).logits!.data as Float32Array;
      expect(maxAbsDiff(batch.subarray(b * config.vocabSize, (b + 1) * config.vocabSize), alone)).toBeLessThan(1e-3);
    }
    await session.release();
  });

  it("gqa attention (no folded scale) runs quantized and matches its dequantized reference", async () => {
    const bits = 8;
    const h = new GqaHarness(await ort.InferenceSession.create(buildLlamaOnnxFused(weights, { attention: 'gqa', quantize: { bits, blockSize: 32, accuracyLevel: 0, lmHead: false } })), config, 1);
    const ref = referenceForward(dequantizedWeights(weights, bits, false, 1), tokens).at(-1)!;
    expect(maxAbsDiff(await h.run(0, [tokens], [tokens.length - 1], tokens.length), ref)).toBeLessThan(2e-4);
  });
});
