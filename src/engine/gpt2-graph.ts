import { GraphBuilder, ElemType, attrFloat, attrInt, attrInts } from './onnx-builder.js';
import { buildAttentionBias, LAST_HIDDEN_STATE, pastKeyName, pastValueName, presentKeyName, presentValueName } from './onnx-graph.js';

/** Shape and numerics of a GPT-2 decoder (the fields of a Hugging Face `GPT2LMHeadModel` config.json). */
export interface Gpt2Config {
  /** n_embd */
  hidden: number;
  /** n_layer */
  layers: number;
  /** n_head */
  heads: number;
  /** n_inner (4 × n_embd when null) */
  inner: number;
  /** n_positions: rows of the learned position table, the context window. */
  positions: number;
  vocabSize: number;
  /** layer_norm_epsilon */
  layerNormEps: number;
}

/**
 * One GPT-2 block. The projections are Hugging Face's Conv1D weights,
 * row-major `[in, out]` (the transpose of a Linear), which is the layout
 * MatMul takes as it is.
 */
export interface Gpt2LayerWeights {
  ln1Gamma: Float32Array; // [hidden]
  ln1Beta: Float32Array;
  attnW: Float32Array; // c_attn [hidden, 3*hidden]: q | k | v
  attnB: Float32Array; // [3*hidden]
  attnProjW: Float32Array; // attn.c_proj [hidden, hidden]
  attnProjB: Float32Array; // [hidden]
  ln2Gamma: Float32Array;
  ln2Beta: Float32Array;
  fcW: Float32Array; // mlp.c_fc [hidden, inner]
  fcB: Float32Array; // [inner]
  fcProjW: Float32Array; // mlp.c_proj [inner, hidden]
  fcProjB: Float32Array; // [hidden]
}

/** All weights of a GPT-2 decoder; the LM head is tied to `wte`, as in every GPT-2 checkpoint. */
export interface Gpt2Weights {
  config: Gpt2Config;
  wte: Float32Array; // [vocab, hidden]
  wpe: Float32Array; // [positions, hidden]
  layers: Gpt2LayerWeights[];
  lnFGamma: Float32Array; // [hidden]
  lnFBeta: Float32Array;
}

type Json = Record<string, unknown>;

/**
 * Reads a Hugging Face GPT-2 config.json (gpt2, distilgpt2). Refuses what
 * the graph does not implement rather than building a different model.
 */
export function gpt2ConfigFromHf(cfg: Json): Gpt2Config {
  const need = (name: string): number => {
    const v = cfg[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new Error(`config.json: ${name} must be a positive integer`);
    return v;
  };
  if (cfg.model_type !== 'gpt2') throw new Error(`config.json: model_type "${String(cfg.model_type)}" is not gpt2`);
  const act = cfg.activation_function ?? 'gelu_new';
  // gelu_new and gelu_pytorch_tanh are the same tanh approximation.
  if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh') throw new Error(`config.json: activation_function "${String(act)}" is not supported (only gelu_new)`);
  for (const flag of ['scale_attn_by_inverse_layer_idx', 'add_cross_attention'] as const) {
    if (cfg[flag] === true) throw new Error(`config.json: ${flag} is not supported`);
  }
  if (cfg.scale_attn_weights === false) throw new Error('config.json: scale_attn_weights false is not supported');
  const eps = cfg.layer_norm_epsilon ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0)) throw new Error('config.json: layer_norm_epsilon must be a positive number');
  const hidden = need('n_embd');
  const c: Gpt2Config = {
    hidden,
    layers: need('n_layer'),
    heads: need('n_head'),
    inner: cfg.n_inner === null || cfg.n_inner === undefined ? 4 * hidden : need('n_inner'),
    positions: need('n_positions'),
    vocabSize: need('vocab_size'),
    layerNormEps: eps,
  };
  if (c.hidden % c.heads !== 0) throw new Error(`config.json: n_embd ${c.hidden} is not a multiple of n_head ${c.heads}`);
  return c;
}

/** Parameters of a GPT-2 model of this shape (tied LM head counted once), as Hugging Face counts them. */
export function gpt2ParameterCount(c: Gpt2Config): number {
  const h = c.hidden;
  const perLayer = 4 * h + (h * 3 * h + 3 * h) + (h * h + h) + (h * c.inner + c.inner) + (c.inner * h + h);
  return (c.vocabSize + c.positions) * h + c.layers * perLayer + 2 * h;
}

/** Checks every array against the config, so a bad weight set fails here, not inside ONNX Runtime. */
export function validateGpt2Weights(w: Gpt2Weights): void {
  const c = w.config;
  const h = c.hidden;
  const expect = (name: string, a: Float32Array, n: number): void => {
    if (a.length !== n) throw new Error(`${name}: expected ${n} values, got ${a.length}`);
  };
  if (w.layers.length !== c.layers) throw new Error(`expected ${c.layers} layers, got ${w.layers.length}`);
  expect('wte', w.wte, c.vocabSize * h);
  expect('wpe', w.wpe, c.positions * h);
  expect('lnFGamma', w.lnFGamma, h);
  expect('lnFBeta', w.lnFBeta, h);
  w.layers.forEach((l, n) => {
    const p = `layers.${n}`;
    for (const k of ['ln1Gamma', 'ln1Beta', 'ln2Gamma', 'ln2Beta', 'attnProjB', 'fcProjB'] as const) expect(`${p}.${k}`, l[k], h);
    expect(`${p}.attnW`, l.attnW, h * 3 * h);
    expect(`${p}.attnB`, l.attnB, 3 * h);
    expect(`${p}.attnProjW`, l.attnProjW, h * h);
    expect(`${p}.fcW`, l.fcW, h * c.inner);
    expect(`${p}.fcB`, l.fcB, c.inner);
    expect(`${p}.fcProjW`, l.fcProjW, c.inner * h);
  });
}

/**
 * Builds a GPT-2 decoder as an ONNX model (opset 17, default domain only)
 * with the I/O transformers.js feeds a gpt2 export: `input_ids`,
 * `attention_mask`, `position_ids`, `past_key_values.{i}.key|value`
 * (`[batch, n_head, past, head_dim]`) in; `logits`, `present.{i}.key|value`
 * out, plus `last_hidden_state` (after ln_f) as the Llama graph has it.
 * Hugging Face's GPT2LMHeadModel: token + learned position embeddings;
 * per block pre-LayerNorm attention (Conv1D c_attn with bias, scores scaled
 * by 1/√head_dim, causal and padding mask), c_proj, residual, pre-LayerNorm
 * MLP with the tanh GELU ("gelu_new"), residual; final LayerNorm and the LM
 * head tied to wte. Any batch size, left padding, empty past.
 */
export function buildGpt2Onnx(weights: Gpt2Weights): Uint8Array {
  validateGpt2Weights(weights);
  const c = weights.config;
  const h = c.hidden;
  const headDim = h / c.heads;
  const b = new GraphBuilder();

  const inputIds = b.input('input_ids', ElemType.INT64, ['batch_size', 'sequence_length']);
  const attentionMask = b.input('attention_mask', ElemType.INT64, ['batch_size', 'total_sequence_length']);
  const positionIds = b.input('position_ids', ElemType.INT64, ['batch_size', 'sequence_length']);
  const kvDims = ['batch_size', c.heads, 'past_sequence_length', headDim];
  const past = Array.from({ length: c.layers }, (_, i) => ({
    key: b.input(pastKeyName(i), ElemType.FLOAT, kvDims),
    value: b.input(pastValueName(i), ElemType.FLOAT, kvDims),
  }));

  const wte = b.float('transformer.wte.weight', [c.vocabSize, h], weights.wte);
  const wpe = b.float('transformer.wpe.weight', [c.positions, h], weights.wpe);
  let x = b.op('Add', [b.op('Gather', [wte, inputIds], { axis: attrInt(0) }), b.op('Gather', [wpe, positionIds], { axis: attrInt(0) })]);
  const attnBias = buildAttentionBias(b, inputIds, attentionMask, false); // [b, 1, seq, total]

  weights.layers.forEach((layer, i) => {
    const p = `transformer.h.${i}`;
    const a = layerNorm(b, x, `${p}.ln_1`, layer.ln1Gamma, layer.ln1Beta, c.layerNormEps);
    const qkv = conv1d(b, a, `${p}.attn.c_attn`, layer.attnW, layer.attnB, h);
    const [q, k, v] = b.opN('Split', [qkv, b.int64([h, h, h])], 3, { axis: attrInt(-1) });
    const heads = (t: string) => b.op('Transpose', [b.op('Reshape', [t, b.int64([0, 0, c.heads, headDim])])], { perm: attrInts([0, 2, 1, 3]) });
    const presentKey = b.op('Concat', [past[i]!.key, heads(k!)], { axis: attrInt(2) }, presentKeyName(i));
    const presentValue = b.op('Concat', [past[i]!.value, heads(v!)], { axis: attrInt(2) }, presentValueName(i));
    const qh = b.op('Mul', [heads(q!), b.scalar(1 / Math.sqrt(headDim))]);
    const scores = b.op('Add', [b.op('MatMul', [qh, b.op('Transpose', [presentKey], { perm: attrInts([0, 1, 3, 2]) })]), attnBias]);
    const probs = b.op('Softmax', [scores], { axis: attrInt(-1) });
    const context = b.op('Reshape', [b.op('Transpose', [b.op('MatMul', [probs, presentValue])], { perm: attrInts([0, 2, 1, 3]) }), b.int64([0, 0, h])]);
    x = b.op('Add', [x, conv1d(b, context, `${p}.attn.c_proj`, layer.attnProjW, layer.attnProjB, h)]);

    const m = layerNorm(b, x, `${p}.ln_2`, layer.ln2Gamma, layer.ln2Beta, c.layerNormEps);
    const fc = conv1d(b, m, `${p}.mlp.c_fc`, layer.fcW, layer.fcB, h);
    x = b.op('Add', [x, conv1d(b, geluTanh(b, fc), `${p}.mlp.c_proj`, layer.fcProjW, layer.fcProjB, c.inner)]);
  });
  const normed = b.op('Identity', [layerNorm(b, x, 'transformer.ln_f', weights.lnFGamma, weights.lnFBeta, c.layerNormEps)], {}, LAST_HIDDEN_STATE);

  // The tied LM head reads wte as it is stored ([vocab, hidden], Gemm transB).
  const logits2d = b.op('Gemm', [b.op('Reshape', [normed, b.int64([-1, h])]), wte], { transB: attrInt(1) });
  const logitsShape = b.op('Concat', [b.op('Shape', [inputIds]), b.int64([c.vocabSize])], { axis: attrInt(0) });
  b.op('Reshape', [logits2d, logitsShape], {}, 'logits');

  b.output('logits', ElemType.FLOAT, ['batch_size', 'sequence_length', c.vocabSize]);
  const presentDims = ['batch_size', c.heads, 'total_sequence_length', headDim];
  for (let i = 0; i < c.layers; i++) {
    b.output(presentKeyName(i), ElemType.FLOAT, presentDims);
    b.output(presentValueName(i), ElemType.FLOAT, presentDims);
  }
  b.output(LAST_HIDDEN_STATE, ElemType.FLOAT, ['batch_size', 'sequence_length', h]);
  return b.build('gpt2');
}

function layerNorm(b: GraphBuilder, x: string, name: string, gamma: Float32Array, beta: Float32Array, eps: number): string {
  const n = gamma.length;
  return b.op('LayerNormalization', [x, b.float(`${name}.weight`, [n], gamma), b.float(`${name}.bias`, [n], beta)], {
    axis: attrInt(-1),
    epsilon: attrFloat(eps),
  });
}

/** Hugging Face's Conv1D: x @ W + bias with W stored `[in, out]`. */
function conv1d(b: GraphBuilder, x: string, name: string, w: Float32Array, bias: Float32Array, inDim: number): string {
  const out = bias.length;
  return b.op('Add', [b.op('MatMul', [x, b.float(`${name}.weight`, [inDim, out], w)]), b.float(`${name}.bias`, [out], bias)]);
}

/** GPT-2's "gelu_new": 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), in the shape ONNX Runtime fuses into FastGelu. */
function geluTanh(b: GraphBuilder, x: string): string {
  const cube = b.op('Mul', [b.op('Mul', [x, x]), x]);
  const inner = b.op('Mul', [b.op('Add', [x, b.op('Mul', [cube, b.scalar(0.044715)])]), b.scalar(Math.sqrt(2 / Math.PI))]);
  return b.op('Mul', [b.op('Mul', [x, b.scalar(0.5)]), b.op('Add', [b.op('Tanh', [inner]), b.scalar(1)])]);
}
