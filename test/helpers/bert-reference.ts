import type { BertWeights } from '../../src/engine/bert-graph.js';

/** erf to ~1e-15: its Taylor series near 0, the continued fraction of erfc further out (JS has no Math.erf). */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = x;
    let sum = x;
    for (let n = 1; n < 80; n++) {
      term *= (-x * x) / n;
      sum += term / (2 * n + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  let k = ax;
  for (let n = 80; n >= 1; n--) k = ax + n / 2 / k;
  const erfc = Math.exp(-ax * ax) / (Math.sqrt(Math.PI) * k);
  return Math.sign(x) * (1 - erfc);
}

/** y = W x + b for a row-major [out, in] W. */
function linear(w: Float32Array, b: Float32Array, x: Float64Array): Float64Array {
  const out = b.length;
  const inDim = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = b[o]!;
    for (let i = 0; i < inDim; i++) s += w[o * inDim + i]! * x[i]!;
    y[o] = s;
  }
  return y;
}

function layerNorm(x: Float64Array, gamma: Float32Array, beta: Float32Array, eps: number): Float64Array {
  let mean = 0;
  for (const v of x) mean += v;
  mean /= x.length;
  let variance = 0;
  for (const v of x) variance += (v - mean) ** 2;
  variance /= x.length;
  const inv = 1 / Math.sqrt(variance + eps);
  return x.map((v, i) => (v - mean) * inv * gamma[i]! + beta[i]!);
}

const add = (a: Float64Array, b: Float64Array) => a.map((v, i) => v + b[i]!);

/**
 * Hugging Face BertModel's forward for one unpadded sequence, transcribed
 * token by token and head by head in float64: an independent reference for
 * the ONNX graph. Returns every token's last hidden state.
 */
export function bertReference(w: BertWeights, ids: readonly number[], tokenTypes: readonly number[] = ids.map(() => 0)): Float64Array[] {
  const c = w.config;
  const h = c.hiddenSize;
  const headDim = h / c.numHeads;
  const row = (table: Float32Array, i: number) => Float64Array.from(table.subarray(i * h, (i + 1) * h));
  let xs = ids.map((id, t) =>
    layerNorm(add(add(row(w.wordEmbeddings, id), row(w.positionEmbeddings, t)), row(w.tokenTypeEmbeddings, tokenTypes[t]!)), w.embLnGamma, w.embLnBeta, c.layerNormEps),
  );
  for (const l of w.layers) {
    const q = xs.map((x) => linear(l.wq, l.bq, x));
    const k = xs.map((x) => linear(l.wk, l.bk, x));
    const v = xs.map((x) => linear(l.wv, l.bv, x));
    const ctx = xs.map(() => new Float64Array(h));
    for (let head = 0; head < c.numHeads; head++) {
      const off = head * headDim;
      for (let i = 0; i < xs.length; i++) {
        const scores = k.map((kj) => {
          let s = 0;
          for (let d = 0; d < headDim; d++) s += q[i]![off + d]! * kj[off + d]!;
          return s / Math.sqrt(headDim);
        });
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j < xs.length; j++) {
          for (let d = 0; d < headDim; d++) ctx[i]![off + d]! += (e[j]! / z) * v[j]![off + d]!;
        }
      }
    }
    xs = xs.map((x, i) => layerNorm(add(x, linear(l.wo, l.bo, ctx[i]!)), l.attnLnGamma, l.attnLnBeta, c.layerNormEps));
    xs = xs.map((x) => {
      const inter = linear(l.wi, l.bi, x).map((u) => 0.5 * u * (1 + erf(u / Math.SQRT2)));
      return layerNorm(add(x, linear(l.wf, l.bf, inter)), l.ffnLnGamma, l.ffnLnBeta, c.layerNormEps);
    });
  }
  return xs;
}

/** Mean over tokens, then (optionally) L2 normalisation: sentence-transformers' pooling. */
export function meanPooled(hidden: readonly Float64Array[], normalize = false): Float64Array {
  const out = new Float64Array(hidden[0]!.length);
  for (const x of hidden) for (let d = 0; d < out.length; d++) out[d]! += x[d]! / hidden.length;
  if (!normalize) return out;
  const norm = Math.sqrt(out.reduce((s, v) => s + v * v, 0));
  return out.map((v) => v / norm);
}
