import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { attrInt, ElemType, GraphBuilder } from '../../src/engine/onnx-builder.js';
import {
  dequantize,
  parseQuantizationConfig,
  parseQuantizeMode,
  quantizationConfigJson,
  quantizationInfo,
  quantizeBlockwise,
  QUANTIZE_DEFAULTS,
} from '../../src/engine/quantize.js';
import { SeededRng as Rng } from '../../src/engine/rng.js';
import { ConfigError, loadConfig } from '../../src/config.js';

/** A graph of one MatMulNBits node: Y[M, N] = A[M, K] @ dequant(B)^T. */
function matMulNBitsGraph(q: ReturnType<typeof quantizeBlockwise>, accuracyLevel: number): Uint8Array {
  const b = new GraphBuilder();
  const a = b.input('A', ElemType.FLOAT, ['M', q.k]);
  const w = b.uint8('B', [q.n, q.kBlocks, q.blobSize], q.data);
  const s = b.float('scales', [q.n * q.kBlocks], q.scales);
  b.opN(
    'MatMulNBits',
    [a, w, s],
    1,
    { K: attrInt(q.k), N: attrInt(q.n), bits: attrInt(q.bits), block_size: attrInt(q.blockSize), accuracy_level: attrInt(accuracyLevel) },
    ['Y'],
    'com.microsoft',
  );
  b.output('Y', ElemType.FLOAT, ['M', q.n]);
  return b.build('matmulnbits', 17, { 'com.microsoft': 1 });
}

function randomMatrix(rng: Rng, rows: number, cols: number, std: number): Float32Array {
  return Float32Array.from({ length: rows * cols }, () => (rng.next() * 2 - 1) * std);
}

/** Row-major A[m, k] @ W[n, k]^T in float64. */
function matmulT(a: Float32Array, w: Float32Array, m: number, k: number, n: number): Float64Array {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let acc = 0;
    for (let t = 0; t < k; t++) acc += a[i * k + t]! * w[j * k + t]!;
    y[i * n + j] = acc;
  }
  return y;
}

const maxAbs = (x: ArrayLike<number>, y: ArrayLike<number>) => {
  let d = 0;
  for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i]! - y[i]!));
  return d;
};

describe('quantizeBlockwise (MatMulNBits layout)', () => {
  it('packs 4-bit codes two to a byte, the first in the low nibble, and pads the last block with the zero point', () => {
    // One row, K = 20 (one block of 32, 12 padding codes). Largest magnitude -8 → scale 1, codes = value + 8.
    const w = Float32Array.from({ length: 20 }, (_, i) => (i === 0 ? -8 : (i % 15) - 7));
    const q = quantizeBlockwise(w, 1, 20, 4);
    expect([q.kBlocks, q.blobSize, q.data.length]).toEqual([1, 16, 16]);
    expect(q.scales[0]).toBe(1);
    expect(q.data[0]).toBe(0 | ((w[1]! + 8) << 4));
    expect(q.data[1]).toBe((w[2]! + 8) | ((w[3]! + 8) << 4));
    expect(q.data[15]).toBe(0x88); // padding: both nibbles the zero point 8
    expect(Array.from(dequantize(q))).toEqual(Array.from(w));
  });

  it('8-bit: one code a byte, zero point 128; the largest magnitude maps to -128 exactly, its opposite clamps to 127', () => {
    const w = Float32Array.from([2.54, -2.54, 0, 1.27, ...new Array(28).fill(0.01)]);
    const q = quantizeBlockwise(w, 1, 32, 8);
    expect(q.scales[0]).toBeCloseTo(2.54 / -128, 7);
    expect(q.data[0]).toBe(0); // -128 + 128
    expect(q.data[1]).toBe(255); // +128 clamps to +127
    expect(q.data[2]).toBe(128);
    expect(maxAbs(dequantize(q), w)).toBeLessThan(0.02 + 1e-6);
  });

  it('an all-zero block gets scale 0 and zero-point codes', () => {
    const q = quantizeBlockwise(new Float32Array(64), 2, 32, 4);
    expect(Array.from(q.scales)).toEqual([0, 0]);
    expect(q.data.every((x) => x === 0x88)).toBe(true);
  });

  it('error per weight is at most half a step (|scale| / 2), clamped values aside', () => {
    const rng = new Rng(3);
    const w = randomMatrix(rng, 8, 96, 0.5);
    for (const bits of [4, 8] as const) {
      const q = quantizeBlockwise(w, 8, 96, bits);
      const d = dequantize(q);
      for (let i = 0; i < w.length; i++) {
        const scale = Math.abs(q.scales[Math.floor(i / 96) * q.kBlocks + Math.floor((i % 96) / 32)]!);
        expect(Math.abs(d[i]! - w[i]!)).toBeLessThanOrEqual(scale * 1.0001); // clamp of +2^(b-1) costs one step at most
      }
    }
  });

  it('mse scales: less squared error than absmax, never more in any block', () => {
    const rng = new Rng(5);
    const w = randomMatrix(rng, 16, 96, 0.5);
    for (const bits of [4, 8] as const) {
      const err = (d: Float32Array) => {
        const perBlock = new Float64Array(16 * 3);
        d.forEach((x, i) => (perBlock[Math.floor(i / 96) * 3 + Math.floor((i % 96) / 32)]! += (x - w[i]!) ** 2));
        return perBlock;
      };
      const a = err(dequantize(quantizeBlockwise(w, 16, 96, bits)));
      const m = err(dequantize(quantizeBlockwise(w, 16, 96, bits, 32, 'mse')));
      m.forEach((e, i) => expect(e).toBeLessThanOrEqual(a[i]! * (1 + 1e-9)));
      expect(m.reduce((x, y) => x + y)).toBeLessThan(0.95 * a.reduce((x, y) => x + y));
    }
  });

  it.each([
    [8, 64, 48, 0, 'absmax'],
    [8, 70, 24, 0, 'absmax'], // K not a multiple of 32: the last block padded
    [4, 64, 48, 0, 'absmax'],
    [4, 70, 24, 0, 'absmax'],
    [4, 100, 16, 1, 'absmax'],
    [8, 100, 16, 1, 'absmax'],
    [4, 70, 24, 0, 'mse'],
    [8, 70, 24, 0, 'mse'],
  ] as const)('bits %i, K %i, N %i, accuracy_level %i, %s scales: onnxruntime-node MatMulNBits equals A @ dequantize(B)^T', async (bits, k, n, level, method) => {
    const rng = new Rng(bits * 1000 + k);
    const m = 5;
    const w = randomMatrix(rng, n, k, 0.3);
    const a = randomMatrix(rng, m, k, 1);
    const q = quantizeBlockwise(w, n, k, bits, 32, method);
    const session = await ort.InferenceSession.create(matMulNBitsGraph(q, level));
    const out = await session.run({ A: new ort.Tensor('float32', a, [m, k]) });
    const y = out.Y!.data as Float32Array;
    expect(out.Y!.dims).toEqual([m, n]);
    const expected = matmulT(a, dequantize(q), m, k, n);
    expect(maxAbs(y, expected)).toBeLessThan(1e-4);
    // and the quantization error itself is small relative to the product
    const exact = matmulT(a, w, m, k, n);
    const rel = maxAbs(expected, exact) / maxAbs(exact, new Float64Array(exact.length));
    expect(rel).toBeLessThan(bits === 8 ? 0.01 : 0.15);
    await session.release();
  });

  it('accuracy_level 4 (int8 activations) stays close to A @ dequantize(B)^T', async () => {
    const rng = new Rng(11);
    const [m, k, n] = [3, 96, 32];
    const w = randomMatrix(rng, n, k, 0.3);
    const a = randomMatrix(rng, m, k, 1);
    for (const bits of [4, 8] as const) {
      const q = quantizeBlockwise(w, n, k, bits);
      const session = await ort.InferenceSession.create(matMulNBitsGraph(q, 4));
      const y = (await session.run({ A: new ort.Tensor('float32', a, [m, k]) })).Y!.data as Float32Array;
      const expected = matmulT(a, dequantize(q), m, k, n);
      // int8 activations: about 1/127 of each block's largest |a| per product term
      expect(maxAbs(y, expected) / maxAbs(expected, new Float64Array(expected.length))).toBeLessThan(0.03);
      await session.release();
    }
  });
});

describe('quantization records', () => {
  it('round-trips through config.json', () => {
    for (const mode of ['int8', 'int4'] as const) {
      const info = quantizationInfo(QUANTIZE_DEFAULTS[mode]);
      expect(info.mode).toBe(mode);
      expect(parseQuantizationConfig(JSON.parse(JSON.stringify(quantizationConfigJson(info))))).toEqual(info);
    }
    expect(parseQuantizationConfig(undefined)).toBeUndefined();
    expect(() => parseQuantizationConfig({ bits: 3 })).toThrow(/quantization/);
  });

  it('parses modes strictly', () => {
    expect(parseQuantizeMode('int4')).toBe('int4');
    expect(() => parseQuantizeMode('q8_0')).toThrow(/int8, int4/);
  });

  it('MODEL_QUANTIZE: unset or empty is fp32; int8 and int4 are read; anything else fails at start-up naming the variable', () => {
    expect(loadConfig({}).modelQuantize).toBeUndefined();
    expect(loadConfig({ MODEL_QUANTIZE: '' }).modelQuantize).toBeUndefined();
    expect(loadConfig({ MODEL_QUANTIZE: 'int8' }).modelQuantize).toBe('int8');
    expect(loadConfig({ MODEL_QUANTIZE: 'int4' }).modelQuantize).toBe('int4');
    expect(() => loadConfig({ MODEL_QUANTIZE: 'q4_0' })).toThrow(ConfigError);
    expect(() => loadConfig({ MODEL_QUANTIZE: 'q4_0' })).toThrow(/MODEL_QUANTIZE/);
  });
});
