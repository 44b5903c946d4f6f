/**
 * The fused Llama graph for the engine's batched decode, built from ONNX
 * Runtime's CPU contrib operators (`com.microsoft`: SkipSimplifiedLayerNormalization,
 * RotaryEmbedding, FusedMatMul, GroupQueryAttention) as onnxruntime-genai's
 * model builder emits them, returning logits for one position per row.
 *
 * Findings (onnxruntime-node 1.30.0, CPU; checked by test/unit/fused-graph.test.ts
 * and test/unit/kv-batch.test.ts unless said otherwise):
 *
 * - SimplifiedLayerNormalization resolves only in the default domain (a
 *   `com.microsoft` node fails: "not a registered function/op");
 *   SkipSimplifiedLayerNormalization, RotaryEmbedding, FusedMatMul and
 *   GroupQueryAttention are `com.microsoft`. ORT fuses x*Sigmoid(x) into
 *   QuickGelu by itself. Packed QKV (one MatMul + Split) and three separate
 *   MatMuls measure the same within noise; packed is kept.
 * - RoPE: `rotary_interleaved=1` (GroupQueryAttention) and `interleaved=1`
 *   (RotaryEmbedding) are llama2.c's adjacent-pair rotation, so no row
 *   permutation is needed; logits match the plain graph within ~1e-5.
 *   Weights in Hugging Face's half-split layout (`ropeLayout`) get
 *   `interleaved=0`, rotate_half, likewise without a permutation.
 *   GroupQueryAttention's own rotary needs head_dim % 16 == 0 ("head_size
 *   shall be a multiple of 16"); stories260K has head_dim 8, so the graph
 *   rotates q and k with RotaryEmbedding there (always, in 'external' mode).
 * - GroupQueryAttention ('gqa' mode), per the brief:
 *   (a) right-padded batched prefill (seqlens_k = len-1, total = padded length)
 *       gives each row's logits as if run alone;
 *   (b) one decode step for rows of different lengths (seqlens_k = past length)
 *       equals each row alone; total_sequence_length must be > 1 there
 *       (seq == total is taken for a first prompt and the past is ignored);
 *   (c) the same ort.Tensor fed as past and fetched as present is appended in
 *       place (no clear-and-copy: positions beyond those written keep their old
 *       contents), and a tensor over a subarray view of a bigger Float32Array
 *       is read and written at its byte offset, rows outside untouched. BUT
 *       the 1.30 Node binding then copies every fetched output, preallocated
 *       or not, into a fresh ArrayBuffer for run()'s result (its
 *       OrtValueToNapiValue copies; the preallocated tensor is filled too, the
 *       returned one is a different object). Every step therefore copies the
 *       whole [n, kv, maxSeqLen, hd] cache of every layer into JS garbage:
 *       distil batch 16 takes ~860 ms per step, 5x the plain graph. The same
 *       goes for a preallocated `logits` fetch: ORT writes it in place and the
 *       binding still allocates and copies, so it saves nothing.
 *   (d) a second chunk of a prompt (seq > 1 with cached tokens) works at
 *       batch 1 only ("batch_size must be 1 when sequence_length > 1 and past
 *       context is given").
 * - Hence the default 'external' attention: the cache is a plain input (the
 *   binding wraps the typed array's memory without copying, byteOffset
 *   respected), scores against the cache and against this run's keys are two
 *   FusedMatMuls (transB) masked by each row's cached length and causality,
 *   joined for one softmax, and the two value products summed. Only this
 *   run's keys/values come out ([n, kv, seq, hd]); the caller stores them
 *   (KvBatch). Nothing proportional to the cache is written or copied per
 *   step; the cache is read once, whole (so KvBatch keeps its per-row
 *   reservation near the longest row). (a), (b) and (d) hold at ANY batch
 *   size, also with mixed chunk lengths in one run; (e) the stories260K
 *   golden greedy outputs reproduce exactly, the three prompts prefilled
 *   together right-padded and decoded together.
 * - MLAS runs batched single-row products without repacking the cache only
 *   when alpha == 1: folding 1/sqrt(head_dim) into wq halved the score
 *   products (distil batch 16: 14 -> 8 ms per step).
 * - Gathering the `logits_index` positions before the final norm: a
 *   200-token distil prefill goes from ~600 to ~1250 tokens/s (the LM head is
 *   38.6M of the 81M parameters).
 * - Storing keys transposed ([kv, hd, capacity]) or the classifier as a
 *   pre-transposed MatMul instead of Gemm(transB) measured no better.
 * - Session options (bench/graph-micro.ts, kvbatch): graphOptimizationLevel
 *   basic/extended/all alike (the graph is fused already); intraOpNumThreads
 *   1 halves distil's speed (2, the default here, is best); turning intra-op
 *   spinning off costs ~5% on distil and is noise on stories260K; turning the
 *   CPU arena off makes distil batch-1 steps ~2x slower. Defaults win.
 *
 * Measured (bench/graph-micro.ts; 2-core AMD EPYC VM shared with other work,
 * medians, context 300, 200-token prompt; ms per decode step):
 *
 *   distil (81M)         batch 1   batch 4   batch 16 (tok/s)   prefill tok/s
 *   plain graph            22.8      57.3     173.8  (92)            598
 *   gqa in place           34.1     117.6     859.8  (19)            989
 *   external               20.6      25.4      49.5 (324)           1250
 *   KvBatch (external)  18.8-21.9    25.5     49-59 (270-326)    1200-1270
 *
 *   stories260K          batch 1   batch 4   batch 16 (tok/s)   prefill tok/s
 *   plain graph            1.14      2.36      5.91 (2700)          24800
 *   gqa in place           1.11      1.45      4.68 (3400)          37600
 *   external            0.55-0.71 0.84-1.10 2.49-3.32 (~5500)     24-29k
 *   KvBatch (external)  0.49-0.76 0.83-1.34 2.56-3.27 (~5500)     26-33k
 *
 * distil batch 16 decodes at ~0.26 of the fused prefill rate (1250 tok/s),
 * ~0.54 of the plain graph's (598). Per step at batch 16 it does 2.6 GFLOP
 * (the LM head alone is half of it, and prefill skips it) at ~60 GFLOP/s,
 * plus reading the cache (~16 ms): float32 on two cores stays above ~30 ms.
 * stories260K at batch 16 spends most of its ~2.5 ms in 5 layers x 4 batched
 * products of 128 tiny matrices (head_dim 8) over the cache, and ~200 node
 * launches; well above the 1 ms aimed at.
 *
 * One stream on llama-85m (issue 11; npm run bench:profile, bench/decode-ab.ts;
 * results in bench/results/2026-12-02-profile.json). Measured 2026-12-02 on the
 * same 2-core VM while other benchmarks and a llama.cpp build ran beside
 * (load average 7-11): absolute times are 2-3x the quiet machine's (the
 * issue's 15.5 ms a token), so only ratios within one run are given weight.
 *
 * - Where a batch-1 decode step goes (ONNX Runtime's profiler, spinning off,
 *   context ~340, KV reservation 384): weight products 73% of the time inside
 *   ORT (gate_up 32%, qkv 18%, down 18%, o 5%, LM head 0.5%: MLAS prepacks every
 *   MatMul weight, the profiler shows them with the activation as their only
 *   input), attention products over the cache 11% (q.k 5%, p.v 5%: 48
 *   launches of 12 single-row products), reshapes/transposes/splits/adds/concat
 *   6%, rotary 1%, norms 1%, SiLU 0.6%, the executor between kernels 7%. The
 *   Node binding (JS-side run - ORT's model_run) is 2-3% and the engine's own
 *   work between two runs (KV writes 0.2 ms, feeds 0.1-0.2 ms, processors and
 *   the draw over 512 logits 0.1 ms, the scheduler) ~0.7 ms. Prefill of 300
 *   tokens in one run: ~1.1-1.7 s here (three to four times the quiet figure),
 *   MatMuls 80% of it. The per-op profile under-states what the non-product
 *   part costs in wall time: decode-ab's weight-products-only graph (the same
 *   48 products and the LM head, chained, nothing else) takes a best step of
 *   8.7-10.5 ms (33-39 GB/s of weights) where the whole graph takes 19.4-20.5
 *   ms (17 GB/s), and the whole graph on one thread is as fast as on two
 *   (best 19.1 vs 20.5 ms) while the products alone are 2.4x faster on two.
 *   So the ~400 other nodes (about 100 of them handing work to the second
 *   thread, which parks between kernels) cost as much as reading the weights
 *   when the cores are shared: the remaining gap to the bandwidth is there,
 *   not in MLAS's products.
 * - Effective weight bandwidth at batch 1 (341 MB / the engine's inter-token
 *   latency): 7.3 GB/s, 32% of the 23 GB/s a read-only sum reached in the same
 *   run (bench/lib/membw.ts; 2 threads; the quiet machine measured ~39 GB/s).
 *   The 85% target (>= 1.8x the issue's 15.5 ms) is not reached on fp32.
 * - Intra-op spinning (ORT's default) is now off for the decoder sessions
 *   (ORT_SPINNING=1 restores it): 12 alternating rounds, batch-1 llama-85m,
 *   spinning on vs off: median step 0.56x (0.15..0.78 over rounds), best step
 *   0.66x (0.23..1.01), CPU 0.56x; the products-only graph likewise 0.60x.
 *   Through the server (npm run bench, c=1, four runs in turn with
 *   ORT_SPINNING=1, 0, 1, 0; bench/results/2026-12-02-llama-85m-spinning.json):
 *   inter-token latency 164 and 141 ms spinning vs 53 and 70 ms not (2.0-3.1x).
 *   (The older note above, -5% on distil without spinning, was measured on a
 *   quiet machine; with spinning the two ORT threads fight every other process
 *   for the two cores.)
 * - Tried, no measurable difference within the noise of these runs (+-10%):
 *   headsFirst (3 nodes a layer for the q/k/v split instead of 7; bitwise the
 *   same logits; kept as an option, default off), unpacked q/k/v,
 *   session.use_env_allocators, the CPU arena off, one intra-op thread.
 *   Worse: session.disable_prepacking (MLAS's M=1 kernel over the unpacked
 *   [K, N] weights: 0.73x in CPU time, the products-only graph 0.86x).
 * - Outside ORT, the draw was the one large item: top-p over distil's 50,257
 *   random-weight logits (a flat distribution) took 9.6 ms a row in the
 *   comparator sort of the nucleus's boundary bucket (a 38 ms step at batch 1;
 *   at batch 16, 258 ms between runs against 194 ms in them); sampling.ts now
 *   orders it with a radix sort (same ids, same order).
 */
import { GraphBuilder, ElemType, attrFloat, attrInt, attrInts } from './onnx-builder.js';
import { quantizeBlockwise, type FusedQuantizeOptions } from './quantize.js';
import {
  floatLinear,
  pastKeyName,
  pastValueName,
  presentKeyName,
  presentValueName,
  ropeCosSin,
  swiGluMlp,
  validateLlamaWeights,
  type LinearLayer,
  type LlamaConfig,
  type LlamaLayerWeights,
  type LlamaWeights,
} from './onnx-graph.js';

/** Graph inputs of the fused graph besides the per-layer KV buffers. */
export const FUSED_INPUTS = {
  inputIds: 'input_ids',
  /** 'external' attention: int64 [batch], tokens already cached per row. */
  pastLengths: 'past_sequence_lengths',
  /** 'gqa' attention: int32 [batch], each row's total length after this run minus 1. */
  seqlensK: 'seqlens_k',
  /** 'gqa' attention: int32 scalar. */
  totalSequenceLength: 'total_sequence_length',
  /** int64 [batch]: flat index into the batch*seq positions whose logits are returned. */
  logitsIndex: 'logits_index',
} as const;

/** 'external' attention outputs: the rotated keys and the values of this run's tokens, [batch, kv, seq, headDim]. */
export const newKeyName = (layer: number): string => `new.${layer}.key`;
export const newValueName = (layer: number): string => `new.${layer}.value`;

/** Build variants, for measurement; the defaults are the fastest measured. */
export interface FusedGraphOptions {
  /**
   * 'external' (default): attention reads the KV buffers as plain inputs and
   * returns only the new tokens' keys and values (`new.{i}.key|value`),
   * which the caller writes into its buffers. 'gqa': GroupQueryAttention
   * appends to the KV buffers in place (`present.{i}.key|value` fetched into
   * the past tensors).
   */
  attention?: 'external' | 'gqa';
  /** One MatMul producing packed QKV (default true). */
  packedQkv?: boolean;
  /**
   * 'external' attention with packed QKV: split the packed product into heads
   * by one Reshape + Transpose to [batch, heads, seq, head_dim] and one Split
   * along the head axis, and rotate q and k in that 4-D form (3 nodes a layer
   * where the split-then-per-tensor reshape/transpose takes 7). Default false.
   */
  headsFirst?: boolean;
  /**
   * 'gqa' only: let GroupQueryAttention apply RoPE (`do_rotary`). ONNX
   * Runtime's CPU kernel requires head_dim % 16 == 0 for that; 'auto'
   * (default) uses it when allowed and otherwise rotates q and k with the
   * RotaryEmbedding contrib op.
   */
  rotaryInAttention?: boolean | 'auto';
  /**
   * Block-wise quantized weights (src/engine/quantize.ts): every layer's
   * linear layers (packed QKV, o_proj, gate/up, down) become `MatMulNBits`
   * (`com.microsoft`), and the LM head too when `lmHead`. The token
   * embedding's Gather stays float32. Absent: float32 MatMuls, the graph
   * byte for byte as without the option.
   */
  quantize?: FusedQuantizeOptions;
}

const MS = 'com.microsoft';
const MASK_VALUE = -1e9;

/** Whether ONNX Runtime's CPU GroupQueryAttention can apply RoPE itself for this head size. */
export function gqaRotarySupported(headDim: number): boolean {
  return headDim % 16 === 0;
}

/**
 * Builds the Llama decoder for the engine's batched decode with ONNX
 * Runtime's CPU contrib operators (see the findings at the top of this file).
 * Every run returns logits for one position per row only.
 *
 * 'external' attention (default). Inputs: `input_ids` int64 [batch, seq]
 * (rows right-padded to seq); `past_sequence_lengths` int64 [batch] (tokens
 * already cached in each row; its new tokens take positions
 * past..past+seq-1); `logits_index` int64 [batch] (flat index into the
 * batch*seq positions, e.g. `b*seq + len_b - 1`);
 * `past_key_values.{i}.key|value` float32 [batch, kv_heads, capacity,
 * head_dim] (positions >= a row's past length are ignored; capacity may be
 * any size >= 1, and is read whole, so keep it near the longest row).
 * Outputs: `logits` [batch, vocab] and `new.{i}.key|value` [batch, kv_heads,
 * seq, head_dim], the rotated keys and values of this run's tokens, for the
 * caller to store at positions past..past+seq-1.
 *
 * 'gqa' attention. Inputs: `input_ids`; `seqlens_k` int32 [batch] (each
 * row's total length after this run, minus 1); `total_sequence_length` int32
 * scalar; `logits_index`; `past_key_values.{i}.key|value` float32 [batch,
 * kv_heads, maxSeqLen, head_dim]. Outputs `logits` and
 * `present.{i}.key|value` of the past's shape; pass the past tensors as the
 * present fetches and ONNX Runtime appends the new keys and values in place.
 * `total_sequence_length` must equal seq in a prefill run (no cached
 * tokens), be > 1 in a decode run (seq 1); seq > 1 with cached tokens works
 * only at batch 1, with total_sequence_length = the row's total length.
 */
export function buildLlamaOnnxFused(weights: LlamaWeights, options: FusedGraphOptions = {}): Uint8Array {
  validateLlamaWeights(weights);
  const c = weights.config;
  const headDim = c.dim / c.nHeads;
  const mode = options.attention ?? 'external';
  const packed = options.packedQkv ?? true;
  const rotaryOpt = options.rotaryInAttention ?? 'auto';
  const rotaryInGqa = mode === 'gqa' && (rotaryOpt === 'auto' ? gqaRotarySupported(headDim) : rotaryOpt);
  const b = new GraphBuilder();
  const linear = options.quantize ? matMulNBitsLinear(b, options.quantize) : floatLinear(b);

  const inputIds = b.input(FUSED_INPUTS.inputIds, ElemType.INT64, ['batch_size', 'sequence_length']);
  let pastLen: string;
  let gqaInputs = { seqlensK: '', totalLen: '' };
  if (mode === 'gqa') {
    gqaInputs = {
      seqlensK: b.input(FUSED_INPUTS.seqlensK, ElemType.INT32, ['batch_size']),
      totalLen: b.input(FUSED_INPUTS.totalSequenceLength, ElemType.INT32, []),
    };
    // GroupQueryAttention's own notion of each row's cached length: max(0, seqlens_k + 1 - seq).
    const seq = b.op('Gather', [b.op('Shape', [inputIds]), b.int64([1], [])], { axis: attrInt(0) });
    const total = b.op('Add', [b.op('Cast', [gqaInputs.seqlensK], { to: attrInt(ElemType.INT64) }), b.int64([1], [])]);
    pastLen = b.op('Max', [b.op('Sub', [total, seq]), b.int64([0], [])]);
  } else {
    pastLen = b.input(FUSED_INPUTS.pastLengths, ElemType.INT64, ['batch_size']);
  }
  const logitsIndex = b.input(FUSED_INPUTS.logitsIndex, ElemType.INT64, ['batch_size']);
  const kvDims = ['batch_size', c.nKvHeads, mode === 'gqa' ? c.maxSeqLen : 'past_capacity', headDim];
  const past = Array.from({ length: c.nLayers }, (_, i) => ({
    key: b.input(pastKeyName(i), ElemType.FLOAT, kvDims),
    value: b.input(pastValueName(i), ElemType.FLOAT, kvDims),
  }));

  const { cos, sin } = ropeCosSin(c.maxSeqLen, headDim, c.ropeTheta);
  const ctx: AttnContext = {
    mode,
    headsFirst: mode === 'external' && packed && (options.headsFirst ?? false),
    ...gqaInputs,
    rotaryInGqa,
    interleaved: weights.ropeLayout === 'interleaved',
    positions: rotaryInGqa ? '' : positionIds(b, inputIds, pastLen),
    cos: b.float('rope.cos_cache', [c.maxSeqLen, headDim / 2], cos),
    sin: b.float('rope.sin_cache', [c.maxSeqLen, headDim / 2], sin),
    ...(mode === 'external' ? externalMasks(b, c, inputIds, pastLen, past[0]!.key) : { pastBias: '', causalBias: '', splitSizes: '' }),
  };

  const embedding = b.float('model.embed_tokens.weight', [c.vocabSize, c.dim], weights.tokenEmbedding);
  let residual = b.op('Gather', [embedding, inputIds], { axis: attrInt(0) });
  let normed = simplifiedNorm(b, residual, b.float('model.layers.0.input_layernorm.weight', [c.dim], weights.layers[0]!.rmsAtt), c.normEps);
  weights.layers.forEach((layer, i) => {
    const p = `model.layers.${i}`;
    const attn = attention(b, c, layer, i, normed, past[i]!, ctx, packed, linear);
    // residual += attn; normed = rmsnorm(residual), in one kernel.
    [normed, residual] = skipNorm(b, attn, residual, b.float(`${p}.post_attention_layernorm.weight`, [c.dim], layer.rmsFfn), c.normEps);
    const down = swiGluMlp(b, c, layer, p, normed, linear);
    const next = weights.layers[i + 1];
    if (next) {
      [normed, residual] = skipNorm(b, down, residual, b.float(`model.layers.${i + 1}.input_layernorm.weight`, [c.dim], next.rmsAtt), c.normEps);
    } else {
      residual = b.op('Add', [residual, down]);
    }
  });

  // Only the positions named by logits_index reach the final norm and the
  // classifier (the largest matrix): [batch*seq, dim] -> [batch, dim].
  const flat = b.op('Reshape', [residual, b.int64([-1, c.dim])]);
  const last = b.op('Gather', [flat, logitsIndex], { axis: attrInt(0) });
  const finalNormed = simplifiedNorm(b, last, b.float('model.norm.weight', [c.dim], weights.rmsFinal), c.normEps);
  if (options.quantize?.lmHead) {
    // MatMulNBits takes B as [N, K] = [vocab, dim], the embedding's own layout.
    matMulNBits(b, options.quantize, finalNormed, 'lm_head', weights.wcls ?? weights.tokenEmbedding, c.dim, c.vocabSize, 'logits');
  } else {
    const classifier = weights.wcls ? b.float('lm_head.weight', [c.vocabSize, c.dim], weights.wcls) : embedding;
    b.op('Gemm', [finalNormed, classifier], { transB: attrInt(1) }, 'logits');
  }

  b.output('logits', ElemType.FLOAT, ['batch_size', c.vocabSize]);
  const newDims = ['batch_size', c.nKvHeads, 'sequence_length', headDim];
  for (let i = 0; i < c.nLayers; i++) {
    if (mode === 'gqa') {
      b.output(presentKeyName(i), ElemType.FLOAT, kvDims);
      b.output(presentValueName(i), ElemType.FLOAT, kvDims);
    } else {
      b.output(newKeyName(i), ElemType.FLOAT, newDims);
      b.output(newValueName(i), ElemType.FLOAT, newDims);
    }
  }
  return b.build('llama_fused', 17, { [MS]: 1 });
}

interface AttnContext {
  mode: 'external' | 'gqa';
  /** external + packed: split the packed q/k/v into heads first (FusedGraphOptions.headsFirst). */
  headsFirst: boolean;
  seqlensK: string; // gqa only
  totalLen: string; // gqa only
  positions: string; // int64 [batch, seq] for the RotaryEmbedding op ('' when GroupQueryAttention rotates)
  rotaryInGqa: boolean;
  /** The weights' RoPE layout is llama2.c's adjacent pairs (else Hugging Face's halves). */
  interleaved: boolean;
  cos: string; // [maxSeqLen, headDim/2]
  sin: string;
  pastBias: string; // external: [batch, 1, 1, (1,) capacity], 0 for cached positions, MASK_VALUE beyond
  causalBias: string; // external: [seq, seq], causal mask among this run's tokens
  splitSizes: string; // external: int64 [capacity, seq]
}

/** RMSNorm as ONNX Runtime's SimplifiedLayerNormalization (registered in the default domain). */
/** Linear layers as MatMulNBits over block-quantized `[out, in]` weights (no transpose: that is the operator's B layout). */
function matMulNBitsLinear(b: GraphBuilder, q: FusedQuantizeOptions): LinearLayer {
  return (h, name, mats, inDim, outDim) => {
    const w = mats.length === 1 ? mats[0]! : concatRows(mats);
    return matMulNBits(b, q, h, name, w, inDim, outDim);
  };
}

function matMulNBits(b: GraphBuilder, q: FusedQuantizeOptions, h: string, name: string, w: Float32Array, k: number, n: number, outputName?: string): string {
  const m = quantizeBlockwise(w, n, k, q.bits, q.blockSize, q.scales ?? 'absmax');
  const weight = b.uint8(`${name}.weight_q${q.bits}`, [n, m.kBlocks, m.blobSize], m.data);
  const scales = b.float(`${name}.weight_scales`, [n * m.kBlocks], m.scales);
  const attrs = { K: attrInt(k), N: attrInt(n), bits: attrInt(q.bits), block_size: attrInt(q.blockSize), accuracy_level: attrInt(q.accuracyLevel) };
  return b.opN('MatMulNBits', [h, weight, scales], 1, attrs, outputName ? [outputName] : undefined, MS)[0]!;
}

function concatRows(mats: Float32Array[]): Float32Array {
  const out = new Float32Array(mats.reduce((n, m) => n + m.length, 0));
  let at = 0;
  for (const m of mats) {
    out.set(m, at);
    at += m.length;
  }
  return out;
}

function simplifiedNorm(b: GraphBuilder, x: string, weight: string, eps: number): string {
  return b.op('SimplifiedLayerNormalization', [x, weight], { axis: attrInt(-1), epsilon: attrFloat(eps) });
}

/** `sum = x + skip; return [rmsnorm(sum), sum]` with SkipSimplifiedLayerNormalization. */
function skipNorm(b: GraphBuilder, x: string, skip: string, weight: string, eps: number): [string, string] {
  const [normed, , , sum] = b.opN('SkipSimplifiedLayerNormalization', [x, skip, weight], 4, { epsilon: attrFloat(eps) }, [undefined, '', '', undefined], MS);
  return [normed!, sum!];
}

/** Position of token i of row b: `pastLen[b] + i`, int64 [batch, seq]. */
function positionIds(b: GraphBuilder, inputIds: string, pastLen: string): string {
  const seq = b.op('Gather', [b.op('Shape', [inputIds]), b.int64([1], [])], { axis: attrInt(0) });
  const range = b.op('Range', [b.int64([0], []), seq, b.int64([1], [])]); // [seq]
  return b.op('Add', [b.op('Unsqueeze', [pastLen, b.int64([1])]), b.op('Unsqueeze', [range, b.int64([0])])]);
}

/**
 * Additive masks of 'external' attention: cached position j of row b is
 * visible iff j < pastLen[b]; new token j is visible to new token i iff j <= i.
 */
function externalMasks(
  b: GraphBuilder,
  c: LlamaConfig,
  inputIds: string,
  pastLen: string,
  pastKey: string,
): Pick<AttnContext, 'pastBias' | 'causalBias' | 'splitSizes'> {
  const one = b.int64([1], []);
  const zero = b.int64([0], []);
  const capacity = b.op('Gather', [b.op('Shape', [pastKey]), b.int64([2], [])], { axis: attrInt(0) });
  const slots = b.op('Range', [zero, capacity, one]); // [capacity]
  const cached = b.op('Less', [b.op('Unsqueeze', [slots, b.int64([0])]), b.op('Unsqueeze', [pastLen, b.int64([1])])]); // [batch, capacity]
  const group = c.nHeads / c.nKvHeads;
  // Scores are [batch, kv, s, capacity], or [batch, kv, group, s, capacity] with grouped queries.
  const pastBias = b.op('Unsqueeze', [b.op('Where', [cached, b.scalar(0), b.scalar(MASK_VALUE)]), b.int64(group === 1 ? [1, 2] : [1, 2, 3])]);

  const seq = b.op('Gather', [b.op('Shape', [inputIds]), b.int64([1], [])], { axis: attrInt(0) });
  const pos = b.op('Range', [zero, seq, one]); // [seq]
  const causal = b.op('LessOrEqual', [b.op('Unsqueeze', [pos, b.int64([0])]), b.op('Unsqueeze', [pos, b.int64([1])])]); // [seq, seq]
  const causalBias = b.op('Where', [causal, b.scalar(0), b.scalar(MASK_VALUE)]);
  // Softmax runs over [cache | new tokens]; these split it back.
  const splitSizes = b.op('Concat', [b.op('Unsqueeze', [capacity, zero]), b.op('Unsqueeze', [seq, zero])], { axis: attrInt(0) });
  return { pastBias, causalBias, splitSizes };
}

function rotary(b: GraphBuilder, x: string, ctx: AttnContext, heads: number): string {
  return b.opN('RotaryEmbedding', [x, ctx.positions, ctx.cos, ctx.sin], 1, { interleaved: attrInt(ctx.interleaved ? 1 : 0), num_heads: attrInt(heads) }, undefined, MS)[0]!;
}

/** q, k, v projections `[batch, seq, *]`, packed into one MatMul output when `packed`. */
function projectQkv(
  b: GraphBuilder,
  c: LlamaConfig,
  w: LlamaLayerWeights,
  p: string,
  h: string,
  packed: boolean,
  qScale: number,
  linear: LinearLayer,
): { qkv?: string; q: () => string[] } {
  const headDim = c.dim / c.nHeads;
  const kvDim = c.nKvHeads * headDim;
  // Quantized graphs quantize this scaled wq (external attention's folded 1/sqrt(headDim)).
  const wq = qScale === 1 ? w.wq : w.wq.map((x) => x * qScale);
  if (packed) {
    const qkv = linear(h, `${p}.self_attn.qkv_proj`, [wq, w.wk, w.wv], c.dim, c.dim + 2 * kvDim);
    return { qkv, q: () => b.opN('Split', [qkv, b.int64([c.dim, kvDim, kvDim])], 3, { axis: attrInt(-1) }) };
  }
  const proj = (name: string, m: Float32Array, out: number): string => linear(h, `${p}.self_attn.${name}`, [m], c.dim, out);
  const qkv = [proj('q_proj', wq, c.dim), proj('k_proj', w.wk, kvDim), proj('v_proj', w.wv, kvDim)];
  return { q: () => qkv };
}

function attention(
  b: GraphBuilder,
  c: LlamaConfig,
  w: LlamaLayerWeights,
  index: number,
  h: string,
  past: { key: string; value: string },
  ctx: AttnContext,
  packed: boolean,
  linear: LinearLayer,
): string {
  const p = `model.layers.${index}`;
  // External attention folds the softmax scale 1/sqrt(headDim) into wq (RoPE
  // is linear, so scaling q before or after it is the same): MLAS has a fast
  // path for the batched single-row score products only when alpha is 1.
  const qScale = ctx.mode === 'external' ? 1 / Math.sqrt(c.dim / c.nHeads) : 1;
  const proj = projectQkv(b, c, w, p, h, packed, qScale, linear);
  const context = ctx.mode === 'gqa' ? gqaAttention(b, c, index, proj, past, ctx) : externalAttention(b, c, index, proj, past, ctx);
  return linear(context, `${p}.self_attn.o_proj`, [w.wo], c.dim, c.dim);
}

function gqaAttention(
  b: GraphBuilder,
  c: LlamaConfig,
  index: number,
  proj: ReturnType<typeof projectQkv>,
  past: { key: string; value: string },
  ctx: AttnContext,
): string {
  let qkvInputs: string[];
  if (ctx.rotaryInGqa) {
    qkvInputs = proj.qkv ? [proj.qkv, '', ''] : proj.q();
  } else {
    const [q, k, v] = proj.q();
    qkvInputs = [rotary(b, q!, ctx, c.nHeads), rotary(b, k!, ctx, c.nKvHeads), v!];
  }
  const inputs = [...qkvInputs, past.key, past.value, ctx.seqlensK, ctx.totalLen];
  if (ctx.rotaryInGqa) inputs.push(ctx.cos, ctx.sin);
  const headDim = c.dim / c.nHeads;
  const [context] = b.opN(
    'GroupQueryAttention',
    inputs,
    3,
    {
      num_heads: attrInt(c.nHeads),
      kv_num_heads: attrInt(c.nKvHeads),
      scale: attrFloat(1 / Math.sqrt(headDim)),
      ...(ctx.rotaryInGqa ? { do_rotary: attrInt(1), rotary_interleaved: attrInt(ctx.interleaved ? 1 : 0) } : {}),
    },
    [undefined, presentKeyName(index), presentValueName(index)],
    MS,
  );
  return context!;
}

/**
 * Attention over [cached keys | this run's keys] without concatenating them:
 * scores against the cache (read in place from the past input) and against
 * the new keys are computed separately, masked, joined for one softmax, and
 * the two value products summed. Nothing proportional to the cache is
 * written. Returns the context `[batch, seq, dim]`.
 */
function externalAttention(
  b: GraphBuilder,
  c: LlamaConfig,
  index: number,
  proj: ReturnType<typeof projectQkv>,
  past: { key: string; value: string },
  ctx: AttnContext,
): string {
  const headDim = c.dim / c.nHeads;
  const group = c.nHeads / c.nKvHeads;
  const toHeads = (x: string, heads: number, name?: string): string =>
    b.op('Transpose', [b.op('Reshape', [x, b.int64([0, 0, heads, headDim])])], { perm: attrInts([0, 2, 1, 3]) }, name); // [b, heads, s, hd]
  let q5: string;
  let kNew: string;
  let vNew: string;
  if (ctx.headsFirst && proj.qkv) {
    // [b, s, (H + 2kv) * hd] -> [b, H + 2kv, s, hd] -> q, k, v heads; RotaryEmbedding rotates the 4-D form.
    const all = toHeads(proj.qkv, c.nHeads + 2 * c.nKvHeads);
    const [qh, kh] = b.opN('Split', [all, b.int64([c.nHeads, c.nKvHeads, c.nKvHeads])], 3, { axis: attrInt(1) }, [undefined, undefined, newValueName(index)]);
    vNew = newValueName(index);
    const rotate4 = (x: string, name?: string): string =>
      b.opN('RotaryEmbedding', [x, ctx.positions, ctx.cos, ctx.sin], 1, { interleaved: attrInt(ctx.interleaved ? 1 : 0) }, name ? [name] : undefined, MS)[0]!;
    kNew = rotate4(kh!, newKeyName(index));
    const qr = rotate4(qh!); // [b, H, s, hd], pre-scaled by 1/sqrt(headDim)
    q5 = group === 1 ? qr : b.op('Reshape', [qr, b.int64([0, c.nKvHeads, group, -1, headDim])]);
  } else {
    const [q, k, v] = proj.q(); // q is pre-scaled by 1/sqrt(headDim)
    const qr = rotary(b, q!, ctx, c.nHeads); // [b, s, H*hd]
    const kr = rotary(b, k!, ctx, c.nKvHeads);
    kNew = toHeads(kr, c.nKvHeads, newKeyName(index));
    vNew = toHeads(v!, c.nKvHeads, newValueName(index));
    // Grouped queries as [b, kv, group, s, hd] against keys/values [b, kv, 1, *, hd]:
    // each kv head broadcasts over its group without a copy, and every product
    // is a batch of single-row (decode) matrix products, which MLAS runs without
    // repacking the cache when alpha is 1.
    q5 =
      group === 1
        ? toHeads(qr, c.nHeads)
        : b.op('Transpose', [b.op('Reshape', [qr, b.int64([0, 0, c.nKvHeads, group, headDim])])], { perm: attrInts([0, 2, 3, 1, 4]) });
  }
  const perGroup = (x: string): string => (group === 1 ? x : b.op('Unsqueeze', [x, b.int64([2])]));
  const fused = (a: string, m: string): string => b.opN('FusedMatMul', [a, m], 1, { transB: attrInt(1) }, undefined, MS)[0]!;
  const scoresPast = b.op('Add', [fused(q5, perGroup(past.key)), ctx.pastBias]); // [b, kv, (group,) s, capacity]
  const scoresNew = b.op('Add', [fused(q5, perGroup(kNew)), ctx.causalBias]); // [b, kv, (group,) s, s]
  const probs = b.op('Softmax', [b.op('Concat', [scoresPast, scoresNew], { axis: attrInt(-1) })], { axis: attrInt(-1) });
  const [pPast, pNew] = b.opN('Split', [probs, ctx.splitSizes], 2, { axis: attrInt(-1) });
  const out = b.op('Add', [b.op('MatMul', [pPast!, perGroup(past.value)]), b.op('MatMul', [pNew!, perGroup(vNew)])]); // [b, kv, (group,) s, hd]
  const perHead =
    group === 1
      ? b.op('Transpose', [out], { perm: attrInts([0, 2, 1, 3]) }) // [b, s, H, hd]
      : b.op('Transpose', [out], { perm: attrInts([0, 3, 1, 2, 4]) }); // [b, s, kv, group, hd]
  return b.op('Reshape', [perHead, b.int64([0, 0, c.dim])]);
}
