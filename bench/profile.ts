/**
 * `npm run bench:profile`: where one stream's time goes.
 *
 *   npm run bench:profile -- [--models llama-85m,distil] [--prompt 300] [--steps 120]
 *       [--batches 1,16] [--requests 3] [--trace-steps 40] [--membw-mb 256] [--no-membw] [--spinning 0|1]
 *       [--cache-dir DIR] [--out-dir DIR] [--no-save]
 *
 * Per model (random weights of a preset, built once under --cache-dir):
 *  1. The engine's real path (Engine.load on the model directory, the
 *     scheduler and the fused backend as the server runs them): --requests
 *     generations of --steps tokens after a --prompt-token prompt, one at a
 *     time (batch 1) and then as many at once as each other batch size.
 *     Every session.run is timed from JavaScript, so a decode step splits
 *     into the time in session.run and the gap between two runs (everything
 *     else the engine does per step: storing the new keys and values,
 *     sampling, logits processors, the scheduler's bookkeeping, the event
 *     loop turn between steps).
 *  2. The same decode loop at batch 1 over KvBatch directly, timed piece by
 *     piece: feeds setup (before run), session.run, storing keys/values and
 *     slicing logits (after run), the logits processors and the draw.
 *  3. ONNX Runtime's own profiler (enableProfiling) over --trace-steps decode
 *     steps at batch 1: wall time inside ONNX Runtime per run (vs the
 *     JavaScript-side run time: the difference is the Node binding's
 *     overhead), kernel time per op, weight products labelled by the weight
 *     they read, with each one's effective bandwidth.
 *  4. The effective weight bandwidth of a decode step (bytes of weights read
 *     / step time), against the machine's bandwidth measured by a
 *     STREAM-style benchmark (bench/lib/membw.ts) in the same run, before
 *     and after the models.
 *
 * The machine is shared: the load average is printed and saved; compare
 * ratios within one run. Results: bench/results/<date>-profile.json.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Engine } from '../src/engine/engine.js';
import { KvBatch } from '../src/engine/kv-batch.js';
import { processLogits } from '../src/engine/logits-processors.js';
import { findFusedOnnxFile, readDecoderConfig } from '../src/engine/model-config.js';
import { makeRandomModel, IMPORT_FORMAT_VERSION } from '../src/engine/model-dir.js';
import { getPreset, parameterCount } from '../src/engine/presets.js';
import { SeededRng } from '../src/engine/rng.js';
import { drawToken, SamplingScratch } from '../src/engine/sampling.js';
import type { SamplingParams } from '../src/engine/types.js';
import type { LlamaConfig } from '../src/engine/onnx-graph.js';
import { parseCli } from '../scripts/cli-args.js';
import { formatMemBw, measureMemoryBandwidth, type MemBwResult } from './lib/membw.js';
import { fusedLlamaLabeler, readOrtTrace, summarizeRuns, type OpBreakdown } from './lib/ort-trace.js';
import { round, summarize } from './lib/stats.js';

const REPO = path.resolve(import.meta.dirname, '..');
const USAGE =
  'npm run bench:profile -- [--models llama-85m,distil] [--prompt 300] [--steps 120] [--batches 1,16] [--requests 3] ' +
  '[--trace-steps 40] [--membw-mb 256] [--no-membw] [--spinning 0|1] [--cache-dir DIR] [--out-dir DIR] [--no-save]';
const args = parseCli(
  {
    models: { type: 'string' },
    prompt: { type: 'string' },
    steps: { type: 'string' },
    batches: { type: 'string' },
    requests: { type: 'string' },
    'trace-steps': { type: 'string' },
    'membw-mb': { type: 'string' },
    'no-membw': { type: 'boolean' },
    spinning: { type: 'string' },
    'cache-dir': { type: 'string' },
    'out-dir': { type: 'string' },
    'no-save': { type: 'boolean' },
    help: { type: 'boolean' },
  },
  USAGE,
  [],
);
const num = (v: string | undefined, def: number, name: string): number => {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`error: --${name} must be a positive integer, got "${v}"\nusage: ${USAGE}\n`);
    process.exit(2);
  }
  return n;
};
const o = {
  models: (args.models ?? 'llama-85m,distil').split(',').map((m) => m.trim()),
  prompt: num(args.prompt, 300, 'prompt'),
  steps: num(args.steps, 120, 'steps'),
  batches: (args.batches ?? '1,16').split(',').map((b) => num(b, 1, 'batches')),
  requests: num(args.requests, 3, 'requests'),
  traceSteps: num(args['trace-steps'], 40, 'trace-steps'),
  membwMb: num(args['membw-mb'], 256, 'membw-mb'),
  membw: !args['no-membw'],
  cacheDir: path.resolve(REPO, args['cache-dir'] ?? '.model-cache/bench'),
  outDir: path.resolve(REPO, args['out-dir'] ?? 'bench/results'),
  save: !(args['no-save'] as unknown as boolean),
  /** ONNX Runtime intra-op spinning (the engine's default: off). */
  spinning: args.spinning === '1',
};
const threads = Math.max(1, os.availableParallelism());
const log = (msg: string): void => void process.stderr.write(`[profile ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ---------------------------------------------------------------- session.run timing hook

/** Every session.run in this process, timed from JavaScript (performance.now, ms). */
interface RunRecord {
  start: number;
  end: number;
  /** input_ids dims: [batch, seq]. */
  batch: number;
  seq: number;
}
const runLog: RunRecord[] = [];
const createdSessions: ort.InferenceSession[] = [];
{
  const proto = (ort.InferenceSession as unknown as { prototype: unknown }).prototype as { run: (...a: unknown[]) => Promise<unknown> };
  const original = proto.run;
  proto.run = async function (this: unknown, ...a: unknown[]) {
    const feeds = a[0] as Record<string, ort.Tensor>;
    const ids = feeds['input_ids'];
    const start = performance.now();
    const out = await original.apply(this, a);
    runLog.push({ start, end: performance.now(), batch: Number(ids?.dims[0] ?? 0), seq: Number(ids?.dims[1] ?? 0) });
    return out;
  };
  const factory = ort.InferenceSession as unknown as { create: (...a: unknown[]) => Promise<ort.InferenceSession> };
  const create = factory.create.bind(factory);
  factory.create = async (...a: unknown[]) => {
    const s = await create(...a);
    createdSessions.push(s);
    return s;
  };
}

// ---------------------------------------------------------------- models

function prepareModel(name: string): Promise<string> | string {
  const dir = path.join(o.cacheDir, name);
  const cfg = path.join(dir, 'config.json');
  if (fs.existsSync(cfg) && fs.existsSync(path.join(dir, 'onnx', 'model_fused.onnx'))) {
    const c = JSON.parse(fs.readFileSync(cfg, 'utf8')) as { llama2c?: { formatVersion?: number } };
    if (c.llama2c?.formatVersion === IMPORT_FORMAT_VERSION) return dir;
  }
  log(`building ${name} into ${dir}`);
  return makeRandomModel({ preset: name, seed: 1, outDir: dir });
}

/** Bytes of weights one decode row reads (every matrix once; the embedding table only through a tied LM head), and their shapes. */
function weightBytes(c: LlamaConfig): { bytes: number; shapes: Record<string, string> } {
  const hd = c.dim / c.nHeads;
  const kv = c.nKvHeads * hd;
  const perLayer = c.dim * (c.dim + 2 * kv) + c.dim * c.dim + c.dim * 2 * c.hiddenDim + c.hiddenDim * c.dim;
  const params = c.nLayers * perLayer + c.vocabSize * c.dim;
  // K x N of each product (the LM head as Gemm's [vocab, dim] B).
  const shapes: Record<string, string> = {
    [`${c.dim}x${c.dim + 2 * kv}`]: 'qkv_proj',
    [`${c.dim}x${c.dim}`]: 'o_proj',
    [`${c.dim}x${2 * c.hiddenDim}`]: 'gate_up_proj',
    [`${c.hiddenDim}x${c.dim}`]: 'down_proj',
    [`${c.dim}x${c.vocabSize}`]: 'lm_head',
  };
  return { bytes: params * 4, shapes };
}

function promptIds(c: LlamaConfig, n: number, salt: number): number[] {
  return [1, ...Array.from({ length: n - 1 }, (_, i) => 3 + ((i * 7919 + salt * 104729) % (c.vocabSize - 3)))];
}

const sampling = (seed: number): SamplingParams => ({
  maxNewTokens: o.steps,
  temperature: 0.8,
  topP: 0.95,
  topK: 0,
  repetitionPenalty: 1,
  seed,
  stop: [],
  ignoreEos: true,
});

// ---------------------------------------------------------------- 1. the engine

interface EngineBatchResult {
  batch: number;
  requests: number;
  /** Engine-reported time to first token (submission to first token), ms. */
  ttft_ms: { p50: number; mean: number };
  /** Prefill tokens/s: prompt tokens / time to first token (one request alone: batch 1 only). */
  prefill_tok_s: number | null;
  /** Engine-reported inter-token latency, ms. */
  itl_ms: { p50: number; mean: number };
  decode_tok_s: number;
  /** Decode steps at this batch size: time in session.run (JS side) and the gap to the next run. */
  step_ms: { run_mean: number; run_p50: number; gap_mean: number; gap_p50: number; steps: number };
}

async function engineRuns(dir: string, c: LlamaConfig): Promise<EngineBatchResult[]> {
  const engine = await Engine.load(dir, {
    name: path.basename(dir),
    source: dir,
    threads,
    spinning: o.spinning,
    limits: { maxBatchSize: Math.max(...o.batches), maxWaiting: 1024, maxPrefillTokens: 512 },
  });
  const out: EngineBatchResult[] = [];
  try {
    await engine.generate(promptIds(c, o.prompt, 0), { ...sampling(1), maxNewTokens: 8 }); // warm-up
    let seed = 100;
    for (const batch of o.batches) {
      const results: Awaited<ReturnType<Engine['generate']>>[] = [];
      runLog.length = 0;
      for (let r = 0; r < o.requests; r++) {
        const all = await Promise.all(Array.from({ length: batch }, (_, i) => engine.generate(promptIds(c, o.prompt, seed + i), sampling(seed++))));
        results.push(...all);
      }
      // Decode steps with every row present: runs of [batch, 1]; the gap is to the next run of any kind.
      const run: number[] = [];
      const gap: number[] = [];
      for (let i = 0; i < runLog.length; i++) {
        const r = runLog[i]!;
        if (r.seq !== 1 || r.batch !== batch) continue;
        run.push(r.end - r.start);
        const next = runLog[i + 1];
        if (next && next.seq === 1 && next.batch === batch) gap.push(next.start - r.end);
      }
      const ttft = summarize(results.map((x) => x.timeToFirstTokenMs ?? NaN));
      const itl = summarize(results.map((x) => x.interTokenMs ?? NaN));
      const rs = summarize(run);
      const gs = summarize(gap);
      out.push({
        batch,
        requests: results.length,
        ttft_ms: { p50: round(ttft.p50, 2), mean: round(ttft.mean, 2) },
        prefill_tok_s: batch === 1 ? round((o.prompt / ttft.mean) * 1000, 1) : null,
        itl_ms: { p50: round(itl.p50, 3), mean: round(itl.mean, 3) },
        decode_tok_s: round((batch / itl.mean) * 1000, 1),
        step_ms: { run_mean: round(rs.mean, 3), run_p50: round(rs.p50, 3), gap_mean: round(gs.mean, 3), gap_p50: round(gs.p50, 3), steps: run.length },
      });
    }
  } finally {
    await engine.close();
  }
  return out;
}

// ---------------------------------------------------------------- 2. KvBatch piece by piece

interface PiecesResult {
  steps: number;
  /** Mean ms per decode step at batch 1. */
  feeds_ms: number;
  run_ms: number;
  store_ms: number;
  sample_ms: number;
  step_ms: number;
  prefill_ms: number;
}

function sessionOptions(extra: ort.InferenceSession.SessionOptions = {}): ort.InferenceSession.SessionOptions {
  // What FusedBackend.create gives the engine's session.
  return {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    extra: { session: { intra_op: { allow_spinning: o.spinning ? '1' : '0' } } },
    ...extra,
  };
}

async function kvPieces(file: string, c: LlamaConfig): Promise<PiecesResult> {
  const kv = await KvBatch.create(file, c, { maxBatch: 1, sessionOptions: sessionOptions() });
  try {
    const p = sampling(7);
    const rng = new SeededRng(7);
    const scratch = new SamplingScratch();
    const seen = new Set<number>();
    const generated = new Map<number, number>();
    const eos = new Set<number>([1, 2]);
    const sums = { feeds: 0, run: 0, store: 0, sample: 0, step: 0 };
    let steps = 0;
    for (let rep = 0; rep < 2; rep++) {
      runLog.length = 0;
      const t0 = performance.now();
      let [logits] = await kv.append([promptIds(c, o.prompt, rep)]);
      const prefillMs = performance.now() - t0;
      for (let s = 0; s < o.steps; s++) {
        const a = performance.now();
        processLogits(logits!, p, { seen, generated, count: s }, eos);
        const token = drawToken(logits!, p, rng, scratch);
        const b = performance.now();
        const before = runLog.length;
        [logits] = await kv.step([token]);
        const d = performance.now();
        const r = runLog[before]!;
        if (rep === 1) {
          sums.sample += b - a;
          sums.feeds += r.start - b;
          sums.run += r.end - r.start;
          sums.store += d - r.end;
          sums.step += d - a;
          steps++;
        }
      }
      kv.remove([0]);
      if (rep === 1) {
        const m = (x: number): number => round(x / steps, 3);
        return { steps, feeds_ms: m(sums.feeds), run_ms: m(sums.run), store_ms: m(sums.store), sample_ms: m(sums.sample), step_ms: m(sums.step), prefill_ms: round(prefillMs, 1) };
      }
    }
    throw new Error('unreachable');
  } finally {
    await kv.dispose();
  }
}

// ---------------------------------------------------------------- 3. ONNX Runtime's profiler

interface TraceResult {
  /** JS-side session.run, mean ms over the traced decode steps (profiling on: a little slower than untraced). */
  js_run_ms: number;
  decode: OpBreakdown;
  prefill: OpBreakdown;
}

async function ortTrace(file: string, c: LlamaConfig, shapes: Record<string, string>): Promise<TraceResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ort-profile-'));
  const before = createdSessions.length;
  const kv = await KvBatch.create(file, c, { maxBatch: 1, sessionOptions: sessionOptions({ enableProfiling: true, profileFilePrefix: path.join(dir, 'ort') }) });
  const session = createdSessions[before]!;
  runLog.length = 0;
  try {
    await kv.append([promptIds(c, o.prompt, 3)]);
    for (let s = 0; s < o.traceSteps + 2; s++) await kv.step([3 + (s % 50)]);
  } finally {
    session.endProfiling();
    await kv.dispose();
  }
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
  if (files.length !== 1) throw new Error(`expected one profile in ${dir}, found ${files.join(', ')}`);
  const runs = readOrtTrace(path.join(dir, files[0]!), fusedLlamaLabeler(shapes));
  fs.rmSync(dir, { recursive: true, force: true });
  // Run 0 is the prefill; the first two decode steps warm up.
  const decodeRuns = runs.slice(3);
  const jsRuns = runLog.slice(3).map((r) => r.end - r.start);
  return { js_run_ms: round(summarize(jsRuns).mean, 3), decode: roundBreakdown(summarizeRuns(decodeRuns)), prefill: roundBreakdown(summarizeRuns(runs.slice(0, 1))) };
}

function roundBreakdown(b: OpBreakdown): OpBreakdown {
  return {
    runs: b.runs,
    run_ms: round(b.run_ms, 3),
    kernel_ms: round(b.kernel_ms, 3),
    ops: b.ops.map((x) => ({ label: x.label, ms: round(x.ms, 3), share: round(x.share, 3), launches: round(x.launches, 1) })),
  };
}

// ---------------------------------------------------------------- report

function gitInfo(): { commit: string; dirty: boolean } {
  const git = (a: string[]): string => execFileSync('git', a, { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    return { commit: git(['rev-parse', 'HEAD']), dirty: git(['status', '--porcelain', '--untracked-files=no']) !== '' };
  } catch {
    return { commit: 'unknown', dirty: true };
  }
}

async function profileModel(name: string, readGbS: () => number): Promise<Record<string, unknown>> {
  const dir = await prepareModel(name);
  const c = { ...getPreset(name) };
  const dc = readDecoderConfig(dir);
  const fused = findFusedOnnxFile(dir);
  if (!fused) throw new Error(`${dir} has no fused graph`);
  const { bytes, shapes } = weightBytes(c);
  const mb = bytes / 1e6;
  log(`${name}: ${(parameterCount(c) / 1e6).toFixed(1)}M parameters, ${mb.toFixed(0)} MB of weights read per decode step; engine path`);
  const engine = await engineRuns(dir, c);
  log(`${name}: KvBatch pieces`);
  const pieces = await kvPieces(fused, c);
  log(`${name}: ONNX Runtime profiler over ${o.traceSteps} decode steps`);
  const trace = await ortTrace(fused, c, shapes);

  const b1 = engine.find((e) => e.batch === 1);
  const gbS = (ms: number): number => round(bytes / (ms / 1000) / 1e9, 1);
  const hd = c.dim / c.nHeads;
  // KvBatch's reservation after a prompt of o.prompt + steps tokens: a quarter more, in multiples of 64 (at least 256).
  const reserved = Math.max(256, Math.min(c.maxSeqLen, Math.ceil(((o.prompt + o.steps) * 1.25) / 64) * 64));
  const kvBytes = c.nLayers * 2 * c.nKvHeads * reserved * hd * 4;
  const machineRead = readGbS();
  const bw = b1
    ? {
        weight_mb_per_step: round(mb, 1),
        kv_cache_mb_per_step_at_end: round(kvBytes / 1e6, 1),
        step_ms: b1.itl_ms.mean,
        effective_weight_gb_s: gbS(b1.itl_ms.mean),
        in_ort_weight_gb_s: gbS(trace.decode.run_ms),
        machine_read_gb_s: machineRead,
        share_of_machine: machineRead > 0 ? round(bytes / (b1.itl_ms.mean / 1000) / 1e9 / machineRead, 3) : null,
      }
    : null;

  // Per weight product: its own effective bandwidth (bytes of that weight per launch / kernel time per launch).
  const weightOps = trace.decode.ops
    .filter((x) => /^(MatMul|FusedMatMul|Gemm|MatMulNBits)/.test(x.label) && !x.label.startsWith('attention'))
    .map((x) => {
      const key = Object.entries(shapes).find(([, v]) => x.label.endsWith(v))?.[0];
      const [r, k] = key ? key.split('x').map(Number) : [0, 0];
      const perLaunch = (r! * k! * 4) / 1e6;
      return { label: x.label, ms: x.ms, launches: x.launches, mb_per_launch: round(perLaunch, 2), gb_s: round((perLaunch * x.launches) / x.ms, 1) };
    });

  process.stdout.write(`\n=== ${name} (${dc.layers} layers, dim ${dc.hiddenSize}, vocab ${dc.vocabSize}; ${mb.toFixed(0)} MB of fp32 weights a step) ===\n`);
  for (const e of engine) {
    process.stdout.write(
      `engine batch ${e.batch}: TTFT ${e.ttft_ms.mean} ms${e.prefill_tok_s ? ` (prefill ${e.prefill_tok_s} tok/s)` : ''}, ITL ${e.itl_ms.mean} ms ` +
        `(${e.decode_tok_s} tok/s); per decode step: session.run ${e.step_ms.run_mean} ms + between runs ${e.step_ms.gap_mean} ms (${e.step_ms.steps} steps)\n`,
    );
  }
  process.stdout.write(
    `KvBatch batch 1, per step: feeds ${pieces.feeds_ms} + session.run ${pieces.run_ms} + store KV/logits ${pieces.store_ms} + processors/draw ${pieces.sample_ms} = ${pieces.step_ms} ms; prefill ${pieces.prefill_ms} ms\n`,
  );
  process.stdout.write(
    `ORT profiler, decode at batch 1: ${trace.decode.run_ms} ms inside ORT per run (JS-side run ${trace.js_run_ms} ms: binding ${round(trace.js_run_ms - trace.decode.run_ms, 3)} ms), ` +
      `kernels ${trace.decode.kernel_ms} ms (executor between kernels ${round(trace.decode.run_ms - trace.decode.kernel_ms, 3)} ms)\n`,
  );
  for (const x of trace.decode.ops) process.stdout.write(`  ${x.label.padEnd(44)} ${x.ms.toFixed(3).padStart(8)} ms ${(100 * x.share).toFixed(1).padStart(5)}%  x${x.launches}\n`);
  for (const w of weightOps) process.stdout.write(`  bandwidth ${w.label.padEnd(34)} ${w.mb_per_launch} MB x${w.launches}: ${w.gb_s} GB/s\n`);
  process.stdout.write(`ORT profiler, prefill of ${o.prompt} tokens: ${trace.prefill.run_ms} ms; top: ${trace.prefill.ops.slice(0, 4).map((x) => `${x.label} ${x.ms} ms`).join(', ')}\n`);
  if (bw) {
    process.stdout.write(
      `effective weight bandwidth at batch 1: ${bw.weight_mb_per_step} MB / ${bw.step_ms} ms = ${bw.effective_weight_gb_s} GB/s ` +
        `(inside ORT: ${bw.in_ort_weight_gb_s} GB/s); ` +
        (bw.share_of_machine === null ? 'machine bandwidth not measured (--no-membw); ' : `machine read ${bw.machine_read_gb_s} GB/s -> ${(100 * bw.share_of_machine).toFixed(0)}%; `) +
        `plus ${bw.kv_cache_mb_per_step_at_end} MB of KV cache reservation read per step at the end\n`,
    );
  }
  return { model: name, config: c, engine, kvbatch_pieces: pieces, ort_trace: trace, weight_ops: weightOps, bandwidth: bw };
}

async function main(): Promise<void> {
  const started = new Date();
  log(`${os.cpus()[0]?.model ?? '?'} x${os.cpus().length}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${threads} ORT threads`);
  const membw: MemBwResult[] = [];
  const bestRead = (): number => Math.max(0, ...membw.flatMap((m) => m.results.map((r) => r.read.best_gb_s)));
  if (o.membw) {
    log(`memory bandwidth (${o.membwMb} MB arrays)`);
    membw.push(await measureMemoryBandwidth({ arrayMb: o.membwMb }));
    process.stdout.write(`memory bandwidth before:\n${formatMemBw(membw[0]!)}\n`);
  }
  const models: Record<string, unknown>[] = [];
  for (const name of o.models) models.push(await profileModel(name, bestRead));
  if (o.membw) {
    membw.push(await measureMemoryBandwidth({ arrayMb: o.membwMb }));
    process.stdout.write(`\nmemory bandwidth after:\n${formatMemBw(membw[1]!)}\n`);
  }
  const result = {
    date: started.toISOString(),
    git: gitInfo(),
    machine: { cpu: os.cpus()[0]?.model, cpus: os.cpus().length, load_avg_at_start: os.loadavg().map((x) => round(x, 2)), node: process.version, ort_threads: threads },
    config: { spinning: o.spinning, prompt_tokens: o.prompt, steps: o.steps, batches: o.batches, requests: o.requests, trace_steps: o.traceSteps, temperature: 0.8, top_p: 0.95 },
    memory_bandwidth: membw,
    models,
  };
  if (o.save) {
    fs.mkdirSync(o.outDir, { recursive: true });
    const file = path.join(o.outDir, `${started.toISOString().slice(0, 10)}-profile.json`);
    fs.writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
    log(`wrote ${path.relative(REPO, file)}`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`profile failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
