import { GraphBuilder, ElemType, attrInt, attrInts } from './onnx-builder.js';

/** Shape and numerics of a Llama-architecture decoder (llama2.c naming). */
export interface LlamaConfig {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  maxSeqLen: number;
  ropeTheta: number;
  normEps: number;
}

/** One transformer block's weights, each matrix row-major `[out, in]` as llama2.c stores them. */
export interface LlamaLayerWeights {
  rmsAtt: Float32Array; // [dim]
  wq: Float32Array; // [nHeads*headDim, dim]
  wk: Float32Array; // [nKvHeads*headDim, dim]
  wv: Float32Array; // [nKvHeads*headDim, dim]
  wo: Float32Array; // [dim, nHeads*headDim]
  rmsFfn: Float32Array; // [dim]
  w1: Float32Array; // [hiddenDim, dim] gate
  w2: Float32Array; // [dim, hiddenDim] down
  w3: Float32Array; // [hiddenDim, dim] up
}

/**
 * Which pairs of a head's `wq`/`wk` output rows RoPE rotates together:
 * `interleaved` (llama2.c, Meta's original checkpoints): `(2i, 2i+1)`;
 * `half-split` (Hugging Face's rotate_half, `rope_interleaved: false`):
 * `(i, i + headDim/2)`. The graphs take either as it is stored.
 */
export type RopeLayout = 'interleaved' | 'half-split';

/**
 * All weights of a Llama decoder, each matrix row-major `[out, in]`.
 * `ropeLayout` says how the rows of `wq`/`wk` pair up for RoPE.
 * `wcls` is absent when the classifier is tied to the token embedding.
 */
export interface LlamaWeights {
  config: LlamaConfig;
  ropeLayout: RopeLayout;
  tokenEmbedding: Float32Array; // [vocab, dim]
  layers: LlamaLayerWeights[];
  rmsFinal: Float32Array; // [dim]
  wcls?: Float32Array; // [vocab, dim]
}

/** Masked attention scores get this instead of -inf so fully masked (left-padding) rows stay finite. */
const MASK_VALUE = -1e9;

/** Graph I/O names transformers.js uses for decoder-only models. */
export const pastKeyName = (layer: number): string => `past_key_values.${layer}.key`;
export const pastValueName = (layer: number): string => `past_key_values.${layer}.value`;
export const presentKeyName = (layer: number): string => `present.${layer}.key`;
export const presentValueName = (layer: number): string => `present.${layer}.value`;
/** The plain graph's final hidden states (after the final norm), the source of the decoder's embeddings. */
export const LAST_HIDDEN_STATE = 'last_hidden_state';

/** Checks that every array has the size the config implies, so a bad checkpoint fails here, not inside ONNX Runtime. */
export function validateLlamaWeights(w: LlamaWeights): void {
  const c = w.config;
  const headDim = c.dim / c.nHeads;
  if (w.ropeLayout !== 'interleaved' && w.ropeLayout !== 'half-split') throw new Error(`unknown RoPE layout ${String(w.ropeLayout)}`);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw new Error(`dim ${c.dim} / heads ${c.nHeads} must be an even integer`);
  if (c.nHeads % c.nKvHeads !== 0) throw new Error(`heads ${c.nHeads} must be a multiple of kv heads ${c.nKvHeads}`);
  if (w.layers.length !== c.nLayers) throw new Error(`expected ${c.nLayers} layers, got ${w.layers.length}`);
  const expect = (name: string, a: Float32Array, n: number): void => {
    if (a.length !== n) throw new Error(`${name}: expected ${n} values, got ${a.length}`);
  };
  const kvDim = c.nKvHeads * headDim;
  expect('tokenEmbedding', w.tokenEmbedding, c.vocabSize * c.dim);
  expect('rmsFinal', w.rmsFinal, c.dim);
  if (w.wcls) expect('wcls', w.wcls, c.vocabSize * c.dim);
  w.layers.forEach((l, i) => {
    expect(`layers.${i}.rmsAtt`, l.rmsAtt, c.dim);
    expect(`layers.${i}.wq`, l.wq, c.dim * c.dim);
    expect(`layers.${i}.wk`, l.wk, kvDim * c.dim);
    expect(`layers.${i}.wv`, l.wv, kvDim * c.dim);
    expect(`layers.${i}.wo`, l.wo, c.dim * c.dim);
    expect(`layers.${i}.rmsFfn`, l.rmsFfn, c.dim);
    expect(`layers.${i}.w1`, l.w1, c.hiddenDim * c.dim);
    expect(`layers.${i}.w2`, l.w2, c.dim * c.hiddenDim);
    expect(`layers.${i}.w3`, l.w3, c.hiddenDim * c.dim);
  });
}

/**
 * Reorders the rows of a `[nHeads*headDim, in]` projection so that, inside
 * each head, the interleaved pair `(2i, 2i+1)` lands at `(i, i + headDim/2)`.
 * Rotating the halves (Hugging Face's rotate_half) of the permuted projection
 * then equals llama2.c's adjacent-pair rotation, and q·k is unchanged because
 * q and k are permuted alike.
 */
export function permuteRopeRows(w: Float32Array, nHeads: number, headDim: number, inDim: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = headDim / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      const base = h * headDim;
      out.set(w.subarray((base + 2 * i) * inDim, (base + 2 * i + 1) * inDim), (base + i) * inDim);
      out.set(w.subarray((base + 2 * i + 1) * inDim, (base + 2 * i + 2) * inDim), (base + i + half) * inDim);
    }
  }
  return out;
}

/** Stacks `[out_k, in]` matrices along `out` and transposes to `[in, sum(out_k)]`, the layout MatMul wants. */
export function stackTransposed(mats: Float32Array[], inDim: number): Float32Array {
  const rows = mats.reduce((n, m) => n + m.length / inDim, 0);
  const out = new Float32Array(rows * inDim);
  let row0 = 0;
  for (const m of mats) {
    const r = m.length / inDim;
    for (let o = 0; o < r; o++) {
      const src = o * inDim;
      const col = row0 + o;
      for (let i = 0; i < inDim; i++) out[i * rows + col] = m[src + i]!;
    }
    row0 += r;
  }
  return out;
}

/**
 * cos and sin of RoPE angle `pos * freq_i` as `[maxSeqLen, headDim/2]` tables
 * (the layout ONNX Runtime's rotary kernels take as `cos_cache`/`sin_cache`),
 * with `freq_i = theta^(-2i/headDim)`. Angles are computed in float32 steps
 * like llama2.c's run.c so greedy output matches it.
 */
export function ropeCosSin(maxSeqLen: number, headDim: number, theta: number): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(maxSeqLen * half);
  const sin = new Float32Array(maxSeqLen * half);
  const f = Math.fround;
  for (let i = 0; i < half; i++) {
    const freq = f(1 / f(Math.pow(theta, f((2 * i) / headDim))));
    for (let pos = 0; pos < maxSeqLen; pos++) {
      const angle = f(pos * freq);
      cos[pos * half + i] = Math.cos(angle);
      sin[pos * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/**
 * RoPE tables `[maxSeqLen, headDim]` for the half-split rotation: cos repeated
 * over both halves, sin negated on the first half so that
 * `x*cos + concat(x2, x1)*sin` is rotate_half without a Neg node.
 */
export function ropeTables(maxSeqLen: number, headDim: number, theta: number): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const base = ropeCosSin(maxSeqLen, headDim, theta);
  const cos = new Float32Array(maxSeqLen * headDim);
  const sin = new Float32Array(maxSeqLen * headDim);
  for (let pos = 0; pos < maxSeqLen; pos++) {
    for (let i = 0; i < half; i++) {
      const c = base.cos[pos * half + i]!;
      const s = base.sin[pos * half + i]!;
      cos[pos * headDim + i] = c;
      cos[pos * headDim + half + i] = c;
      sin[pos * headDim + i] = -s;
      sin[pos * headDim + half + i] = s;
    }
  }
  return { cos, sin };
}

/**
 * Builds a Llama decoder as an ONNX model (opset 17, default domain only)
 * with exactly the I/O transformers.js feeds decoder-only LLMs:
 * `input_ids`, `attention_mask`, `position_ids`, `past_key_values.{i}.key|value`
 * in; `logits`, `present.{i}.key|value` out. Works for any batch size, with
 * left padding and with an empty past (`past_sequence_length` = 0).
 * Tied embeddings are stored once and reused for the classifier. One more
 * output, `last_hidden_state` (after the final RMSNorm, `[batch, seq, dim]`),
 * serves the decoder's mean-pooled embeddings; transformers.js ignores it,
 * and the chat runner does not fetch it.
 */
export function buildLlamaOnnx(weights: LlamaWeights): Uint8Array {
  validateLlamaWeights(weights);
  const c = weights.config;
  const headDim = c.dim / c.nHeads;
  const group = c.nHeads / c.nKvHeads;
  const b = new GraphBuilder();

  const inputIds = b.input('input_ids', ElemType.INT64, ['batch_size', 'sequence_length']);
  const attentionMask = b.input('attention_mask', ElemType.INT64, ['batch_size', 'total_sequence_length']);
  const positionIds = b.input('position_ids', ElemType.INT64, ['batch_size', 'sequence_length']);
  const kvDims = ['batch_size', c.nKvHeads, 'past_sequence_length', headDim];
  const past = Array.from({ length: c.nLayers }, (_, i) => ({
    key: b.input(pastKeyName(i), ElemType.FLOAT, kvDims),
    value: b.input(pastValueName(i), ElemType.FLOAT, kvDims),
  }));

  const embedding = b.float('model.embed_tokens.weight', [c.vocabSize, c.dim], weights.tokenEmbedding);
  const attnBias = buildAttentionBias(b, inputIds, attentionMask, group > 1);
  const rope = ropeInputs(b, c, headDim, positionIds);

  let x = b.op('Gather', [embedding, inputIds], { axis: attrInt(0) });
  weights.layers.forEach((layer, i) => {
    x = decoderLayer(b, c, weights.ropeLayout, layer, i, x, past[i]!, attnBias, rope);
  });
  const normed = b.op('Identity', [rmsNorm(b, x, b.float('model.norm.weight', [c.dim], weights.rmsFinal), c.normEps)], {}, LAST_HIDDEN_STATE);

  // Gemm with transB reads the [vocab, dim] embedding as is, so a tied
  // classifier needs no transposed copy of the largest matrix.
  const classifier = weights.wcls ? b.float('lm_head.weight', [c.vocabSize, c.dim], weights.wcls) : embedding;
  const flat = b.op('Reshape', [normed, b.int64([-1, c.dim])]);
  const logits2d = b.op('Gemm', [flat, classifier], { transB: attrInt(1) });
  const logitsShape = b.op('Concat', [b.op('Shape', [inputIds]), b.int64([c.vocabSize])], { axis: attrInt(0) });
  b.op('Reshape', [logits2d, logitsShape], {}, 'logits');

  b.output('logits', ElemType.FLOAT, ['batch_size', 'sequence_length', c.vocabSize]);
  const presentDims = ['batch_size', c.nKvHeads, 'total_sequence_length', headDim];
  for (let i = 0; i < c.nLayers; i++) {
    b.output(presentKeyName(i), ElemType.FLOAT, presentDims);
    b.output(presentValueName(i), ElemType.FLOAT, presentDims);
  }
  b.output(LAST_HIDDEN_STATE, ElemType.FLOAT, ['batch_size', 'sequence_length', c.dim]);
  return b.build('llama');
}

/**
 * Additive attention bias `[batch, 1, seq, total]` (or `[batch, 1, 1, seq,
 * total]` for grouped-query layout): key j is visible to query i iff
 * attention_mask[b, j] == 1 and j <= past + i.
 */
export function buildAttentionBias(b: GraphBuilder, inputIds: string, attentionMask: string, grouped: boolean): string {
  const seqLen = b.op('Gather', [b.op('Shape', [inputIds]), b.int64([1], [])], { axis: attrInt(0) });
  const totalLen = b.op('Gather', [b.op('Shape', [attentionMask]), b.int64([1], [])], { axis: attrInt(0) });
  const pastLen = b.op('Sub', [totalLen, seqLen]);
  const one = b.int64([1], []);
  const queryPos = b.op('Range', [pastLen, totalLen, one]); // [seq]
  const keyPos = b.op('Range', [b.int64([0], []), totalLen, one]); // [total]
  const causal = b.op('LessOrEqual', [
    b.op('Unsqueeze', [keyPos, b.int64([0])]), // [1, total]
    b.op('Unsqueeze', [queryPos, b.int64([1])]), // [seq, 1]
  ]); // [seq, total]
  const notPadding = b.op('Unsqueeze', [b.op('Cast', [attentionMask], { to: attrInt(ElemType.BOOL) }), b.int64([1])]); // [b, 1, total]
  const visible = b.op('And', [causal, notPadding]); // [b, seq, total]
  const bias = b.op('Where', [visible, b.scalar(0), b.scalar(MASK_VALUE)]);
  return b.op('Unsqueeze', [bias, b.int64(grouped ? [1, 2] : [1])], {}, 'attention_bias');
}

interface RopeInputs {
  cos: string; // [b, seq, 1, headDim]
  sin: string;
}

function ropeInputs(b: GraphBuilder, c: LlamaConfig, headDim: number, positionIds: string): RopeInputs {
  const tables = ropeTables(c.maxSeqLen, headDim, c.ropeTheta);
  const gather = (name: string, table: Float32Array): string =>
    b.op('Unsqueeze', [
      b.op('Gather', [b.float(name, [c.maxSeqLen, headDim], table), positionIds], { axis: attrInt(0) }),
      b.int64([2]),
    ]);
  return { cos: gather('rope.cos', tables.cos), sin: gather('rope.sin_signed', tables.sin) };
}

/** Half-split rotation on `[b, seq, heads, headDim]`; the sin table carries rotate_half's sign. */
function applyRope(b: GraphBuilder, x: string, rope: RopeInputs, headDim: number): string {
  const [x1, x2] = b.opN('Split', [x, b.int64([headDim / 2, headDim / 2])], 2, { axis: attrInt(-1) });
  const rotated = b.op('Concat', [x2!, x1!], { axis: attrInt(-1) });
  return b.op('Add', [b.op('Mul', [x, rope.cos]), b.op('Mul', [rotated, rope.sin])]);
}

/** RMSNorm written in the Pow/ReduceMean/Add/Sqrt/Div/Mul shape ONNX Runtime fuses into one kernel. */
function rmsNorm(b: GraphBuilder, x: string, weight: string, eps: number): string {
  const meanSquare = b.op('ReduceMean', [b.op('Pow', [x, b.scalar(2)])], { axes: attrInts([-1]), keepdims: attrInt(1) });
  const rms = b.op('Sqrt', [b.op('Add', [meanSquare, b.scalar(eps)])]);
  return b.op('Mul', [b.op('Div', [x, rms]), weight]);
}

function decoderLayer(
  b: GraphBuilder,
  c: LlamaConfig,
  ropeLayout: RopeLayout,
  w: LlamaLayerWeights,
  index: number,
  x: string,
  past: { key: string; value: string },
  attnBias: string,
  rope: RopeInputs,
): string {
  const headDim = c.dim / c.nHeads;
  const kvDim = c.nKvHeads * headDim;
  const group = c.nHeads / c.nKvHeads;
  const p = `model.layers.${index}`;

  // One MatMul for q, k and v: fewer, larger GEMMs are faster on CPU. This
  // graph rotates halves, so interleaved q/k rows are permuted into that layout.
  const halves = (m: Float32Array, heads: number) => (ropeLayout === 'interleaved' ? permuteRopeRows(m, heads, headDim, c.dim) : m);
  const wqkv = stackTransposed([halves(w.wq, c.nHeads), halves(w.wk, c.nKvHeads), w.wv], c.dim);
  const h = rmsNorm(b, x, b.float(`${p}.input_layernorm.weight`, [c.dim], w.rmsAtt), c.normEps);
  const qkv = b.op('MatMul', [h, b.float(`${p}.self_attn.qkv_proj.weight_t`, [c.dim, c.dim + 2 * kvDim], wqkv)]);
  const [q, k, v] = b.opN('Split', [qkv, b.int64([c.dim, kvDim, kvDim])], 3, { axis: attrInt(2) });

  const q4 = applyRope(b, b.op('Reshape', [q!, b.int64([0, 0, c.nHeads, headDim])]), rope, headDim);
  const k4 = applyRope(b, b.op('Reshape', [k!, b.int64([0, 0, c.nKvHeads, headDim])]), rope, headDim);
  const v4 = b.op('Reshape', [v!, b.int64([0, 0, c.nKvHeads, headDim])]);
  const qScaled = b.op('Mul', [q4, b.scalar(1 / Math.sqrt(headDim))]);

  const presentKey = b.op('Concat', [past.key, b.op('Transpose', [k4], { perm: attrInts([0, 2, 1, 3]) })], { axis: attrInt(2) }, presentKeyName(index));
  const presentValue = b.op('Concat', [past.value, b.op('Transpose', [v4], { perm: attrInts([0, 2, 1, 3]) })], { axis: attrInt(2) }, presentValueName(index));
  const keyT = b.op('Transpose', [presentKey], { perm: attrInts([0, 1, 3, 2]) }); // [b, kv, hd, total]

  let context: string;
  if (group === 1) {
    const qh = b.op('Transpose', [qScaled], { perm: attrInts([0, 2, 1, 3]) }); // [b, h, seq, hd]
    const scores = b.op('Add', [b.op('MatMul', [qh, keyT]), attnBias]);
    const probs = b.op('Softmax', [scores], { axis: attrInt(-1) });
    const ctx = b.op('MatMul', [probs, presentValue]); // [b, h, seq, hd]
    context = b.op('Transpose', [ctx], { perm: attrInts([0, 2, 1, 3]) });
  } else {
    // Grouped-query attention without copying the cache per query head: head
    // h = kv*group + g, so q reshapes to [b, seq, kv, group, hd] and each kv
    // head broadcasts over its group in the MatMuls.
    const q5 = b.op('Transpose', [b.op('Reshape', [qScaled, b.int64([0, 0, c.nKvHeads, group, headDim])])], {
      perm: attrInts([0, 2, 3, 1, 4]),
    }); // [b, kv, group, seq, hd]
    const k5 = b.op('Unsqueeze', [keyT, b.int64([2])]); // [b, kv, 1, hd, total]
    const v5 = b.op('Unsqueeze', [presentValue, b.int64([2])]); // [b, kv, 1, total, hd]
    const scores = b.op('Add', [b.op('MatMul', [q5, k5]), attnBias]);
    const probs = b.op('Softmax', [scores], { axis: attrInt(-1) });
    const ctx = b.op('MatMul', [probs, v5]); // [b, kv, group, seq, hd]
    context = b.op('Transpose', [ctx], { perm: attrInts([0, 3, 1, 2, 4]) }); // [b, seq, kv, group, hd]
  }
  const attn = b.op('MatMul', [
    b.op('Reshape', [context, b.int64([0, 0, c.dim])]),
    b.float(`${p}.self_attn.o_proj.weight_t`, [c.dim, c.dim], stackTransposed([w.wo], c.dim)),
  ]);
  const afterAttn = b.op('Add', [x, attn]);

  const h2 = rmsNorm(b, afterAttn, b.float(`${p}.post_attention_layernorm.weight`, [c.dim], w.rmsFfn), c.normEps);
  return b.op('Add', [afterAttn, swiGluMlp(b, c, w, p, h2)]);
}

/**
 * A linear layer `h @ W^T` of weights given as `[out_k, in]` matrices stacked
 * along `out` (one product for several projections), named by its prefix
 * (e.g. `model.layers.0.mlp.gate_up_proj`). The graph builders pass
 * {@link floatLinear} (a float32 MatMul) or a quantized one.
 */
export type LinearLayer = (h: string, name: string, mats: Float32Array[], inDim: number, outDim: number) => string;

/** A float32 MatMul against the stacked, transposed weights `${name}.weight_t` `[in, out]`. */
export function floatLinear(b: GraphBuilder): LinearLayer {
  return (h, name, mats, inDim, outDim) => b.op('MatMul', [h, b.float(`${name}.weight_t`, [inDim, outDim], stackTransposed(mats, inDim))]);
}

/**
 * The SwiGLU feed-forward block `w2(silu(w1 x) * w3 x)` of layer prefix `p`
 * on `h` `[..., dim]`, with gate and up projections packed into one linear
 * layer (float32 MatMuls unless `linear` says otherwise).
 */
export function swiGluMlp(b: GraphBuilder, c: LlamaConfig, w: LlamaLayerWeights, p: string, h: string, linear: LinearLayer = floatLinear(b)): string {
  const gateUp = linear(h, `${p}.mlp.gate_up_proj`, [w.w1, w.w3], c.dim, 2 * c.hiddenDim);
  const [gate, up] = b.opN('Split', [gateUp, b.int64([c.hiddenDim, c.hiddenDim])], 2, { axis: attrInt(-1) });
  const silu = b.op('Mul', [gate!, b.op('Sigmoid', [gate!])]);
  return linear(b.op('Mul', [silu, up!]), `${p}.mlp.down_proj`, [w.w2], c.hiddenDim, c.dim);
}
