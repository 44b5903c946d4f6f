/**
 * Decode-step A/B at batch 1: variants of the fused graph and of its session
 * options, measured alternately in rounds within one run (the machine is
 * shared, so only ratios measured side by side mean anything).
 *
 *   npx tsx bench/decode-ab.ts [--model llama-85m|distil|tiny] [--variants base,spin0,...]
 *       [--rounds 8] [--steps 12] [--context 300]
 *
 * Each variant holds its own session (and KvBatch, the engine's batch)
 * with one row of --context tokens; a round runs --steps decode steps of
 * every variant in turn (order rotated each round), rewinding so the row
 * stays at --context, and keeps each variant's median step, best step and
 * median CPU time per step (process.cpuUsage: every thread of this process,
 * so spinning threads count; under other load a step's CPU time moves less
 * than its wall time). The report: per variant the median of its round
 * medians, its best step (GB/s = weight bytes / best step), and its ratios
 * to the first variant (first's / its, >1 = faster) per round: median and
 * min..max over rounds, for the median step, the best step and CPU time.
 *
 * Variants (combine options with '+', e.g. `spin0+t1`):
 *   base       the fused graph and the session options FusedBackend gives the engine
 *   spin1      intra-op thread spinning on (ONNX Runtime's default; the engine turns it off, as base does; spin0 is base)
 *   t1, t2     intra-op threads
 *   noarena    enableCpuMemArena false
 *   envalloc   session.use_env_allocators 1
 *   noprepack  session.disable_prepacking 1 (MatMul weights stay [K, N] as stored: MLAS's M=1 kernel instead of the packed GEMM)
 *   unpacked   separate q, k, v products
 *   heads      FusedGraphOptions.headsFirst: the packed q/k/v split into heads first (3 nodes a layer instead of 7)
 *   matmuls    upper bound: a graph of only the model's weight products, chained, no attention or norms
 *   read       upper bound: the STREAM read kernel over as many bytes as the weights, 2 threads
 */
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import { KvBatch } from '../src/engine/kv-batch.js';
import { ElemType, GraphBuilder, attrInt } from '../src/engine/onnx-builder.js';
import { buildLlamaOnnxFused, type FusedGraphOptions } from '../src/engine/onnx-graph-fused.js';
import type { LlamaConfig, LlamaWeights } from '../src/engine/onnx-graph.js';
import { getPreset, parameterCount } from '../src/engine/presets.js';
import { randomLlamaWeights } from '../src/engine/random-weights.js';
import { parseCli } from '../scripts/cli-args.js';
import { MemBwMeter } from './lib/membw.js';

const USAGE = 'npx tsx bench/decode-ab.ts [--model llama-85m] [--variants base,spin0,t1,unpacked,matmuls,read] [--rounds 8] [--steps 12] [--context 300]';
const args = parseCli(
  {
    model: { type: 'string' },
    variants: { type: 'string' },
    rounds: { type: 'string' },
    steps: { type: 'string' },
    context: { type: 'string' },
    help: { type: 'boolean' },
  },
  USAGE,
  [],
);
const modelName = args.model ?? 'llama-85m';
const variantNames = (args.variants ?? 'base,spin1,matmuls,read').split(',');
const rounds = Number(args.rounds ?? 8);
const steps = Number(args.steps ?? 12);
const context = Number(args.context ?? 300);
const threads = Math.max(1, os.availableParallelism());

interface Variant {
  name: string;
  step: () => Promise<void>;
  close: () => Promise<void>;
}

function sessionOptions(parts: Set<string>): ort.InferenceSession.SessionOptions {
  const o: ort.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: parts.has('t1') ? 1 : parts.has('t2') ? 2 : threads,
    interOpNumThreads: 1,
  };
  if (parts.has('noarena')) o.enableCpuMemArena = false;
  const session: Record<string, unknown> = {};
  // Spinning off unless asked for, as FusedBackend gives the engine.
  session['intra_op'] = { allow_spinning: parts.has('spin1') ? '1' : '0' };
  if (parts.has('envalloc')) session['use_env_allocators'] = '1';
  if (parts.has('noprepack')) session['disable_prepacking'] = '1';
  o.extra = { session };
  return o;
}

/** The model's weight products alone, in the model's order and dependency chain (slices keep the widths matching). */
function matmulOnlyGraph(c: LlamaConfig): Uint8Array {
  const b = new GraphBuilder();
  const hd = c.dim / c.nHeads;
  const qkvN = c.dim + 2 * c.nKvHeads * hd;
  let x = b.input('x', ElemType.FLOAT, [1, c.dim]);
  const rnd = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => (((i * 2654435761) >>> 0) / 2 ** 32 - 0.5) * 0.05);
  const slice = (t: string, n: number): string => b.op('Slice', [t, b.int64([0]), b.int64([n]), b.int64([1])]);
  for (let l = 0; l < c.nLayers; l++) {
    const qkv = b.op('MatMul', [x, b.float(`qkv${l}`, [c.dim, qkvN], rnd(c.dim * qkvN))]);
    const o = b.op('MatMul', [slice(qkv, c.dim), b.float(`o${l}`, [c.dim, c.dim], rnd(c.dim * c.dim))]);
    const gu = b.op('MatMul', [o, b.float(`gu${l}`, [c.dim, 2 * c.hiddenDim], rnd(c.dim * 2 * c.hiddenDim))]);
    x = b.op('MatMul', [slice(gu, c.hiddenDim), b.float(`down${l}`, [c.hiddenDim, c.dim], rnd(c.hiddenDim * c.dim))]);
  }
  b.op('Gemm', [x, b.float('lm', [c.vocabSize, c.dim], rnd(c.vocabSize * c.dim))], { transB: attrInt(1) }, 'y');
  b.output('y', ElemType.FLOAT, [1, c.vocabSize]);
  return b.build('matmuls', 17);
}

let weightsCache: LlamaWeights | undefined;
const graphCache = new Map<string, Uint8Array>();

async function makeVariant(name: string, c: LlamaConfig): Promise<Variant> {
  const parts = new Set(name.split('+'));
  const weightBytes = parameterCount(c) * 4;
  if (parts.has('read')) {
    // read() sums the first array only; make it as big as the weights.
    const m = await MemBwMeter.create(weightBytes / 1e6, 2);
    return { name, step: async () => void (await m.pass('read')), close: () => m.close() };
  }
  if (parts.has('matmuls')) {
    const s = await ort.InferenceSession.create(matmulOnlyGraph(c), sessionOptions(parts));
    const feeds = { x: new ort.Tensor('float32', new Float32Array(c.dim).fill(0.1), [1, c.dim]) };
    return { name, step: async () => void (await s.run(feeds)), close: () => s.release() };
  }
  const graphOpts: FusedGraphOptions = { packedQkv: !parts.has('unpacked'), headsFirst: parts.has('heads') };
  const key = JSON.stringify(graphOpts);
  if (!graphCache.has(key)) {
    weightsCache ??= randomLlamaWeights(c, 1);
    graphCache.set(key, buildLlamaOnnxFused(weightsCache, graphOpts));
  }
  const kv = await KvBatch.create(graphCache.get(key)!, c, { maxBatch: 1, sessionOptions: sessionOptions(parts) });
  const prompt = [1, ...Array.from({ length: context - 1 }, (_, i) => 3 + ((i * 7919) % (c.vocabSize - 3)))];
  await kv.append([prompt]);
  return {
    name,
    step: async () => {
      await kv.step([5]);
      kv.rewind(0, context);
    },
    close: () => kv.dispose(),
  };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const c = getPreset(modelName);
  const weightMb = (parameterCount(c) * 4) / 1e6;
  console.log(`${modelName}: ${weightMb.toFixed(0)} MB of weights; context ${context}; ${rounds} rounds x ${steps} steps; load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const variants: Variant[] = [];
  for (const name of variantNames) variants.push(await makeVariant(name, c));
  graphCache.clear();
  weightsCache = undefined;
  for (const v of variants) for (let i = 0; i < 3; i++) await v.step(); // warm-up
  // Per variant and round: the median and the best wall time of a step, and the median CPU time of a
  // step (all of this process's threads; with spinning on it counts the spinning too).
  const wall: number[][] = variants.map(() => []);
  const best: number[][] = variants.map(() => []);
  const cpu: number[][] = variants.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let j = 0; j < variants.length; j++) {
      const i = (j + r) % variants.length;
      const times: number[] = [];
      const cpus: number[] = [];
      for (let s = 0; s < steps; s++) {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        await variants[i]!.step();
        times.push(performance.now() - t0);
        const c1 = process.cpuUsage(c0);
        cpus.push((c1.user + c1.system) / 1000);
      }
      wall[i]!.push(median(times));
      best[i]!.push(Math.min(...times));
      cpu[i]!.push(median(cpus));
    }
    process.stderr.write(`round ${r + 1}: ${variants.map((v, i) => `${v.name} ${wall[i]!.at(-1)!.toFixed(2)} (best ${best[i]!.at(-1)!.toFixed(2)})`).join(', ')}\n`);
  }
  const ratio = (table: number[][], i: number): string => {
    const rs = table[i]!.map((t, r) => table[0]![r]! / t).sort((a, b) => a - b);
    return `${median(rs).toFixed(3)} (${rs[0]!.toFixed(2)}..${rs.at(-1)!.toFixed(2)})`;
  };
  console.log(
    `\n${'variant'.padEnd(26)} ${'median'.padStart(7)} ${'best'.padStart(7)} ${'cpu'.padStart(7)} ${'GB/s'.padStart(5)}` +
      `   vs ${variants[0]!.name} (>1 faster), median (min..max) over rounds: median step | best step | cpu`,
  );
  variants.forEach((v, i) => {
    const ms = median(wall[i]!);
    const bestMs = Math.min(...best[i]!);
    console.log(
      `${v.name.padEnd(26)} ${ms.toFixed(2).padStart(7)} ${bestMs.toFixed(2).padStart(7)} ${median(cpu[i]!).toFixed(2).padStart(7)} ${(weightMb / bestMs).toFixed(1).padStart(5)}` +
        `   ${ratio(wall, i)} | ${ratio(best, i)} | ${ratio(cpu, i)}`,
    );
  });
  for (const v of variants) await v.close();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`decode-ab failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
