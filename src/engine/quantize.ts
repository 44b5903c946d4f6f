/**
 * Block-wise symmetric weight quantization into ONNX Runtime's contrib
 * `MatMulNBits` layout (`com.microsoft`), and the record of how a model was
 * quantized. The one place that decides what a quantize mode means.
 *
 * MatMulNBits (docs/ContribOperators.md of microsoft/onnxruntime) computes
 * `Y = A @ dequant(B)^T` with `dequant(B)` of shape [N, K]:
 * - `B` uint8 [N, k_blocks, blob_size], k_blocks = ceil(K / block_size),
 *   blob_size = block_size * bits / 8: the weights of output column n, K
 *   running along the blocks; 4-bit codes two to a byte, the first in the
 *   low nibble;
 * - `scales` float [N, k_blocks] (this builder writes them as [N * k_blocks],
 *   which ONNX Runtime's CPU kernel reads the same);
 * - no `zero_points` input: the default zero point 2^(bits-1) (8 for 4-bit,
 *   128 for 8-bit) applies, i.e. symmetric quantization,
 *   `w = (code - 2^(bits-1)) * scale`.
 * A llama2.c / PyTorch linear weight is row-major [out, in] = [N, K], so it
 * is quantized as it is stored, without a transpose.
 * test/unit/quantize.test.ts proves the layout against onnxruntime-node.
 */

/** How a model directory's fused graph stores its linear weights (fp32 when not set). */
export type QuantizeMode = 'int8' | 'int4';
export const QUANTIZE_MODES: readonly QuantizeMode[] = ['int8', 'int4'];

/** The only block size built (MatMulNBits allows any power of two >= 16). */
export const QUANT_BLOCK_SIZE = 32;

/**
 * How a block's scale is chosen. `absmax`: the value of largest magnitude
 * maps exactly to the most negative code. `mse`: a search around that (21
 * candidate scales, each refit by least squares over its codes) keeps the
 * scale with the least squared error of the block; same layout, same cost
 * at run time, slower to build.
 */
export type ScaleMethod = 'absmax' | 'mse';

/** What the fused graph builder needs to quantize: see buildLlamaOnnxFused's `quantize` option. */
export interface FusedQuantizeOptions {
  bits: 4 | 8;
  blockSize: 32;
  /**
   * MatMulNBits' accuracy_level: 0 (unset) and 1 compute with float
   * activations; 4 lets MLAS quantize the activations to int8 per block and
   * run integer dot products.
   */
  accuracyLevel: number;
  /** Whether the LM head (the classifier, tied to the embedding or not) is quantized too. */
  lmHead: boolean;
  /** How each block's scale is chosen (default absmax). */
  scales?: ScaleMethod;
}

/**
 * How a model directory was quantized, as written to config.json under
 * `quantization` and reported by /v1/health, the GraphQL `model` query and
 * /v1/models.
 */
export interface QuantizationInfo {
  mode: QuantizeMode;
  /** ONNX Runtime's contrib operator that runs the quantized weights. */
  method: 'MatMulNBits';
  bits: 4 | 8;
  blockSize: number;
  /** Symmetric: no zero points stored; the operator's default 2^(bits-1) applies. */
  symmetric: true;
  /** How each block's scale was chosen. */
  scaleMethod: ScaleMethod;
  accuracyLevel: number;
  /** Which tensors are quantized: every layer's linear weights (q/k/v, o, gate/up, down), always. */
  linearLayers: true;
  /** The LM head (classifier). */
  lmHead: boolean;
  /** The token embedding (a Gather): stays float32. */
  embedding: false;
  /** Which graph file carries the quantized weights; the plain transformers.js graph stays fp32. */
  graph: 'fused';
}

/**
 * Defaults per mode, chosen by measurement (bench/quantize-quality.ts,
 * README "Quantization"): accuracy_level 4 (int8 activations) is the only
 * level at which 8-bit weights run fast in ONNX Runtime 1.30's CPU kernel
 * (levels 0/1: several times slower than fp32) and the fastest for 4-bit,
 * at a small cost in agreement for 8-bit and none measurable for 4-bit; the
 * LM head stays float32 (quantizing it lowers stories260K's agreement and
 * KL clearly, and is 0.5% of llama-85m's weights, so no speed to win);
 * `mse` scales beat `absmax` on every quality figure at no run-time cost.
 */
export const QUANTIZE_DEFAULTS: Record<QuantizeMode, FusedQuantizeOptions> = {
  int8: { bits: 8, blockSize: QUANT_BLOCK_SIZE, accuracyLevel: 4, lmHead: false, scales: 'mse' },
  int4: { bits: 4, blockSize: QUANT_BLOCK_SIZE, accuracyLevel: 4, lmHead: false, scales: 'mse' },
};

/** Parses a CLI or environment value; throws naming the accepted ones. */
export function parseQuantizeMode(value: string): QuantizeMode {
  if ((QUANTIZE_MODES as readonly string[]).includes(value)) return value as QuantizeMode;
  throw new Error(`unknown quantize mode "${value}"; expected one of: ${QUANTIZE_MODES.join(', ')}`);
}

/** The record written beside a graph built with `options`. */
export function quantizationInfo(options: FusedQuantizeOptions): QuantizationInfo {
  return {
    mode: options.bits === 8 ? 'int8' : 'int4',
    method: 'MatMulNBits',
    bits: options.bits,
    blockSize: options.blockSize,
    symmetric: true,
    scaleMethod: options.scales ?? 'absmax',
    accuracyLevel: options.accuracyLevel,
    linearLayers: true,
    lmHead: options.lmHead,
    embedding: false,
    graph: 'fused',
  };
}

/** config.json's spelling of the record (snake_case, as the rest of that file). */
export function quantizationConfigJson(q: QuantizationInfo): Record<string, unknown> {
  return {
    mode: q.mode,
    method: q.method,
    bits: q.bits,
    block_size: q.blockSize,
    symmetric: q.symmetric,
    scale_method: q.scaleMethod,
    accuracy_level: q.accuracyLevel,
    quantized: ['layers.*.self_attn.qkv_proj', 'layers.*.self_attn.o_proj', 'layers.*.mlp.gate_up_proj', 'layers.*.mlp.down_proj', ...(q.lmHead ? ['lm_head'] : [])],
    lm_head: q.lmHead,
    embed_tokens: q.embedding,
    graph: q.graph,
  };
}

/**
 * Reads config.json's `quantization` back; undefined when absent (fp32).
 * Throws on a record this build cannot have written, so a model directory
 * never claims what it is not.
 */
export function parseQuantizationConfig(raw: unknown): QuantizationInfo | undefined {
  if (raw === undefined || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  const bits = r.bits;
  const blockSize = r.block_size;
  const accuracyLevel = r.accuracy_level;
  if ((bits !== 4 && bits !== 8) || typeof blockSize !== 'number' || typeof accuracyLevel !== 'number' || r.method !== 'MatMulNBits') {
    throw new Error(`config.json: unreadable "quantization" record ${JSON.stringify(raw)}`);
  }
  const scales = r.scale_method === 'mse' ? 'mse' : 'absmax';
  return quantizationInfo({ bits, blockSize: blockSize as 32, accuracyLevel, lmHead: r.lm_head === true, scales });
}

/** A [N, K] matrix in MatMulNBits' layout. */
export interface QuantizedMatrix {
  n: number;
  k: number;
  bits: 4 | 8;
  blockSize: number;
  kBlocks: number;
  blobSize: number;
  /** uint8 [N, kBlocks, blobSize]. */
  data: Uint8Array;
  /** float32 [N * kBlocks] (row n's blocks contiguous). */
  scales: Float32Array;
}

/**
 * Quantizes row-major `w` [n, k] (a linear layer's [out, in]) block-wise
 * along k: each block of `blockSize` values of one row gets one scale, the
 * value of largest magnitude `m` maps to code -2^(bits-1) exactly (scale =
 * m / -2^(bits-1), which may be negative), so all 2^bits codes are used;
 * the others round to nearest and clamp. A last block shorter than
 * `blockSize` (k not a multiple) is padded with zero codes.
 */
export function quantizeBlockwise(
  w: Float32Array,
  n: number,
  k: number,
  bits: 4 | 8,
  blockSize: number = QUANT_BLOCK_SIZE,
  method: ScaleMethod = 'absmax',
): QuantizedMatrix {
  if (w.length !== n * k) throw new Error(`quantizeBlockwise: ${w.length} values for [${n}, ${k}]`);
  if (blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) throw new Error(`block size ${blockSize} must be a power of two >= 16`);
  const kBlocks = Math.ceil(k / blockSize);
  const blobSize = (blockSize * bits) / 8;
  const zero = 1 << (bits - 1);
  const qMin = -zero;
  const qMax = zero - 1;
  const data = new Uint8Array(n * kBlocks * blobSize);
  const scales = new Float32Array(n * kBlocks);
  const codes = new Uint8Array(blockSize);
  for (let row = 0; row < n; row++) {
    const rowBase = row * k;
    for (let blk = 0; blk < kBlocks; blk++) {
      const start = blk * blockSize;
      const end = Math.min(start + blockSize, k);
      let m = 0;
      for (let i = start; i < end; i++) {
        const v = w[rowBase + i]!;
        if (Math.abs(v) > Math.abs(m)) m = v;
      }
      let scale = m === 0 ? 0 : Math.fround(m / qMin);
      if (method === 'mse' && m !== 0) scale = searchScale(w, rowBase + start, rowBase + end, scale, qMin, qMax);
      scales[row * kBlocks + blk] = scale;
      const inv = scale === 0 ? 0 : 1 / scale;
      codes.fill(zero);
      for (let i = start; i < end; i++) {
        const q = Math.min(qMax, Math.max(qMin, Math.round(w[rowBase + i]! * inv)));
        codes[i - start] = q + zero;
      }
      const out = (row * kBlocks + blk) * blobSize;
      if (bits === 8) {
        data.set(codes, out);
      } else {
        for (let j = 0; j < blobSize; j++) data[out + j] = codes[2 * j]! | (codes[2 * j + 1]! << 4);
      }
    }
  }
  return { n, k, bits, blockSize, kBlocks, blobSize, data, scales };
}

/** Squared error of w[start..end) coded with `scale` (float32, as stored). */
function blockError(w: Float32Array, start: number, end: number, scale: number, qMin: number, qMax: number): number {
  const inv = 1 / scale;
  let err = 0;
  for (let i = start; i < end; i++) {
    const d = w[i]! - scale * Math.min(qMax, Math.max(qMin, Math.round(w[i]! * inv)));
    err += d * d;
  }
  return err;
}

/**
 * The 'mse' scale of w[start..end): around the absmax scale, codes for each
 * candidate, the least-squares scale for those codes, the one of least error.
 */
function searchScale(w: Float32Array, start: number, end: number, absmaxScale: number, qMin: number, qMax: number): number {
  let best = absmaxScale;
  let bestErr = blockError(w, start, end, absmaxScale, qMin, qMax);
  for (let t = -10; t <= 10; t++) {
    const inv = (1 + 0.015 * t) / absmaxScale;
    let xl = 0;
    let ll = 0;
    for (let i = start; i < end; i++) {
      const l = Math.min(qMax, Math.max(qMin, Math.round(w[i]! * inv)));
      xl += w[i]! * l;
      ll += l * l;
    }
    if (ll === 0) continue;
    const scale = Math.fround(xl / ll);
    const err = blockError(w, start, end, scale, qMin, qMax);
    if (err < bestErr) {
      best = scale;
      bestErr = err;
    }
  }
  return best;
}

/** The float32 [n, k] matrix MatMulNBits multiplies by: `(code - 2^(bits-1)) * scale`. */
export function dequantize(q: QuantizedMatrix): Float32Array {
  const out = new Float32Array(q.n * q.k);
  const zero = 1 << (q.bits - 1);
  for (let row = 0; row < q.n; row++) {
    for (let i = 0; i < q.k; i++) {
      const blk = Math.floor(i / q.blockSize);
      const j = i % q.blockSize;
      const base = (row * q.kBlocks + blk) * q.blobSize;
      const code = q.bits === 8 ? q.data[base + j]! : (q.data[base + (j >> 1)]! >> ((j & 1) * 4)) & 0xf;
      out[row * q.k + i] = Math.fround((code - zero) * q.scales[row * q.kBlocks + blk]!);
    }
  }
  return out;
}
