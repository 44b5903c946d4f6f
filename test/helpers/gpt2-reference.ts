import type { Gpt2Weights } from '../../src/engine/gpt2-graph.js';

/** x @ W for a Conv1D weight `[in, out]`, plus bias, in float64. */
function conv1d(x: Float64Array, w: Float32Array, bias: Float32Array): Float64Array {
  const inDim = x.length;
  const out = bias.length;
  const y = Float64Array.from(bias);
  for (let i = 0; i < inDim; i++) {
    const xi = x[i]!;
    for (let o = 0; o < out; o++) y[o]! += xi * w[i * out + o]!;
  }
  return y;
}

function layerNorm(x: Float64Array, gamma: Float32Array, beta: Float32Array, eps: number): Float64Array {
  const mean = x.reduce((a, b) => a + b, 0) / x.length;
  const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length;
  const inv = 1 / Math.sqrt(variance + eps);
  return x.map((v, i) => (v - mean) * inv * gamma[i]! + beta[i]!);
}

const geluNew = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

/**
 * Hugging Face's GPT2LMHeadModel forward, transcribed (per-head loops,
 * float64): an independent reference for the ONNX graph. Returns the logits
 * of every position of one unpadded sequence (positions 0..n-1).
 */
export function gpt2ReferenceForward(w: Gpt2Weights, tokens: number[]): Float64Array[] {
  const c = w.config;
  const h = c.hidden;
  const hd = h / c.heads;
  const keys: Float64Array[][] = w.layers.map(() => []);
  const values: Float64Array[][] = w.layers.map(() => []);
  return tokens.map((token, pos) => {
    let x = new Float64Array(h).map((_, i) => w.wte[token * h + i]! + w.wpe[pos * h + i]!);
    w.layers.forEach((l, li) => {
      const qkv = conv1d(layerNorm(x, l.ln1Gamma, l.ln1Beta, c.layerNormEps), l.attnW, l.attnB);
      const q = qkv.subarray(0, h);
      keys[li]!.push(qkv.slice(h, 2 * h));
      values[li]!.push(qkv.slice(2 * h, 3 * h));
      const ctx = new Float64Array(h);
      for (let head = 0; head < c.heads; head++) {
        const scores = keys[li]!.map((k) => {
          let s = 0;
          for (let i = 0; i < hd; i++) s += q[head * hd + i]! * k[head * hd + i]!;
          return s / Math.sqrt(hd);
        });
        const max = Math.max(...scores);
        const exps = scores.map((s) => Math.exp(s - max));
        const sum = exps.reduce((a, b) => a + b, 0);
        exps.forEach((e, t) => {
          for (let i = 0; i < hd; i++) ctx[head * hd + i]! += (e / sum) * values[li]![t]![head * hd + i]!;
        });
      }
      const attn = conv1d(ctx, l.attnProjW, l.attnProjB);
      x = x.map((v, i) => v + attn[i]!);
      const fc = conv1d(layerNorm(x, l.ln2Gamma, l.ln2Beta, c.layerNormEps), l.fcW, l.fcB).map(geluNew);
      const mlp = conv1d(fc, l.fcProjW, l.fcProjB);
      x = x.map((v, i) => v + mlp[i]!);
    });
    const xf = layerNorm(x, w.lnFGamma, w.lnFBeta, c.layerNormEps);
    const logits = new Float64Array(c.vocabSize);
    for (let v = 0; v < c.vocabSize; v++) {
      let s = 0;
      for (let i = 0; i < h; i++) s += xf[i]! * w.wte[v * h + i]!;
      logits[v] = s;
    }
    return logits;
  });
}
