/**
 * The `raw` baseline: the runtime's limit for one stream. A minimal loop
 * over an ONNX Runtime session of a model directory's onnx/model.onnx:
 * batch 1, greedy argmax, the KV cache fed back as past_key_values, no HTTP,
 * no scheduler, no tokenizer in the loop. Run by bench/run.ts as a child
 * process (so its memory is its own): reads a JSON job on stdin, writes one
 * JSON result line on stdout.
 *
 *   job: { dir, prompts: number[][], newTokens, durationS?, sequences?, warmup, threads }
 */
import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';

interface Job {
  dir: string;
  prompts: number[][];
  newTokens: number;
  durationS?: number;
  sequences?: number;
  warmup: number;
  threads: number;
}

interface ModelShape {
  layers: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
}

function readShape(dir: string): ModelShape {
  const c = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, number>;
  const heads = c['num_attention_heads']!;
  return {
    layers: c['num_hidden_layers']!,
    kvHeads: c['num_key_value_heads'] ?? heads,
    headDim: c['head_dim'] ?? c['hidden_size']! / heads,
    vocab: c['vocab_size']!,
  };
}

const int64 = (xs: number[]) => new ort.Tensor('int64', BigInt64Array.from(xs, BigInt), [1, xs.length]);

function argmaxLast(logits: ort.Tensor, vocab: number): number {
  const data = logits.data as Float32Array;
  const off = data.length - vocab;
  let best = 0;
  let bestV = -Infinity;
  for (let i = 0; i < vocab; i++) {
    const v = data[off + i]!;
    if (v > bestV) {
      bestV = v;
      best = i;
    }
  }
  return best;
}

interface SequenceTiming {
  promptTokens: number;
  prefillMs: number;
  /** Decode step times (ms), one per token after the first. */
  stepMs: number[];
  totalMs: number;
}

/** Prefill the prompt, then newTokens-1 decode steps: newTokens tokens in all; EOS does not stop it. */
async function runSequence(session: ort.InferenceSession, s: ModelShape, ids: number[], newTokens: number): Promise<SequenceTiming> {
  const t0 = performance.now();
  let past: ort.Tensor[] = [];
  for (let i = 0; i < 2 * s.layers; i++) past.push(new ort.Tensor('float32', new Float32Array(0), [1, s.kvHeads, 0, s.headDim]));
  const step = async (input: number[], pos0: number): Promise<number> => {
    const total = pos0 + input.length;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: int64(input),
      attention_mask: int64(new Array<number>(total).fill(1)),
      position_ids: int64(input.map((_, i) => pos0 + i)),
    };
    for (let i = 0; i < s.layers; i++) {
      feeds[`past_key_values.${i}.key`] = past[2 * i]!;
      feeds[`past_key_values.${i}.value`] = past[2 * i + 1]!;
    }
    const out = await session.run(feeds);
    const next: ort.Tensor[] = [];
    for (let i = 0; i < s.layers; i++) next.push(out[`present.${i}.key`]!, out[`present.${i}.value`]!);
    past = next;
    const tok = argmaxLast(out['logits']!, s.vocab);
    out['logits']!.dispose?.();
    return tok;
  };
  let tok = await step(ids, 0);
  const prefillMs = performance.now() - t0;
  const stepMs: number[] = [];
  let len = ids.length;
  for (let n = 1; n < newTokens; n++) {
    const a = performance.now();
    tok = await step([tok], len);
    len++;
    stepMs.push(performance.now() - a);
  }
  return { promptTokens: ids.length, prefillMs, stepMs, totalMs: performance.now() - t0 };
}

function vmHwmMb(): number {
  try {
    const m = /VmHWM:\s+(\d+)\s*kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch {
    /* no /proc */
  }
  return process.resourceUsage().maxRSS / 1024;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const job = JSON.parse(await readStdin()) as Job;
const shape = readShape(job.dir);
const session = await ort.InferenceSession.create(path.join(job.dir, 'onnx', 'model.onnx'), {
  executionProviders: ['cpu'],
  graphOptimizationLevel: 'all',
  intraOpNumThreads: job.threads,
  interOpNumThreads: 1,
});
for (let i = 0; i < job.warmup; i++) await runSequence(session, shape, job.prompts[i % job.prompts.length]!, job.newTokens);

const timings: SequenceTiming[] = [];
const started = performance.now();
const deadline = job.durationS === undefined ? Infinity : started + job.durationS * 1000;
const maxSeq = job.sequences ?? Infinity;
// At least two sequences, so a long model still gives a spread.
while (timings.length < maxSeq && (performance.now() < deadline || timings.length < 2)) {
  timings.push(await runSequence(session, shape, job.prompts[timings.length % job.prompts.length]!, job.newTokens));
}
const wallMs = performance.now() - started;
await session.release();

process.stdout.write(
  JSON.stringify({
    sequences: timings,
    wall_ms: wallMs,
    threads: job.threads,
    peak_rss_mb: vmHwmMb(),
  }) + '\n',
);
