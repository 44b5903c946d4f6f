import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildGpt2Onnx, gpt2ConfigFromHf, gpt2ParameterCount, type Gpt2Config } from '../../src/engine/gpt2-graph.js';
import type { LlamaConfig } from '../../src/engine/onnx-graph.js';
import { randomGpt2Weights } from '../../src/engine/random-weights.js';
import { gpt2ReferenceForward } from '../helpers/gpt2-reference.js';
import { emptyPast, leftPad, logitsAt, maxAbsDiff, runStep } from '../helpers/ort-decoder.js';

const { onnx } = onnxProto;
const TOL = 1e-4;
// Far from uniform attention, so position, mask and bias mistakes change the logits visibly.
const STD = 0.15;

/** A config.json in GPT-2's dialect (the fields gpt2's own has), small. */
const HF_CONFIG = {
  model_type: 'gpt2',
  activation_function: 'gelu_new',
  n_embd: 32,
  n_layer: 2,
  n_head: 4,
  n_inner: null,
  n_positions: 64,
  n_ctx: 64,
  vocab_size: 100,
  layer_norm_epsilon: 1e-5,
};

/** The shape the shared ORT test helpers read (they only use dim, heads, kv heads, layers and vocabulary). */
const asDecoder = (c: Gpt2Config): LlamaConfig => ({
  dim: c.hidden,
  hiddenDim: c.inner,
  nLayers: c.layers,
  nHeads: c.heads,
  nKvHeads: c.heads,
  vocabSize: c.vocabSize,
  maxSeqLen: c.positions,
  ropeTheta: 0,
  normEps: c.layerNormEps,
});

function dimsOf(v: onnxProto.onnx.IValueInfoProto): (number | string)[] {
  return (v.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue)));
}

describe('gpt2ConfigFromHf', () => {
  it("reads GPT-2's config dialect and refuses what the graph does not implement", () => {
    expect(gpt2ConfigFromHf(HF_CONFIG)).toEqual({ hidden: 32, layers: 2, heads: 4, inner: 128, positions: 64, vocabSize: 100, layerNormEps: 1e-5 });
    expect(gpt2ConfigFromHf({ ...HF_CONFIG, n_inner: 64 }).inner).toBe(64);
    expect(() => gpt2ConfigFromHf({ ...HF_CONFIG, model_type: 'llama' })).toThrow(/not gpt2/);
    expect(() => gpt2ConfigFromHf({ ...HF_CONFIG, activation_function: 'relu' })).toThrow(/relu/);
    expect(() => gpt2ConfigFromHf({ ...HF_CONFIG, scale_attn_by_inverse_layer_idx: true })).toThrow(/scale_attn_by_inverse_layer_idx/);
    expect(() => gpt2ConfigFromHf({ ...HF_CONFIG, n_head: 5 })).toThrow(/multiple/);
  });

  it("counts gpt2's 124.4M and distilgpt2's 81.9M parameters", () => {
    const gpt2 = gpt2ConfigFromHf({ ...HF_CONFIG, n_embd: 768, n_layer: 12, n_head: 12, n_positions: 1024, vocab_size: 50257 });
    expect(gpt2ParameterCount(gpt2)).toBe(124_439_808);
    expect(gpt2ParameterCount({ ...gpt2, layers: 6 })).toBe(81_912_576);
  });
});

describe('buildGpt2Onnx (small GPT-2)', () => {
  const config = gpt2ConfigFromHf(HF_CONFIG);
  const dc = asDecoder(config);
  const weights = randomGpt2Weights(config, 5, STD);
  const headDim = config.hidden / config.heads;
  let bytes: Uint8Array;
  let session: ort.InferenceSession;

  beforeAll(async () => {
    bytes = buildGpt2Onnx(weights);
    session = await ort.InferenceSession.create(bytes);
  });

  it('declares the transformers.js decoder I/O: n_head KV heads, [batch, heads, seq, head_dim]', () => {
    const graph = onnx.ModelProto.decode(bytes).graph as onnxProto.onnx.GraphProto;
    const inputs = Object.fromEntries(graph.input.map((v) => [v.name, dimsOf(v)]));
    const outputs = Object.fromEntries(graph.output.map((v) => [v.name, dimsOf(v)]));
    const kvIn = ['batch_size', config.heads, 'past_sequence_length', headDim];
    const kvOut = ['batch_size', config.heads, 'total_sequence_length', headDim];
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
      last_hidden_state: ['batch_size', 'sequence_length', config.hidden],
    });
    // The LM head is tied: wte is stored once.
    const tables = (graph.initializer as onnxProto.onnx.TensorProto[]).filter((t) => t.dims.map(Number).join('x') === `${config.vocabSize}x${config.hidden}`);
    expect(tables).toHaveLength(1);
  });

  it("matches a transcription of Hugging Face's GPT2LMHeadModel at every position", async () => {
    const tokens = [50, 3, 99, 0, 17, 17, 42, 8, 61, 2, 77, 5];
    const ref = gpt2ReferenceForward(weights, tokens);
    const { logits } = await runStep(session, dc, [tokens], [tokens.map(() => 1)], [tokens.map((_, i) => i)], emptyPast(dc, 1));
    tokens.forEach((_, t) => expect(maxAbsDiff(logitsAt(logits, tokens.length, config.vocabSize, 0, t), ref[t]!), `position ${t}`).toBeLessThan(TOL));
  });

  it('gives left-padded rows (positions as transformers.js makes them) the logits of each row alone', async () => {
    const seqs = [
      [5, 9, 20, 3, 77, 8],
      [30, 4],
      [60, 61, 62, 63],
    ];
    const { ids, mask, positions } = leftPad(seqs);
    const len = ids[0]!.length;
    const batch = await runStep(session, dc, ids, mask, positions, emptyPast(dc, 3));
    expect(batch.logits.every(Number.isFinite)).toBe(true);
    for (const [b, seq] of seqs.entries()) {
      const alone = await runStep(session, dc, [seq], [seq.map(() => 1)], [seq.map((_, i) => i)], emptyPast(dc, 1));
      for (let t = 0; t < seq.length; t++) {
        const diff = maxAbsDiff(logitsAt(batch.logits, len, config.vocabSize, b, len - seq.length + t), logitsAt(alone.logits, seq.length, config.vocabSize, 0, t));
        expect(diff).toBeLessThan(TOL);
      }
    }
  });

  it('prefill N then one cached decode step equals prefill of N+1', async () => {
    const seq = [1, 44, 45, 46, 30, 31, 2, 9];
    const n = seq.length - 1;
    const prefill = await runStep(session, dc, [seq.slice(0, n)], [Array(n).fill(1)], [seq.slice(0, n).map((_, i) => i)], emptyPast(dc, 1));
    expect(prefill.present[0]!.dims).toEqual([1, config.heads, n, headDim]);
    const step = await runStep(session, dc, [[seq[n]!]], [Array(n + 1).fill(1)], [[n]], prefill.present);
    const full = await runStep(session, dc, [seq], [Array(n + 1).fill(1)], [seq.map((_, i) => i)], emptyPast(dc, 1));
    expect(maxAbsDiff(step.logits, logitsAt(full.logits, n + 1, config.vocabSize, 0, n))).toBeLessThan(TOL);
  });

  it('rejects weights that do not fit the config', () => {
    const bad = randomGpt2Weights(config, 1);
    bad.wpe = new Float32Array(3);
    expect(() => buildGpt2Onnx(bad)).toThrow(/wpe: expected 2048 values, got 3/);
  });
});
