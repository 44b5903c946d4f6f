import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { describe, expect, it, beforeAll } from 'vitest';
import { buildLlamaOnnx, permuteRopeRows, type LlamaConfig, type LlamaWeights } from '../../src/engine/onnx-graph.js';
import { pruneToOutputs } from '../../src/engine/onnx-prune.js';
import { getPreset, parameterCount, PRESETS } from '../../src/engine/presets.js';
import { randomLlamaWeights } from '../../src/engine/random-weights.js';
import { referenceForward } from '../helpers/reference-forward.js';
import { emptyPast, leftPad, logitsAt, maxAbsDiff, runStep } from '../helpers/ort-decoder.js';

const { onnx } = onnxProto;
const TOL = 1e-4;

// Larger-than-default init so attention is far from uniform and RoPE and
// masking mistakes change the logits visibly.
const STD = 0.15;

function dimsOf(v: onnxProto.onnx.IValueInfoProto): (number | string)[] {
  return (v.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue)));
}

async function sessionFor(w: LlamaWeights): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(buildLlamaOnnx(w));
}

describe('presets', () => {
  it('defines tiny and a distilgpt2-class preset', () => {
    expect(PRESETS.distil).toMatchObject({ dim: 768, nLayers: 6, nHeads: 12, hiddenDim: 2048, vocabSize: 50257, maxSeqLen: 1024 });
    const millions = parameterCount(getPreset('distil')) / 1e6;
    expect(millions).toBeGreaterThan(75);
    expect(millions).toBeLessThan(85);
    expect(() => getPreset('huge')).toThrow(/unknown preset "huge".*tiny, distil/);
  });
});

describe('permuteRopeRows', () => {
  it('moves interleaved pairs (2i, 2i+1) to (i, i + headDim/2) within each head', () => {
    // 2 heads of headDim 4, inDim 1: rows are their own indices.
    const w = Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(Array.from(permuteRopeRows(w, 2, 4, 1))).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
  });
});

describe('buildLlamaOnnx (tiny preset)', () => {
  const config = getPreset('tiny');
  const weights = randomLlamaWeights(config, 7, STD);
  const headDim = config.dim / config.nHeads;
  let bytes: Uint8Array;
  let session: ort.InferenceSession;

  beforeAll(async () => {
    bytes = buildLlamaOnnx(weights);
    session = await ort.InferenceSession.create(bytes);
  });

  it('declares exactly the transformers.js decoder I/O with symbolic dims', () => {
    // decode() fills repeated fields, so the concrete classes apply.
    const graph = onnx.ModelProto.decode(bytes).graph as onnxProto.onnx.GraphProto;
    const inputs = Object.fromEntries(graph.input.map((v) => [v.name, dimsOf(v)]));
    const outputs = Object.fromEntries(graph.output.map((v) => [v.name, dimsOf(v)]));
    const kvIn = ['batch_size', config.nKvHeads, 'past_sequence_length', headDim];
    const kvOut = ['batch_size', config.nKvHeads, 'total_sequence_length', headDim];
    expect(inputs).toEqual({
      input_ids: ['batch_size', 'sequence_length'],
      attention_mask: ['batch_size', 'total_sequence_length'],
      position_ids: ['batch_size', 'sequence_length'],
      'past_key_values.0.key': kvIn,
      'past_key_values.0.value': kvIn,
      'past_key_values.1.key': kvIn,
      'past_key_values.1.value': kvIn,
    });
    expect(outputs).toEqual({
      logits: ['batch_size', 'sequence_length', config.vocabSize],
      'present.0.key': kvOut,
      'present.0.value': kvOut,
      'present.1.key': kvOut,
      'present.1.value': kvOut,
      last_hidden_state: ['batch_size', 'sequence_length', config.dim],
    });
    expect(graph.input.slice(0, 3).map((v) => v.type?.tensorType?.elemType)).toEqual([7, 7, 7]); // int64
    // Default domain only, opset 17; tied embedding stored once.
    const model = onnx.ModelProto.decode(bytes);
    expect(model.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 17]]);
    expect(graph.node.every((n) => !n.domain)).toBe(true);
    expect((graph.initializer as onnxProto.onnx.TensorProto[]).filter((t) => t.dims.map(Number).join('x') === `${config.vocabSize}x${config.dim}`)).toHaveLength(1);
  });

  it('matches a direct transcription of llama2.c run.c forward (GQA, interleaved RoPE)', async () => {
    const tokens = [1, 17, 300, 42, 42, 511, 5, 99, 250, 3];
    const ref = referenceForward(weights, tokens);
    const { logits } = await runStep(session, config, [tokens], [tokens.map(() => 1)], [tokens.map((_, i) => i)], emptyPast(config, 1));
    tokens.forEach((_, t) => expect(maxAbsDiff(logitsAt(logits, tokens.length, config.vocabSize, 0, t), ref[t]!)).toBeLessThan(TOL));
  });

  it("half-split RoPE weights (Hugging Face's layout) are used as stored and match the transcription rotating halves", async () => {
    const halfSplit: LlamaWeights = { ...weights, ropeLayout: 'half-split' };
    const tokens = [1, 17, 300, 42, 42, 511, 5, 99, 250, 3];
    const ref = referenceForward(halfSplit, tokens);
    const s = await sessionFor(halfSplit);
    const { logits } = await runStep(s, config, [tokens], [tokens.map(() => 1)], [tokens.map((_, i) => i)], emptyPast(config, 1));
    tokens.forEach((_, t) => expect(maxAbsDiff(logitsAt(logits, tokens.length, config.vocabSize, 0, t), ref[t]!)).toBeLessThan(TOL));
    // The same rows read with the other layout are a different model: the label matters.
    const other = await runStep(session, config, [tokens], [tokens.map(() => 1)], [tokens.map((_, i) => i)], emptyPast(config, 1));
    expect(maxAbsDiff(other.logits, logits)).toBeGreaterThan(100 * TOL);
  });

  it('gives a left-padded row the same logits as the sequence run alone (batch 3)', async () => {
    const seqs = [
      [1, 5, 9, 200, 3, 77, 8],
      [1, 300, 4],
      [1, 60, 61, 62, 63],
    ];
    const { ids, mask, positions } = leftPad(seqs);
    const len = ids[0]!.length;
    const batch = await runStep(session, config, ids, mask, positions, emptyPast(config, 3));
    expect(batch.logits.every(Number.isFinite)).toBe(true); // fully masked padding rows must not be NaN
    for (const [b, seq] of seqs.entries()) {
      const alone = await runStep(session, config, [seq], [seq.map(() => 1)], [seq.map((_, i) => i)], emptyPast(config, 1));
      const pad = len - seq.length;
      for (let t = 0; t < seq.length; t++) {
        const diff = maxAbsDiff(logitsAt(batch.logits, len, config.vocabSize, b, pad + t), logitsAt(alone.logits, seq.length, config.vocabSize, 0, t));
        expect(diff).toBeLessThan(TOL);
      }
    }
  });

  it('prefill N then one cached decode step equals prefill of N+1', async () => {
    const seq = [1, 44, 45, 46, 300, 301, 2, 9];
    const n = seq.length - 1;
    const prefill = await runStep(session, config, [seq.slice(0, n)], [Array(n).fill(1)], [seq.slice(0, n).map((_, i) => i)], emptyPast(config, 1));
    expect(prefill.present[0]!.dims).toEqual([1, config.nKvHeads, n, headDim]);
    const step = await runStep(session, config, [[seq[n]!]], [Array(n + 1).fill(1)], [[n]], prefill.present);
    expect(step.present[0]!.dims).toEqual([1, config.nKvHeads, n + 1, headDim]);
    const full = await runStep(session, config, [seq], [Array(n + 1).fill(1)], [seq.map((_, i) => i)], emptyPast(config, 1));
    expect(maxAbsDiff(step.logits, logitsAt(full.logits, n + 1, config.vocabSize, 0, n))).toBeLessThan(TOL);
  });

  it('decodes a left-padded batch from its cache like each row alone', async () => {
    const seqs = [
      [1, 5, 9, 200, 3],
      [1, 300],
      [1, 60, 61],
    ];
    const next = [17, 18, 19];
    const { ids, mask, positions } = leftPad(seqs);
    const prefill = await runStep(session, config, ids, mask, positions, emptyPast(config, 3));
    const step = await runStep(
      session,
      config,
      next.map((t) => [t]),
      mask.map((m) => [...m, 1]),
      seqs.map((s) => [s.length]),
      prefill.present,
    );
    for (const [b, seq] of seqs.entries()) {
      const full = [...seq, next[b]!];
      const alone = await runStep(session, config, [full], [full.map(() => 1)], [full.map((_, i) => i)], emptyPast(config, 1));
      const diff = maxAbsDiff(logitsAt(step.logits, 1, config.vocabSize, b, 0), logitsAt(alone.logits, full.length, config.vocabSize, 0, full.length - 1));
      expect(diff).toBeLessThan(TOL);
    }
  });

  it('supports multi-head attention and an untied classifier', async () => {
    const mha: LlamaConfig = { ...config, nKvHeads: config.nHeads, nLayers: 1 };
    const w = randomLlamaWeights(mha, 11, STD);
    w.wcls = randomLlamaWeights({ ...mha, nLayers: 0 }, 12, STD).tokenEmbedding;
    const s = await sessionFor(w);
    const tokens = [1, 2, 3, 400, 401];
    const ref = referenceForward(w, tokens);
    const { logits } = await runStep(s, mha, [tokens], [tokens.map(() => 1)], [tokens.map((_, i) => i)], emptyPast(mha, 1));
    tokens.forEach((_, t) => expect(maxAbsDiff(logitsAt(logits, tokens.length, mha.vocabSize, 0, t), ref[t]!)).toBeLessThan(TOL));
  });

  it('last_hidden_state is the final-norm output the (tied) LM head reads: logits = hidden · embeddingᵀ', async () => {
    const tokens = [1, 17, 300, 42];
    const out = await session.run({
      input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, tokens.length]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(tokens.length).fill(1n), [1, tokens.length]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, (_, i) => BigInt(i)), [1, tokens.length]),
      ...Object.fromEntries(emptyPast(config, 1).map((t, i) => [i % 2 === 0 ? `past_key_values.${i >> 1}.key` : `past_key_values.${i >> 1}.value`, t])),
    });
    const hidden = out.last_hidden_state!.data as Float32Array;
    const logits = out.logits!.data as Float32Array;
    const { dim, vocabSize } = config;
    for (let t = 0; t < tokens.length; t++) {
      const projected = new Float64Array(vocabSize);
      for (let v = 0; v < vocabSize; v++) {
        let s = 0;
        for (let d = 0; d < dim; d++) s += hidden[t * dim + d]! * weights.tokenEmbedding[v * dim + d]!;
        projected[v] = s;
      }
      expect(maxAbsDiff(projected, logitsAt(logits, tokens.length, vocabSize, 0, t))).toBeLessThan(TOL);
    }
  });

  it('pruned to last_hidden_state, the graph computes the same hidden states with nothing else', async () => {
    const pruned = onnx.ModelProto.decode(pruneToOutputs(bytes, ['last_hidden_state'])).graph as onnxProto.onnx.GraphProto;
    expect(pruned.output.map((o) => o.name)).toEqual(['last_hidden_state']);
    // The LM head (Gemm) and its reshapes are gone; the embedding stays (the Gather reads it).
    expect(pruned.node.some((n) => n.opType === 'Gemm')).toBe(false);
    const s = await ort.InferenceSession.create(pruneToOutputs(bytes, ['last_hidden_state']));
    const tokens = [[1, 5, 9, 200, 7]];
    const feeds = (sess: ort.InferenceSession) => ({
      input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens[0]!, BigInt), [1, 5]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(5).fill(1n), [1, 5]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from([0, 1, 2, 3, 4], BigInt), [1, 5]),
      ...Object.fromEntries(sess.inputNames.filter((n) => n.startsWith('past')).map((n) => [n, emptyPast(config, 1)[0]!])),
    });
    const a = (await s.run(feeds(s))).last_hidden_state!.data as Float32Array;
    const b = (await session.run(feeds(session), ['last_hidden_state'])).last_hidden_state!.data as Float32Array;
    expect(maxAbsDiff(a, b)).toBe(0);
    expect(() => pruneToOutputs(bytes, ['nope'])).toThrow(/no output nope/);
  });

  it('rejects weights that do not fit the config', () => {
    const bad = randomLlamaWeights(config, 1);
    bad.layers[0]!.wk = new Float32Array(3);
    expect(() => buildLlamaOnnx(bad)).toThrow(/layers\.0\.wk/);
  });
});
