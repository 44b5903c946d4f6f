import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildLlamaOnnxFused, gqaRotarySupported, newKeyName, newValueName, type FusedGraphOptions } from '../../src/engine/onnx-graph-fused.js';
import { buildLlamaOnnx, type LlamaConfig, type LlamaWeights } from '../../src/engine/onnx-graph.js';
import { getPreset } from '../../src/engine/presets.js';
import { randomLlamaWeights } from '../../src/engine/random-weights.js';
import { alone, GqaHarness, runExternal } from '../helpers/fused-graph-harness.js';
import { maxAbsDiff } from '../helpers/ort-decoder.js';
import { referenceForward } from '../helpers/reference-forward.js';

const { onnx } = onnxProto;
const TOL = 1e-4;
const STD = 0.15; // far from uniform attention, so RoPE and masking mistakes show

describe('buildLlamaOnnxFused (tiny preset)', () => {
  const config = getPreset('tiny');
  const weights = randomLlamaWeights(config, 7, STD);
  const headDim = config.dim / config.nHeads;
  let plain: ort.InferenceSession;
  let external: ort.InferenceSession;
  let gqa: ort.InferenceSession;

  beforeAll(async () => {
    plain = await ort.InferenceSession.create(buildLlamaOnnx(weights));
    external = await ort.InferenceSession.create(buildLlamaOnnxFused(weights));
    // Log level 4 (fatal only): one test provokes an error on purpose; keep ONNX Runtime from printing it.
    gqa = await ort.InferenceSession.create(buildLlamaOnnxFused(weights, { attention: 'gqa' }), { logSeverityLevel: 4 });
  });

  it('declares its I/O and imports com.microsoft', () => {
    const model = onnx.ModelProto.decode(buildLlamaOnnxFused(weights));
    expect(model.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([
      ['', 17],
      ['com.microsoft', 1],
    ]);
    const graph = model.graph as onnxProto.onnx.GraphProto;
    expect(graph.input.map((v) => v.name)).toEqual([
      'input_ids',
      'past_sequence_lengths',
      'logits_index',
      'past_key_values.0.key',
      'past_key_values.0.value',
      'past_key_values.1.key',
      'past_key_values.1.value',
    ]);
    expect(graph.output.map((v) => v.name)).toEqual(['logits', 'new.0.key', 'new.0.value', 'new.1.key', 'new.1.value']);
    const ops = new Set(graph.node.map((n) => `${n.domain || ''}:${n.opType}`));
    for (const op of ['com.microsoft:SkipSimplifiedLayerNormalization', ':SimplifiedLayerNormalization', 'com.microsoft:RotaryEmbedding', 'com.microsoft:FusedMatMul']) {
      expect(ops.has(op), op).toBe(true);
    }
    const g = onnx.ModelProto.decode(buildLlamaOnnxFused(weights, { attention: 'gqa' })).graph as onnxProto.onnx.GraphProto;
    expect(g.input.map((v) => v.name).slice(0, 4)).toEqual(['input_ids', 'seqlens_k', 'total_sequence_length', 'logits_index']);
    expect(g.node.filter((n) => n.opType === 'GroupQueryAttention')).toHaveLength(config.nLayers);
    expect(gqaRotarySupported(headDim)).toBe(true);
  });

  it('matches the run.c transcription at the last position (external attention)', async () => {
    const tokens = [1, 17, 300, 42, 42, 511, 5, 99, 250, 3];
    const ref = referenceForward(weights, tokens);
    const empty = Array.from({ length: 2 * config.nLayers }, () => new Float32Array(config.nKvHeads * headDim));
    const out = await runExternal(external, config, [tokens], [0], empty, 1);
    expect(out.logits!.dims).toEqual([1, config.vocabSize]);
    expect(maxAbsDiff(out.logits!.data as Float32Array, ref.at(-1)!)).toBeLessThan(TOL);
    // The new keys and values cover every prompt position.
    expect(out[newKeyName(0)]!.dims).toEqual([1, config.nKvHeads, tokens.length, headDim]);
    expect(out[newValueName(1)]!.dims).toEqual([1, config.nKvHeads, tokens.length, headDim]);
  });

  it("half-split RoPE weights (Hugging Face's layout): external and gqa attention match the transcription rotating halves", async () => {
    const halfSplit: LlamaWeights = { ...weights, ropeLayout: 'half-split' };
    const tokens = [1, 17, 300, 42, 42, 511, 5, 99, 250, 3];
    const ref = referenceForward(halfSplit, tokens).at(-1)!;
    const empty = Array.from({ length: 2 * config.nLayers }, () => new Float32Array(config.nKvHeads * headDim));
    const out = await runExternal(await ort.InferenceSession.create(buildLlamaOnnxFused(halfSplit)), config, [tokens], [0], empty, 1);
    expect(maxAbsDiff(out.logits!.data as Float32Array, ref)).toBeLessThan(TOL);
    for (const opts of [{ attention: 'gqa' }, { attention: 'gqa', rotaryInAttention: false }] satisfies FusedGraphOptions[]) {
      const h = new GqaHarness(await ort.InferenceSession.create(buildLlamaOnnxFused(halfSplit, opts)), config, 1);
      expect(maxAbsDiff(await h.run(0, [tokens], [tokens.length - 1], tokens.length), ref), JSON.stringify(opts)).toBeLessThan(TOL);
    }
  });

  const prompts = [
    [1, 5, 9, 200, 3, 77, 8],
    [1, 300, 4],
    [1, 60, 61, 62, 63],
  ];

  it('external: right-padded prefill, mixed-length decode and multi-row chunks equal each row alone', async () => {
    // The caller's side of external attention: store each run's new keys/values at the rows' next positions.
    const cap = 24;
    const n = prompts.length;
    const c = config;
    const past = Array.from({ length: 2 * c.nLayers }, () => new Float32Array(n * c.nKvHeads * cap * headDim));
    const lens = [0, 0, 0];
    const feed = async (rows: number[][]): Promise<Float32Array> => {
      const seq = Math.max(...rows.map((r) => r.length));
      const out = await runExternal(external, c, rows, lens, past, cap);
      for (let l = 0; l < c.nLayers; l++) {
        for (const [j, name] of [newKeyName(l), newValueName(l)].entries()) {
          const data = out[name]!.data as Float32Array;
          rows.forEach((r, b) => {
            for (let h = 0; h < c.nKvHeads; h++) {
              const src = (b * c.nKvHeads + h) * seq * headDim;
              past[2 * l + j]!.set(data.subarray(src, src + r.length * headDim), ((b * c.nKvHeads + h) * cap + lens[b]!) * headDim);
            }
          });
        }
      }
      rows.forEach((r, b) => (lens[b]! += r.length));
      return out.logits!.data as Float32Array;
    };
    const seqs = prompts.map((p) => [...p]);
    const check = async (logits: Float32Array): Promise<void> => {
      for (const [b, s] of seqs.entries()) expect(maxAbsDiff(logits.subarray(b * c.vocabSize, (b + 1) * c.vocabSize), await alone(plain, c, s))).toBeLessThan(TOL);
    };
    await check(await feed(prompts)); // (a)
    const next = [17, 18, 19];
    seqs.forEach((s, b) => s.push(next[b]!));
    await check(await feed(next.map((t) => [t]))); // (b)
    const chunks = [[30, 31], [32, 33, 34, 35], [36]];
    seqs.forEach((s, b) => s.push(...chunks[b]!));
    await check(await feed(chunks)); // (d), any batch size and mixed chunk lengths
  });

  it('gqa: right-padded prefill and mixed-length decode through subarray views equal each row alone', async () => {
    const h = new GqaHarness(gqa, config, 6);
    const first = 2; // rows 2..4 of the buffer: a view at a byte offset
    const L = Math.max(...prompts.map((p) => p.length));
    const prefill = await h.run(first, prompts, prompts.map((p) => p.length - 1), L);
    for (const [b, p] of prompts.entries()) {
      expect(maxAbsDiff(prefill.subarray(b * config.vocabSize, (b + 1) * config.vocabSize), await alone(plain, config, p))).toBeLessThan(TOL);
    }
    // In place, at the view's offset: rows outside the view are untouched, and
    // positions past what was written keep their old contents (no copy-and-clear).
    const k0 = h.bufs[0]!;
    expect(k0.subarray(0, first * h.rowFloats).every((x) => x === 777)).toBe(true);
    expect(k0.subarray((first + 3) * h.rowFloats).every((x) => x === 777)).toBe(true);
    const row = k0.subarray(first * h.rowFloats, (first + 1) * h.rowFloats);
    expect(row.subarray(0, L * headDim).every((x) => x !== 777)).toBe(true);
    expect(row.subarray(L * headDim, config.maxSeqLen * headDim).every((x) => x === 777)).toBe(true);

    const lens = prompts.map((p) => p.length);
    const next = [17, 18, 19];
    const step = await h.run(first, next.map((t) => [t]), lens, Math.max(...lens) + 1);
    for (const [b, p] of prompts.entries()) {
      expect(maxAbsDiff(step.subarray(b * config.vocabSize, (b + 1) * config.vocabSize), await alone(plain, config, [...p, next[b]!]))).toBeLessThan(TOL);
    }
  });

  it('gqa: a second chunk of a prompt works at batch 1 only', async () => {
    const h = new GqaHarness(gqa, config, 2);
    const long = [1, 44, 45, 46, 300, 301, 2, 9, 10, 11, 12];
    await h.run(0, [long.slice(0, 6)], [5], 6);
    const logits = await h.run(0, [long.slice(6)], [long.length - 1], long.length);
    expect(maxAbsDiff(logits, await alone(plain, config, long))).toBeLessThan(TOL);
    await h.run(0, [long.slice(0, 3), long.slice(0, 3)], [2, 2], 3);
    await expect(h.run(0, [long.slice(3, 6), long.slice(3, 6)], [5, 5], 6)).rejects.toThrow(/batch_size must be 1/);
  });

  it('headsFirst (q/k/v split into heads before the rotation) gives the same logits and new keys/values, grouped queries, both RoPE layouts', async () => {
    const tokens = [1, 17, 300, 42, 42, 511, 5, 99, 250, 3];
    const empty = Array.from({ length: 2 * config.nLayers }, () => new Float32Array(config.nKvHeads * headDim));
    for (const w of [weights, { ...weights, ropeLayout: 'half-split' } satisfies LlamaWeights]) {
      const [a, b] = await Promise.all(
        [{}, { headsFirst: true }].map(async (opts) => runExternal(await ort.InferenceSession.create(buildLlamaOnnxFused(w, opts)), config, [tokens], [0], empty, 1)),
      );
      expect(maxAbsDiff(a!.logits!.data as Float32Array, referenceForward(w, tokens).at(-1)!)).toBeLessThan(TOL);
      for (const name of ['logits', newKeyName(0), newValueName(1)]) {
        expect(Array.from(b![name]!.data as Float32Array), name).toEqual(Array.from(a![name]!.data as Float32Array));
      }
    }
  });

  it('supports multi-head attention, an untied classifier and unpacked q/k/v', async () => {
    const mha: LlamaConfig = { ...config, nKvHeads: config.nHeads, nLayers: 1 };
    const w: LlamaWeights = randomLlamaWeights(mha, 11, STD);
    w.wcls = randomLlamaWeights({ ...mha, nLayers: 0 }, 12, STD).tokenEmbedding;
    const tokens = [1, 2, 3, 400, 401];
    const ref = referenceForward(w, tokens).at(-1)!;
    const empty = Array.from({ length: 2 }, () => new Float32Array(mha.nKvHeads * headDim));
    for (const opts of [{}, { packedQkv: false }, { headsFirst: true }] satisfies FusedGraphOptions[]) {
      const s = await ort.InferenceSession.create(buildLlamaOnnxFused(w, opts));
      const out = await runExternal(s, mha, [tokens], [0], empty, 1);
      expect(maxAbsDiff(out.logits!.data as Float32Array, ref)).toBeLessThan(TOL);
    }
    for (const opts of [{ attention: 'gqa' }, { attention: 'gqa', packedQkv: false }, { attention: 'gqa', rotaryInAttention: false }] satisfies FusedGraphOptions[]) {
      const h = new GqaHarness(await ort.InferenceSession.create(buildLlamaOnnxFused(w, opts)), mha, 1);
      expect(maxAbsDiff(await h.run(0, [tokens], [tokens.length - 1], tokens.length), ref), JSON.stringify(opts)).toBeLessThan(TOL);
    }
  });
});
