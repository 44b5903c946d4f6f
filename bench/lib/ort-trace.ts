/**
 * Reading ONNX Runtime's profiler output (session option `enableProfiling`):
 * a Chrome-trace JSON array with one `Session`/`model_run` event per run and
 * one `Node`/`<node>_kernel_time` event per kernel launch, timestamps and
 * durations in microseconds. Kernels are grouped into the run they fall in,
 * and labelled by what they compute (which weight a MatMul reads, which
 * piece of attention a node is).
 */
import fs from 'node:fs';

interface TraceEvent {
  cat?: string;
  name?: string;
  ts?: number;
  dur?: number;
  args?: { op_name?: string; input_type_shape?: Array<Record<string, number[]>>; output_type_shape?: Array<Record<string, number[]>> };
}

export interface TraceRun {
  /** Wall time of the run inside ONNX Runtime, µs. */
  durUs: number;
  /** Kernel time by label, µs (summed over launches). */
  byLabel: Map<string, { us: number; launches: number }>;
  /** Kernel time summed, µs. */
  kernelUs: number;
  /** The first input's shape of the first Gather (input_ids), e.g. [1, 1]: tells prefill from decode. */
  inputShape: number[];
}

/**
 * Names a kernel for the report: weight products by the weight they read, the
 * rest by their part of the model. `inputs` lacks a weight that ONNX Runtime
 * prepacked at load (MatMul's constant B): such a product shows one input.
 */
export type Labeler = (op: string, inputs: number[][], outputs: number[][]) => string;

/**
 * Labels for the fused Llama graph: `weights` maps a 2-D weight shape
 * "rows x cols" to its name (e.g. "768x2304" -> "qkv_proj").
 */
export function fusedLlamaLabeler(weights: Record<string, string>): Labeler {
  return (op, inputs, outputs) => {
    const second = inputs[1];
    const isProduct = op === 'MatMul' || op === 'FusedMatMul' || op === 'Gemm' || op === 'MatMulNBits';
    if (isProduct && (inputs.length === 1 || op === 'MatMulNBits')) {
      // A prepacked weight (or a quantized one): name it by K x N from the activation's and the output's last dims.
      const k = inputs[0]?.at(-1);
      const n = outputs[0]?.at(-1);
      return `${op} ${weights[`${k}x${n}`] ?? `[${k}x${n}]`}`;
    }
    if (isProduct && second) {
      if (second.length === 2) {
        // Gemm(transB) stores B as [N, K].
        const name = weights[`${second[0]}x${second[1]}`] ?? weights[`${second[1]}x${second[0]}`];
        return `${op} ${name ?? `[${second.join('x')}]`}`;
      }
      // Attention products: against the cache (last dim of the keys/values = head_dim) or this run's tokens.
      return op === 'FusedMatMul' ? 'attention: q.k scores (FusedMatMul)' : 'attention: p.v products (MatMul)';
    }
    if (op === 'SimplifiedLayerNormalization' || op === 'SkipSimplifiedLayerNormalization') return `norms (${op})`;
    if (op === 'RotaryEmbedding') return 'attention: rotary';
    if (op === 'Softmax') return 'attention: softmax';
    if (op === 'Sigmoid' || op === 'Mul' || op === 'QuickGelu') return `mlp: silu*up (${op})`;
    if (op === 'GroupQueryAttention') return 'attention: GroupQueryAttention';
    return `other: ${op}`;
  };
}

/** Reads a profile file and returns its runs in order, kernels labelled. */
export function readOrtTrace(file: string, label: Labeler): TraceRun[] {
  const events = JSON.parse(fs.readFileSync(file, 'utf8')) as TraceEvent[];
  const runs = events
    .filter((e) => e.cat === 'Session' && e.name === 'model_run' && e.ts !== undefined && e.dur !== undefined)
    .sort((a, b) => a.ts! - b.ts!)
    .map((e) => ({ start: e.ts!, end: e.ts! + e.dur!, run: { durUs: e.dur!, byLabel: new Map(), kernelUs: 0, inputShape: [] } as TraceRun }));
  const kernels = events.filter((e) => e.cat === 'Node' && e.name?.endsWith('_kernel_time') && e.ts !== undefined).sort((a, b) => a.ts! - b.ts!);
  let r = 0;
  for (const k of kernels) {
    while (r < runs.length && k.ts! > runs[r]!.end) r++;
    const run = runs[r];
    if (!run || k.ts! < run.start) continue;
    const op = k.args?.op_name ?? '?';
    const inputs = (k.args?.input_type_shape ?? []).map((s) => Object.values(s)[0] ?? []);
    const outputs = (k.args?.output_type_shape ?? []).map((s) => Object.values(s)[0] ?? []);
    if (op === 'Gather' && run.run.inputShape.length === 0 && inputs[1]) run.run.inputShape = inputs[1];
    const name = label(op, inputs, outputs);
    const entry = run.run.byLabel.get(name) ?? { us: 0, launches: 0 };
    entry.us += k.dur ?? 0;
    entry.launches++;
    run.run.byLabel.set(name, entry);
    run.run.kernelUs += k.dur ?? 0;
  }
  return runs.map((x) => x.run);
}

export interface OpBreakdown {
  runs: number;
  /** Mean ONNX Runtime wall time per run, ms. */
  run_ms: number;
  /** Mean summed kernel time per run, ms (kernels of two threads' parallel parts are not double counted: ORT times each node once). */
  kernel_ms: number;
  /** Per label: mean ms per run, share of the run, kernel launches per run; sorted by time. */
  ops: Array<{ label: string; ms: number; share: number; launches: number }>;
}

/** Means over `runs`. */
export function summarizeRuns(runs: TraceRun[]): OpBreakdown {
  const n = Math.max(1, runs.length);
  const total = new Map<string, { us: number; launches: number }>();
  let runUs = 0;
  let kernelUs = 0;
  for (const run of runs) {
    runUs += run.durUs;
    kernelUs += run.kernelUs;
    for (const [k, v] of run.byLabel) {
      const t = total.get(k) ?? { us: 0, launches: 0 };
      t.us += v.us;
      t.launches += v.launches;
      total.set(k, t);
    }
  }
  const runMs = runUs / n / 1000;
  const ops = [...total.entries()]
    .map(([label, v]) => ({ label, ms: v.us / n / 1000, share: v.us / n / 1000 / runMs, launches: v.launches / n }))
    .sort((a, b) => b.ms - a.ms);
  return { runs: runs.length, run_ms: runMs, kernel_ms: kernelUs / n / 1000, ops };
}
