import type { LlamaConfig, LlamaWeights } from './onnx-graph.js';
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
 */
export function randomLlamaWeights(config: LlamaConfig, seed: number, std = 0.02): LlamaWeights {
  const rand = mulberry32(seed);
  const headDim = config.dim / config.nHeads;
  const kvDim = config.nKvHeads * headDim;
  const { dim, hiddenDim } = config;
  const ones = (): Float32Array => new Float32Array(dim).fill(1);
  return {
    config: { ...config },
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
