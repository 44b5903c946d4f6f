import type { LlamaConfig } from './onnx-graph.js';

/** Named model shapes for random-weight models (tests, benchmarks). */
export const PRESETS = {
  /** Small enough to build and run in milliseconds; grouped-query attention on so tests cover it. */
  tiny: {
    dim: 64,
    hiddenDim: 128,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    vocabSize: 512,
    maxSeqLen: 256,
    ropeTheta: 10000,
    normEps: 1e-5,
  },
  /** distilgpt2-class: about 81M parameters, the benchmark model. */
  distil: {
    dim: 768,
    hiddenDim: 2048,
    nLayers: 6,
    nHeads: 12,
    nKvHeads: 12,
    vocabSize: 50257,
    maxSeqLen: 1024,
    ropeTheta: 10000,
    normEps: 1e-5,
  },
  /**
   * A Llama of real size for single-stream speed and quantization (about
   * 85M parameters, 340 MB in fp32): every matrix is a full 768-wide product
   * while the 512-token vocabulary keeps the LM head small, so a decode step
   * is bound by reading the layers' weights. Everyone measures this shape.
   */
  'llama-85m': {
    dim: 768,
    hiddenDim: 2048,
    nLayers: 12,
    nHeads: 12,
    nKvHeads: 12,
    vocabSize: 512,
    maxSeqLen: 1024,
    ropeTheta: 10000,
    normEps: 1e-5,
  },
} as const satisfies Record<string, LlamaConfig>;

export type PresetName = keyof typeof PRESETS;

/** Returns the preset's config, or throws listing the valid names. */
export function getPreset(name: string): LlamaConfig {
  if (!Object.hasOwn(PRESETS, name)) {
    throw new Error(`unknown preset "${name}"; expected one of: ${Object.keys(PRESETS).join(', ')}`);
  }
  return { ...PRESETS[name as PresetName] };
}

/** Parameter count of a tied-embedding Llama model with this config. */
export function parameterCount(c: LlamaConfig): number {
  const headDim = c.dim / c.nHeads;
  const kvDim = c.nKvHeads * headDim;
  const perLayer = 2 * c.dim + c.dim * c.dim * 2 + 2 * kvDim * c.dim + 3 * c.hiddenDim * c.dim;
  return c.vocabSize * c.dim + c.nLayers * perLayer + c.dim;
}
