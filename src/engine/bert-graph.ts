import { GraphBuilder, ElemType, attrFloat, attrInt, attrInts } from './onnx-builder.js';
import { stackTransposed } from './onnx-graph.js';

/** Shape and numerics of a BERT encoder (the fields of a Hugging Face `BertModel` config.json). */
export interface BertConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  maxPositions: number;
  typeVocabSize: number;
  layerNormEps: number;
}

/** One encoder layer; every matrix row-major `[out, in]`, as a PyTorch Linear stores it. */
export interface BertLayerWeights {
  wq: Float32Array; // [hidden, hidden]
  bq: Float32Array; // [hidden]
  wk: Float32Array;
  bk: Float32Array;
  wv: Float32Array;
  bv: Float32Array;
  wo: Float32Array; // attention output [hidden, hidden]
  bo: Float32Array;
  attnLnGamma: Float32Array; // [hidden]
  attnLnBeta: Float32Array;
  wi: Float32Array; // intermediate [intermediate, hidden]
  bi: Float32Array; // [intermediate]
  wf: Float32Array; // output [hidden, intermediate]
  bf: Float32Array; // [hidden]
  ffnLnGamma: Float32Array;
  ffnLnBeta: Float32Array;
}

export interface BertWeights {
  config: BertConfig;
  wordEmbeddings: Float32Array; // [vocab, hidden]
  positionEmbeddings: Float32Array; // [maxPositions, hidden]
  tokenTypeEmbeddings: Float32Array; // [typeVocab, hidden]
  embLnGamma: Float32Array; // [hidden]
  embLnBeta: Float32Array;
  layers: BertLayerWeights[];
}

/** Masked keys get this added to their scores: softmax turns it into an exact 0 without the NaNs -inf can make. */
const MASK_VALUE = -1e9;

type Json = Record<string, unknown>;

/**
 * Reads a Hugging Face BERT config.json (the `BertModel` of
 * sentence-transformers models such as all-MiniLM-L6-v2). Refuses what the
 * graph does not implement rather than building a different model.
 */
export function bertConfigFromHf(cfg: Json): BertConfig {
  const need = (name: string): number => {
    const v = cfg[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new Error(`config.json: ${name} must be a positive integer`);
    return v;
  };
  if (cfg.model_type !== 'bert') throw new Error(`config.json: model_type "${String(cfg.model_type)}" is not bert`);
  const act = cfg.hidden_act ?? 'gelu';
  if (act !== 'gelu') throw new Error(`config.json: hidden_act "${String(act)}" is not supported (only the exact erf "gelu")`);
  const posType = cfg.position_embedding_type ?? 'absolute';
  if (posType !== 'absolute') throw new Error(`config.json: position_embedding_type "${String(posType)}" is not supported`);
  const eps = cfg.layer_norm_eps ?? 1e-12;
  if (typeof eps !== 'number' || !(eps > 0)) throw new Error('config.json: layer_norm_eps must be a positive number');
  const c: BertConfig = {
    vocabSize: need('vocab_size'),
    hiddenSize: need('hidden_size'),
    numLayers: need('num_hidden_layers'),
    numHeads: need('num_attention_heads'),
    intermediateSize: need('intermediate_size'),
    maxPositions: need('max_position_embeddings'),
    typeVocabSize: need('type_vocab_size'),
    layerNormEps: eps,
  };
  if (c.hiddenSize % c.numHeads !== 0) throw new Error(`config.json: hidden_size ${c.hiddenSize} is not a multiple of num_attention_heads ${c.numHeads}`);
  return c;
}

/** Parameters of a BERT encoder of this shape (embeddings, layers, LayerNorms). */
export function bertParameterCount(c: BertConfig): number {
  const h = c.hiddenSize;
  const perLayer = 4 * (h * h + h) + 2 * (h * c.intermediateSize) + c.intermediateSize + h + 4 * h;
  return (c.vocabSize + c.maxPositions + c.typeVocabSize) * h + 2 * h + c.numLayers * perLayer;
}

/** Checks every array against the config, so a bad weight set fails here, not inside ONNX Runtime. */
export function validateBertWeights(w: BertWeights): void {
  const c = w.config;
  const h = c.hiddenSize;
  const i = c.intermediateSize;
  const expect = (name: string, a: Float32Array, n: number): void => {
    if (a.length !== n) throw new Error(`${name}: expected ${n} values, got ${a.length}`);
  };
  if (w.layers.length !== c.numLayers) throw new Error(`expected ${c.numLayers} layers, got ${w.layers.length}`);
  expect('wordEmbeddings', w.wordEmbeddings, c.vocabSize * h);
  expect('positionEmbeddings', w.positionEmbeddings, c.maxPositions * h);
  expect('tokenTypeEmbeddings', w.tokenTypeEmbeddings, c.typeVocabSize * h);
  expect('embLnGamma', w.embLnGamma, h);
  expect('embLnBeta', w.embLnBeta, h);
  w.layers.forEach((l, n) => {
    const p = `layers.${n}`;
    for (const k of ['wq', 'wk', 'wv', 'wo'] as const) expect(`${p}.${k}`, l[k], h * h);
    for (const k of ['bq', 'bk', 'bv', 'bo', 'bf', 'attnLnGamma', 'attnLnBeta', 'ffnLnGamma', 'ffnLnBeta'] as const) expect(`${p}.${k}`, l[k], h);
    expect(`${p}.wi`, l.wi, i * h);
    expect(`${p}.bi`, l.bi, i);
    expect(`${p}.wf`, l.wf, h * i);
  });
}

/**
 * Builds a BERT encoder as an ONNX model (opset 17, default domain only) with
 * the I/O of a transformers.js feature-extraction export: `input_ids`,
 * `attention_mask`, `token_type_ids` (int64 `[batch, seq]`) in,
 * `last_hidden_state` (`[batch, seq, hidden]`) out. Post-LayerNorm
 * Hugging Face BERT: word + position + token-type embeddings and LayerNorm,
 * then per layer self-attention with biases and an additive padding mask,
 * residual and LayerNorm, exact (erf) GELU feed-forward, residual and LayerNorm.
 * Any batch size and any sequence length up to `maxPositions`, right padding.
 */
export function buildBertOnnx(weights: BertWeights): Uint8Array {
  validateBertWeights(weights);
  const c = weights.config;
  const h = c.hiddenSize;
  const b = new GraphBuilder();

  const inputIds = b.input('input_ids', ElemType.INT64, ['batch_size', 'sequence_length']);
  const attentionMask = b.input('attention_mask', ElemType.INT64, ['batch_size', 'sequence_length']);
  const tokenTypeIds = b.input('token_type_ids', ElemType.INT64, ['batch_size', 'sequence_length']);

  const seqLen = b.op('Gather', [b.op('Shape', [inputIds]), b.int64([1], [])], { axis: attrInt(0) });
  const positions = b.op('Range', [b.int64([0], []), seqLen, b.int64([1], [])]); // [seq]
  const word = b.op('Gather', [b.float('embeddings.word_embeddings.weight', [c.vocabSize, h], weights.wordEmbeddings), inputIds], { axis: attrInt(0) });
  const position = b.op('Gather', [b.float('embeddings.position_embeddings.weight', [c.maxPositions, h], weights.positionEmbeddings), positions], { axis: attrInt(0) });
  const tokenType = b.op('Gather', [b.float('embeddings.token_type_embeddings.weight', [c.typeVocabSize, h], weights.tokenTypeEmbeddings), tokenTypeIds], { axis: attrInt(0) });
  const embeddings = b.op('Add', [b.op('Add', [word, position]), tokenType]); // [seq, h] broadcasts over the batch
  let x = layerNorm(b, embeddings, 'embeddings.LayerNorm', weights.embLnGamma, weights.embLnBeta, c.layerNormEps);

  // (1 - mask) * MASK_VALUE as [batch, 1, 1, seq]: padding keys vanish from every query's softmax.
  const maskF = b.op('Cast', [attentionMask], { to: attrInt(ElemType.FLOAT) });
  const bias = b.op('Mul', [b.op('Sub', [b.scalar(1), maskF]), b.scalar(MASK_VALUE)]);
  const attnBias = b.op('Unsqueeze', [bias, b.int64([1, 2])], {}, 'attention_bias');

  weights.layers.forEach((layer, i) => {
    x = encoderLayer(b, c, layer, `encoder.layer.${i}`, x, attnBias);
  });
  b.op('Identity', [x], {}, 'last_hidden_state');
  b.output('last_hidden_state', ElemType.FLOAT, ['batch_size', 'sequence_length', h]);
  return b.build('bert');
}

function layerNorm(b: GraphBuilder, x: string, name: string, gamma: Float32Array, beta: Float32Array, eps: number): string {
  const n = gamma.length;
  return b.op('LayerNormalization', [x, b.float(`${name}.weight`, [n], gamma), b.float(`${name}.bias`, [n], beta)], {
    axis: attrInt(-1),
    epsilon: attrFloat(eps),
  });
}

/** x @ W^T + bias for a `[out, in]` weight (stored transposed, as MatMul wants). */
function linear(b: GraphBuilder, x: string, name: string, w: Float32Array, bias: Float32Array, inDim: number): string {
  const out = bias.length;
  return b.op('Add', [b.op('MatMul', [x, b.float(`${name}.weight_t`, [inDim, out], stackTransposed([w], inDim))]), b.float(`${name}.bias`, [out], bias)]);
}

function encoderLayer(b: GraphBuilder, c: BertConfig, w: BertLayerWeights, p: string, x: string, attnBias: string): string {
  const h = c.hiddenSize;
  const headDim = h / c.numHeads;

  // One MatMul for q, k and v: fewer, larger GEMMs are faster on CPU.
  const qkv = b.op('Add', [
    b.op('MatMul', [x, b.float(`${p}.attention.self.qkv.weight_t`, [h, 3 * h], stackTransposed([w.wq, w.wk, w.wv], h))]),
    b.float(`${p}.attention.self.qkv.bias`, [3 * h], concat([w.bq, w.bk, w.bv])),
  ]);
  const [q, k, v] = b.opN('Split', [qkv, b.int64([h, h, h])], 3, { axis: attrInt(2) });
  const heads = (t: string, perm: number[]) => b.op('Transpose', [b.op('Reshape', [t, b.int64([0, 0, c.numHeads, headDim])])], { perm: attrInts(perm) });
  const qh = b.op('Mul', [heads(q!, [0, 2, 1, 3]), b.scalar(1 / Math.sqrt(headDim))]); // [b, nh, s, hd]
  const kt = heads(k!, [0, 2, 3, 1]); // [b, nh, hd, s]
  const vh = heads(v!, [0, 2, 1, 3]); // [b, nh, s, hd]
  const probs = b.op('Softmax', [b.op('Add', [b.op('MatMul', [qh, kt]), attnBias])], { axis: attrInt(-1) });
  const context = b.op('Reshape', [b.op('Transpose', [b.op('MatMul', [probs, vh])], { perm: attrInts([0, 2, 1, 3]) }), b.int64([0, 0, h])]);
  const attn = linear(b, context, `${p}.attention.output.dense`, w.wo, w.bo, h);
  const x1 = layerNorm(b, b.op('Add', [x, attn]), `${p}.attention.output.LayerNorm`, w.attnLnGamma, w.attnLnBeta, c.layerNormEps);

  const inter = linear(b, x1, `${p}.intermediate.dense`, w.wi, w.bi, h);
  // Exact GELU, 0.5·x·(1 + erf(x/√2)), written in the shape ONNX Runtime fuses into one Gelu kernel.
  const gelu = b.op('Mul', [b.op('Mul', [inter, b.op('Add', [b.op('Erf', [b.op('Div', [inter, b.scalar(Math.SQRT2)])]), b.scalar(1)])]), b.scalar(0.5)]);
  const ffn = linear(b, gelu, `${p}.output.dense`, w.wf, w.bf, c.intermediateSize);
  return layerNorm(b, b.op('Add', [x1, ffn]), `${p}.output.LayerNorm`, w.ffnLnGamma, w.ffnLnBeta, c.layerNormEps);
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
