import type { LlamaWeights } from '../../src/engine/onnx-graph.js';

function matvec(w: Float32Array, x: Float64Array, outDim: number, inDim: number): Float64Array {
  const out = new Float64Array(outDim);
  for (let o = 0; o < outDim; o++) {
    let s = 0;
    for (let i = 0; i < inDim; i++) s += w[o * inDim + i]! * x[i]!;
    out[o] = s;
  }
  return out;
}

function rmsnorm(x: Float64Array, w: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w[i]!);
}

/**
 * llama2.c run.c's forward pass, transcribed (per-head loops, float64; RoPE
 * on adjacent pairs, or on half-split pairs for `ropeLayout: 'half-split'`): an independent reference for the ONNX graph. Returns the
 * logits of every position of one unpadded sequence.
 */
export function referenceForward(w: LlamaWeights, tokens: number[]): Float64Array[] {
  const c = w.config;
  const hs = c.dim / c.nHeads;
  const kvDim = c.nKvHeads * hs;
  const kvMul = c.nHeads / c.nKvHeads;
  const keys: Float64Array[][] = w.layers.map(() => []);
  const values: Float64Array[][] = w.layers.map(() => []);
  const result: Float64Array[] = [];
  tokens.forEach((token, pos) => {
    let x = Float64Array.from(w.tokenEmbedding.subarray(token * c.dim, (token + 1) * c.dim));
    w.layers.forEach((l, li) => {
      const xb = rmsnorm(x, l.rmsAtt, c.normEps);
      const q = matvec(l.wq, xb, c.dim, c.dim);
      const k = matvec(l.wk, xb, kvDim, c.dim);
      const v = matvec(l.wv, xb, kvDim, c.dim);
      // Pair j of a head rotates by pos * theta^(-2j/hs): llama2.c pairs rows (2j, 2j+1), Hugging Face (j, j + hs/2).
      for (let i = 0; i < c.dim; i += 2) {
        const head = Math.floor(i / hs);
        const j = (i % hs) / 2;
        const freq = 1 / Math.pow(c.ropeTheta, (2 * j) / hs);
        const val = pos * freq;
        const fcr = Math.cos(val);
        const fci = Math.sin(val);
        const [a, b] = w.ropeLayout === 'interleaved' ? [i, i + 1] : [head * hs + j, head * hs + j + hs / 2];
        for (const vec of i < kvDim ? [q, k] : [q]) {
          const v0 = vec[a]!;
          const v1 = vec[b]!;
          vec[a] = v0 * fcr - v1 * fci;
          vec[b] = v0 * fci + v1 * fcr;
        }
      }
      keys[li]!.push(k);
      values[li]!.push(v);
      const att = new Float64Array(c.dim);
      for (let h = 0; h < c.nHeads; h++) {
        const kvh = Math.floor(h / kvMul);
        const scores = keys[li]!.map((kt) => {
          let s = 0;
          for (let i = 0; i < hs; i++) s += q[h * hs + i]! * kt[kvh * hs + i]!;
          return s / Math.sqrt(hs);
        });
        const max = Math.max(...scores);
        const exps = scores.map((s) => Math.exp(s - max));
        const sum = exps.reduce((a, b) => a + b, 0);
        exps.forEach((e, t) => {
          for (let i = 0; i < hs; i++) att[h * hs + i]! += (e / sum) * values[li]![t]![kvh * hs + i]!;
        });
      }
      const o = matvec(l.wo, att, c.dim, c.dim);
      x = x.map((xv, i) => xv + o[i]!);
      const xb2 = rmsnorm(x, l.rmsFfn, c.normEps);
      const h1 = matvec(l.w1, xb2, c.hiddenDim, c.dim);
      const h3 = matvec(l.w3, xb2, c.hiddenDim, c.dim);
      const hb = h1.map((g, i) => (g / (1 + Math.exp(-g))) * h3[i]!);
      const down = matvec(l.w2, hb, c.dim, c.hiddenDim);
      x = x.map((xv, i) => xv + down[i]!);
    });
    const xf = rmsnorm(x, w.rmsFinal, c.normEps);
    result.push(matvec(w.wcls ?? w.tokenEmbedding, xf, c.vocabSize, c.dim));
  });
  return result;
}
