/**
 * Graph micro-benchmark: one ONNX Runtime session called directly from Node
 * (no HTTP, no scheduler), plain graph vs fused graphs.
 *
 *   npx tsx bench/graph-micro.ts [--model distil|stories260K|tiny] [--graphs plain,gqa,external,kvbatch]
 *       [--batches 1,4,16] [--context 300] [--prompt 200] [--threads N] [--spin 0|1] [--arena 0|1]
 *       [--opt all|extended|basic|disabled] [--capacity N] [--seconds S]
 *
 * Per graph: decode step ms at each batch size with every row holding
 * `--context` cached tokens, and prefill tokens/s of one `--prompt`-token
 * prompt. Graphs:
 *   plain     onnx/model.onnx's graph: past in, freshly concatenated present out
 *   gqa       fused graph, GroupQueryAttention appending in place into
 *             [batch, kv, maxSeqLen, hd] buffers passed as past and as present fetches
 *   external  fused graph, attention reading [batch, kv, capacity, hd] past
 *             buffers in place and returning only the new keys/values
 *   kvbatch   the external graph driven through KvBatch (includes writing
 *             the new keys/values into the buffers)
 *   gqa-unpacked, external-unpacked: the same with separate q/k/v MatMuls.
 * `external:N` / `kvbatch:N` set the cache reservation per row (default
 * context + 64, or --capacity). distil and tiny use make-model's weights
 * (seed 1), built in memory; stories260K is read from ../shared/models.
 * Timings: median (and best) of repeated runs after a warm-up; tokens/s from
 * the median. The machine is shared, so compare ratios within one run.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { KvBatch } from '../src/engine/kv-batch.js';
import { readLlama2cCheckpoint } from '../src/engine/llama2c.js';
import { buildLlamaOnnxFused, type FusedGraphOptions } from '../src/engine/onnx-graph-fused.js';
import { buildLlamaOnnx, type LlamaConfig, type LlamaWeights } from '../src/engine/onnx-graph.js';
import { getPreset } from '../src/engine/presets.js';
import { randomLlamaWeights } from '../src/engine/random-weights.js';
import { parseCli } from '../scripts/cli-args.js';

const USAGE =
  'tsx bench/graph-micro.ts [--model distil|stories260K|tiny] [--graphs plain,gqa,external,kvbatch] [--batches 1,4,16] ' +
  '[--context 300] [--prompt 200] [--threads N] [--spin 0|1] [--arena 0|1] [--opt all|extended|basic|disabled] [--capacity N] [--seconds S]';
const args = parseCli(
  {
    model: { type: 'string' },
    graphs: { type: 'string' },
    batches: { type: 'string' },
    context: { type: 'string' },
    prompt: { type: 'string' },
    threads: { type: 'string' },
    spin: { type: 'string' },
    arena: { type: 'string' },
    opt: { type: 'string' },
    capacity: { type: 'string' },
    seconds: { type: 'string' },
    help: { type: 'boolean' },
  },
  USAGE,
  [],
);

const STORIES = path.resolve('../shared/models/stories260K/stories260K.bin');
const modelName = args.model ?? 'distil';
const graphs = (args.graphs ?? 'plain,gqa,external,kvbatch').split(',');
const batches = (args.batches ?? '1,4,16').split(',').map(Number);
const context = Number(args.context ?? 300);
const promptLen = Number(args.prompt ?? 200);
const seconds = Number(args.seconds ?? 2);

function loadWeights(): LlamaWeights {
  if (modelName === 'stories260K') {
    if (!fs.existsSync(STORIES)) throw new Error(`${STORIES} not found`);
    return readLlama2cCheckpoint(STORIES);
  }
  return randomLlamaWeights(getPreset(modelName), 1);
}

function sessionOptions(): ort.InferenceSession.SessionOptions {
  const o: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: (args.opt ?? 'all') as 'all',
    enableCpuMemArena: args.arena !== '0',
  };
  if (args.threads) o.intraOpNumThreads = Number(args.threads);
  if (args.spin !== undefined) o.extra = { session: { intra_op: { allow_spinning: args.spin } } };
  return o;
}

/** Median and minimum ms of `fn` over repeated calls for about `seconds` (at least 5 calls) after 2 warm-ups. */
async function timeIt(fn: () => Promise<unknown>): Promise<Timing> {
  await fn();
  await fn();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < 5 || (performance.now() - start < seconds * 1000 && times.length < 500)) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)]!, min: times[0]! };
}

interface Timing {
  median: number;
  min: number;
}

const i64 = (values: number[], dims: number[]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(values.map(BigInt)), dims);
const randomFloats = (n: number): Float32Array => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
const tokens = (c: LlamaConfig, n: number): number[] => Array.from({ length: n }, (_, i) => 3 + ((i * 7919) % (c.vocabSize - 3)));

interface Result {
  graph: string;
  decodeMs: Record<number, Timing>;
  /** Prefill of one prompt, ms. */
  prefill: Timing;
}

async function benchPlain(c: LlamaConfig, s: ort.InferenceSession): Promise<Result> {
  const hd = c.dim / c.nHeads;
  const decodeMs: Record<number, Timing> = {};
  for (const bsz of batches) {
    const feeds: Record<string, ort.Tensor> = {
      input_ids: i64(new Array(bsz).fill(5), [bsz, 1]),
      attention_mask: i64(new Array(bsz * (context + 1)).fill(1), [bsz, context + 1]),
      position_ids: i64(new Array(bsz).fill(context), [bsz, 1]),
    };
    for (let i = 0; i < c.nLayers; i++) {
      for (const kind of ['key', 'value']) {
        feeds[`past_key_values.${i}.${kind}`] = new ort.Tensor('float32', randomFloats(bsz * c.nKvHeads * context * hd), [bsz, c.nKvHeads, context, hd]);
      }
    }
    decodeMs[bsz] = await timeIt(() => s.run(feeds));
  }
  const ids = tokens(c, promptLen);
  const feeds: Record<string, ort.Tensor> = {
    input_ids: i64(ids, [1, promptLen]),
    attention_mask: i64(ids.map(() => 1), [1, promptLen]),
    position_ids: i64(ids.map((_, i) => i), [1, promptLen]),
  };
  for (let i = 0; i < c.nLayers; i++) {
    for (const kind of ['key', 'value']) feeds[`past_key_values.${i}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [1, c.nKvHeads, 0, hd]);
  }
  const prefill = await timeIt(() => s.run(feeds));
  return { graph: 'plain', decodeMs, prefill };
}

async function benchGqa(c: LlamaConfig, s: ort.InferenceSession): Promise<Result> {
  const hd = c.dim / c.nHeads;
  const maxB = Math.max(...batches, 1);
  const bufs = Array.from({ length: 2 * c.nLayers }, () => randomFloats(maxB * c.nKvHeads * c.maxSeqLen * hd));
  const logits = new Float32Array(maxB * c.vocabSize);
  const run = (n: number, ids: number[], seqlens: number[], total: number, index: number[]): Promise<unknown> => {
    const seq = ids.length / n;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: i64(ids, [n, seq]),
      seqlens_k: new ort.Tensor('int32', Int32Array.from(seqlens), [n]),
      total_sequence_length: new ort.Tensor('int32', Int32Array.of(total), []),
      logits_index: i64(index, [n]),
    };
    const fetches: Record<string, ort.Tensor> = { logits: new ort.Tensor('float32', logits.subarray(0, n * c.vocabSize), [n, c.vocabSize]) };
    for (let i = 0; i < c.nLayers; i++) {
      for (const [j, kind] of ['key', 'value'].entries()) {
        const t = new ort.Tensor('float32', bufs[2 * i + j]!.subarray(0, n * c.nKvHeads * c.maxSeqLen * hd), [n, c.nKvHeads, c.maxSeqLen, hd]);
        feeds[`past_key_values.${i}.${kind}`] = t;
        fetches[`present.${i}.${kind}`] = t;
      }
    }
    return s.run(feeds, fetches);
  };
  const decodeMs: Record<number, Timing> = {};
  // Every step writes position `context` again, so the rows stay at context+1.
  for (const n of batches) decodeMs[n] = await timeIt(() => run(n, new Array(n).fill(5), new Array(n).fill(context), context + 1, [...Array(n).keys()]));
  const prefill = await timeIt(() => run(1, tokens(c, promptLen), [promptLen - 1], promptLen, [promptLen - 1]));
  return { graph: 'gqa', decodeMs, prefill };
}

async function benchExternal(c: LlamaConfig, s: ort.InferenceSession, capacity: number): Promise<Result> {
  const hd = c.dim / c.nHeads;
  const maxB = Math.max(...batches, 1);
  const bufs = Array.from({ length: 2 * c.nLayers }, () => randomFloats(maxB * c.nKvHeads * capacity * hd));
  const run = (n: number, ids: number[], pastLen: number, index: number[], cap: number): Promise<unknown> => {
    const seq = ids.length / n;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: i64(ids, [n, seq]),
      past_sequence_lengths: i64(new Array(n).fill(pastLen), [n]),
      logits_index: i64(index, [n]),
    };
    for (let i = 0; i < c.nLayers; i++) {
      for (const [j, kind] of ['key', 'value'].entries()) {
        feeds[`past_key_values.${i}.${kind}`] = new ort.Tensor('float32', bufs[2 * i + j]!.subarray(0, n * c.nKvHeads * cap * hd), [n, c.nKvHeads, cap, hd]);
      }
    }
    return s.run(feeds);
  };
  const decodeMs: Record<number, Timing> = {};
  for (const n of batches) decodeMs[n] = await timeIt(() => run(n, new Array(n).fill(5), context, [...Array(n).keys()], capacity));
  const prefill = await timeIt(() => run(1, tokens(c, promptLen), 0, [promptLen - 1], 1));
  return { graph: `external(cap ${capacity})`, decodeMs, prefill };
}

async function benchKvBatch(c: LlamaConfig, model: Uint8Array, capacity: number): Promise<Result> {
  const maxB = Math.max(...batches, 1);
  const kv = await KvBatch.create(model, c, { maxBatch: maxB, initialCapacity: capacity, sessionOptions: sessionOptions() });
  const decodeMs: Record<number, Timing> = {};
  for (const n of batches) {
    kv.remove([...Array(kv.size).keys()]);
    // Prefill n rows of `context` tokens, then time steps, rewinding so the context stays put.
    await kv.append(Array.from({ length: n }, () => tokens(c, context)));
    decodeMs[n] = await timeIt(async () => {
      await kv.step(new Array(n).fill(5));
      for (let r = 0; r < n; r++) kv.rewind(r, context);
    });
  }
  kv.remove([...Array(kv.size).keys()]);
  const prefill = await timeIt(async () => {
    await kv.append([tokens(c, promptLen)]);
    kv.remove([0]);
  });
  await kv.dispose();
  return { graph: `kvbatch(reserve ${kv.reserved})`, decodeMs, prefill };
}

const weights = loadWeights();
const c = weights.config;
if (context + 1 > c.maxSeqLen || promptLen > c.maxSeqLen) {
  process.stderr.write(`error: --context ${context} (+1) and --prompt ${promptLen} must fit the model's context of ${c.maxSeqLen}\n`);
  process.exit(2);
}
const capacity = Number(args.capacity ?? Math.min(c.maxSeqLen, context + 64));
console.log(
  `model ${modelName}: dim ${c.dim}, layers ${c.nLayers}, heads ${c.nHeads}/${c.nKvHeads}, vocab ${c.vocabSize}, max ${c.maxSeqLen}; ` +
    `context ${context}, prompt ${promptLen}; options ${JSON.stringify(sessionOptions())}`,
);
const results: Result[] = [];
for (const g of graphs) {
  const [name, capArg] = g.split(':');
  const cap = capArg ? Number(capArg) : capacity;
  const t0 = performance.now();
  if (name === 'plain') {
    results.push(await benchPlain(c, await ort.InferenceSession.create(buildLlamaOnnx(weights), sessionOptions())));
  } else if (name === 'gqa' || name === 'gqa-unpacked') {
    const opts: FusedGraphOptions = { attention: 'gqa', packedQkv: name === 'gqa' };
    const r = await benchGqa(c, await ort.InferenceSession.create(buildLlamaOnnxFused(weights, opts), sessionOptions()));
    results.push({ ...r, graph: name });
  } else if (name === 'external' || name === 'external-unpacked') {
    const opts: FusedGraphOptions = { attention: 'external', packedQkv: name === 'external' };
    const r = await benchExternal(c, await ort.InferenceSession.create(buildLlamaOnnxFused(weights, opts), sessionOptions()), cap);
    results.push({ ...r, graph: `${name}(cap ${cap})` });
  } else if (name === 'kvbatch') {
    results.push(await benchKvBatch(c, buildLlamaOnnxFused(weights), cap));
  } else {
    throw new Error(`unknown graph ${name}`);
  }
  const r = results.at(-1)!;
  const fmt = (t: Timing): string => `${t.median.toFixed(2)} (${t.min.toFixed(2)})`;
  console.log(
    `${r.graph.padEnd(26)} ` +
      batches.map((n) => `b${n} ${fmt(r.decodeMs[n]!)} ms ${((n / r.decodeMs[n]!.median) * 1000).toFixed(0)} tok/s`).join(' | ') +
      ` | prefill ${((promptLen / r.prefill.median) * 1000).toFixed(0)} tok/s (best ${((promptLen / r.prefill.min) * 1000).toFixed(0)})` +
      `   [${((performance.now() - t0) / 1000).toFixed(0)} s]`,
  );
}
