import type { BertConfig, BertWeights } from './bert-graph.js';
import type { Gpt2Config, Gpt2Weights } from './gpt2-graph.js';
import type { LlamaConfig, LlamaWeights, RopeLayout } from './onnx-graph.js';
import { SeededRng } from './rng.js';

/** A seeded source of floats in [0, 1) (the engine's sampling PRNG, reused for weights). */
export function mulberry32(seed: number): () => number {
  const rng = new SeededRng(seed);
  return () => rng.next();
}

/** Fills `n` floats with N(0, std²) samples (Box-Muller, both outputs used). */
function normal(rand: () => number, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - rand(); // (0, 1]: keeps log finite
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    const theta = 2 * Math.PI * rand();
    out[i] = r * Math.cos(theta);
    if (i + 1 < n) out[i + 1] = r * Math.sin(theta);
  }
  return out;
}

/**
 * Seeded random weights (std 0.02, norm gains 1, tied embeddings): the same
 * seed and config always give the same model, so benchmarks are repeatable.
 * `ropeLayout` only labels how the q/k rows pair for RoPE (random rows are
 * random either way): `interleaved` (default) as llama2.c checkpoints and
 * this project's presets, `half-split` as Hugging Face Llama checkpoints.
 */
export function randomLlamaWeights(config: LlamaConfig, seed: number, std = 0.02, ropeLayout: RopeLayout = 'interleaved'): LlamaWeights {
  const rand = mulberry32(seed);
  const headDim = config.dim / config.nHeads;
  const kvDim = config.nKvHeads * headDim;
  const { dim, hiddenDim } = config;
  const ones = (): Float32Array => new Float32Array(dim).fill(1);
  return {
    config: { ...config },
    ropeLayout,
    tokenEmbedding: normal(rand, config.vocabSize * dim, std),
    layers: Array.from({ length: config.nLayers }, () => ({
      rmsAtt: ones(),
      wq: normal(rand, dim * dim, std),
      wk: normal(rand, kvDim * dim, std),
      wv: normal(rand, kvDim * dim, std),
      wo: normal(rand, dim * dim, std),
      rmsFfn: ones(),
      w1: normal(rand, hiddenDim * dim, std),
      w2: normal(rand, dim * hiddenDim, std),
      w3: normal(rand, hiddenDim * dim, std),
    })),
    rmsFinal: ones(),
  };
}

/**
 * Seeded random BERT weights: matrices and embeddings N(0, std²), biases
 * N(0, std²), LayerNorm gains 1 + N(0, std²) and shifts N(0, std²) (not the
 * usual 1 and 0, so a graph that drops a bias or a gain is caught by a
 * reference comparison). The same seed and config give the same model.
 */
export function randomBertWeights(config: BertConfig, seed: number, std = 0.02): BertWeights {
  const rand = mulberry32(seed);
  const h = config.hiddenSize;
  const n = (count: number) => normal(rand, count, std);
  const gain = () => n(h).map((v) => 1 + v);
  return {
    config: { ...config },
    wordEmbeddings: n(config.vocabSize * h),
    positionEmbeddings: n(config.maxPositions * h),
    tokenTypeEmbeddings: n(config.typeVocabSize * h),
    embLnGamma: gain(),
    embLnBeta: n(h),
    layers: Array.from({ length: config.numLayers }, () => ({
      wq: n(h * h),
      bq: n(h),
      wk: n(h * h),
      bk: n(h),
      wv: n(h * h),
      bv: n(h),
      wo: n(h * h),
      bo: n(h),
      attnLnGamma: gain(),
      attnLnBeta: n(h),
      wi: n(config.intermediateSize * h),
      bi: n(config.intermediateSize),
      wf: n(h * config.intermediateSize),
      bf: n(h),
      ffnLnGamma: gain(),
      ffnLnBeta: n(h),
    })),
  };
}

/**
 * Seeded random GPT-2 weights: matrices and embeddings N(0, std²), biases
 * N(0, std²), LayerNorm gains 1 + N(0, std²) and shifts N(0, std²) (not the
 * usual 1 and 0, so a graph that drops a bias or a gain is caught by a
 * reference comparison). The same seed and config give the same model.
 */
export function randomGpt2Weights(config: Gpt2Config, seed: number, std = 0.02): Gpt2Weights {
  const rand = mulberry32(seed);
  const h = config.hidden;
  const n = (count: number) => normal(rand, count, std);
  const gain = () => n(h).map((v) => 1 + v);
  return {
    config: { ...config },
    wte: n(config.vocabSize * h),
    wpe: n(config.positions * h),
    layers: Array.from({ length: config.layers }, () => ({
      ln1Gamma: gain(),
      ln1Beta: n(h),
      attnW: n(h * 3 * h),
      attnB: n(3 * h),
      attnProjW: n(h * h),
      attnProjB: n(h),
      ln2Gamma: gain(),
      ln2Beta: n(h),
      fcW: n(h * config.inner),
      fcB: n(config.inner),
      fcProjW: n(config.inner * h),
      fcProjB: n(h),
    })),
    lnFGamma: gain(),
    lnFBeta: n(h),
  };
}
