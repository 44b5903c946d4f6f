/**
 * Quality and speed of the quantized fused graph (MatMulNBits, src/engine/quantize.ts).
 *   npm run bench:quantize -- [--positions 10000] [--rounds 6] [--prompt 128] [--decode 32] [--skip-speed] [--skip-quality]
 *
 * Quality, on stories260K (../shared/models; the only trained checkpoint on
 * this machine): the fp32 fused graph writes text (sampled, temperature 0.8,
 * seeded, from a fixed list of prompts) until at least --positions generated
 * tokens; then that text is teacher-forced through fp32 and every quantized
 * variant (int8/int4 x accuracy_level 0/1/4, and the LM head quantized at
 * the default level), and at every generated position we compare the
 * next-token distributions: top-1 agreement with fp32, mean KL(fp32 || q),
 * and each model's perplexity of the text. Greedy continuations of six
 * prompts (the three golden ones of ../shared/models/README.md, three more)
 * side by side, and the fused graph's file size per variant.
 *
 * Speed, on the llama-85m preset (random weights: agreement there has no
 * quality meaning; built with absmax scales, which run exactly as mse ones): batch-1 prefill of a --prompt-token prompt and --decode
 * decode steps after it, every variant in turn within each round (the order
 * rotating), the first round discarded; medians of ms per prefill and per
 * decode step, and the ratio to fp32 in the same rounds.
 *
 * Writes bench/results/<date>-quantize-quality.json.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { readLlama2cCheckpoint } from '../src/engine/llama2c.js';
import { importLlama2c, MODEL_FILE, MODEL_FUSED_FILE } from '../src/engine/model-dir.js';
import { buildLlamaOnnxFused, newKeyName, newValueName } from '../src/engine/onnx-graph-fused.js';
import type { LlamaConfig, LlamaWeights } from '../src/engine/onnx-graph.js';
import { getPreset, parameterCount } from '../src/engine/presets.js';
import { QUANTIZE_DEFAULTS, type FusedQuantizeOptions } from '../src/engine/quantize.js';
import { randomLlamaWeights } from '../src/engine/random-weights.js';
import { SeededRng } from '../src/engine/rng.js';
import { Tokenizer } from '../src/engine/tokenizer.js';
import { parseCli } from '../scripts/cli-args.js';

const REPO = path.resolve(import.meta.dirname, '..');
const STORIES_DIR = path.resolve(REPO, '../shared/models/stories260K');
const BOS = 1;
const EOS = 2;

const args = parseCli(
  {
    positions: { type: 'string' },
    rounds: { type: 'string' },
    prompt: { type: 'string' },
    decode: { type: 'string' },
    threads: { type: 'string' },
    'skip-speed': { type: 'boolean' },
    'skip-quality': { type: 'boolean' },
    help: { type: 'boolean' },
  },
  'tsx bench/quantize-quality.ts [--positions N] [--rounds N] [--prompt N] [--decode N] [--threads N] [--skip-speed] [--skip-quality]',
  [],
);
const POSITIONS = Number(args.positions ?? 10_000);
const ROUNDS = Number(args.rounds ?? 6);
const PROMPT = Number(args.prompt ?? 128);
const DECODE = Number(args.decode ?? 32);
const THREADS = Number(args.threads ?? os.availableParallelism());

interface Variant {
  name: string;
  quantize?: FusedQuantizeOptions;
}

/**
 * fp32, then int8/int4 at accuracy levels 0, 1, 4, then each with the LM
 * head quantized too (at the default level); for quality also both scale
 * methods at the default level (the method changes no speed).
 */
function variants(forQuality: boolean): Variant[] {
  const out: Variant[] = [{ name: 'fp32' }];
  for (const mode of ['int8', 'int4'] as const) {
    const d = QUANTIZE_DEFAULTS[mode];
    const scales = d.scales ?? 'absmax';
    for (const level of [0, 1, 4]) out.push({ name: `${mode}-acc${level}`, quantize: { ...d, accuracyLevel: level, lmHead: false } });
    out.push({ name: `${mode}-acc${d.accuracyLevel}-lmhead`, quantize: { ...d, lmHead: true } });
    if (forQuality) {
      const other = scales === 'mse' ? 'absmax' : 'mse';
      out.push({ name: `${mode}-acc${d.accuracyLevel}-${other}`, quantize: { ...d, scales: other } });
    }
  }
  return out;
}

async function session(bytes: Uint8Array): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, { intraOpNumThreads: THREADS, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
}

/** Batch-1 driver of the fused graph's 'external' attention, the cache a fixed-capacity buffer per layer. */
class Stepper {
  private readonly keys: Float32Array[];
  private readonly values: Float32Array[];
  private past = 0;
  private readonly hd: number;

  constructor(
    private readonly s: ort.InferenceSession,
    private readonly c: LlamaConfig,
    private readonly cap: number,
  ) {
    this.hd = c.dim / c.nHeads;
    const size = c.nKvHeads * cap * this.hd;
    this.keys = Array.from({ length: c.nLayers }, () => new Float32Array(size));
    this.values = Array.from({ length: c.nLayers }, () => new Float32Array(size));
  }

  reset(): void {
    this.past = 0;
  }

  /** Runs `tokens` after what is cached; returns the last position's logits. */
  async run(tokens: number[]): Promise<Float32Array> {
    const { c, cap, hd } = this;
    const seq = tokens.length;
    if (this.past + seq > cap) throw new Error(`cache of ${cap} full`);
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, seq]),
      past_sequence_lengths: new ort.Tensor('int64', BigInt64Array.of(BigInt(this.past)), [1]),
      logits_index: new ort.Tensor('int64', BigInt64Array.of(BigInt(seq - 1)), [1]),
    };
    for (let l = 0; l < c.nLayers; l++) {
      feeds[`past_key_values.${l}.key`] = new ort.Tensor('float32', this.keys[l]!, [1, c.nKvHeads, cap, hd]);
      feeds[`past_key_values.${l}.value`] = new ort.Tensor('float32', this.values[l]!, [1, c.nKvHeads, cap, hd]);
    }
    const out = await this.s.run(feeds);
    for (let l = 0; l < c.nLayers; l++) {
      for (const [name, buf] of [[newKeyName(l), this.keys[l]!], [newValueName(l), this.values[l]!]] as const) {
        const data = out[name]!.data as Float32Array;
        for (let h = 0; h < c.nKvHeads; h++) buf.set(data.subarray(h * seq * hd, (h + 1) * seq * hd), (h * cap + this.past) * hd);
      }
    }
    this.past += seq;
    return out.logits!.data as Float32Array;
  }
}

function logSoftmax(logits: Float32Array, temperature = 1): Float64Array {
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x / temperature);
  let sum = 0;
  for (const x of logits) sum += Math.exp(x / temperature - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(logits, (x) => x / temperature - lse);
}

const argmax = (a: ArrayLike<number>): number => {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
};

function sample(logits: Float32Array, temperature: number, rng: SeededRng): number {
  const lp = logSoftmax(logits, temperature);
  let r = rng.next();
  for (let i = 0; i < lp.length; i++) {
    r -= Math.exp(lp[i]!);
    if (r <= 0) return i;
  }
  return lp.length - 1;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const r3 = (x: number) => Math.round(x * 1000) / 1000;

const GOLDEN_PROMPTS = ['Once upon a time', "Lily's mom said", 'One day, a big bear'];
const MORE_PROMPTS = ['Tom and his dog', 'The little bird wanted to', 'Sara found a box'];
const SAMPLE_PROMPTS = [...GOLDEN_PROMPTS, ...MORE_PROMPTS, 'The sun was', 'Ben had a red', 'Mia and Max went to the', 'There was a big tree', 'The cat said', 'One night,'];

async function quality(): Promise<Record<string, unknown>> {
  const weights = readLlama2cCheckpoint(path.join(STORIES_DIR, 'stories260K.bin'));
  const c = weights.config;
  // Model directories as users make them (file sizes, and the tokenizer).
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'quantize-quality-'));
  const sizes: Record<string, { fusedBytes: number; plainBytes: number }> = {};
  for (const mode of ['fp32', 'int8', 'int4'] as const) {
    const dir = path.join(tmp, mode);
    await importLlama2c({ checkpoint: path.join(STORIES_DIR, 'stories260K.bin'), tokenizer: path.join(STORIES_DIR, 'tok512.bin'), outDir: dir, ...(mode === 'fp32' ? {} : { quantize: mode }) });
    sizes[mode] = { fusedBytes: fs.statSync(path.join(dir, MODEL_FUSED_FILE)).size, plainBytes: fs.statSync(path.join(dir, MODEL_FILE)).size };
  }
  const tokenizer = await Tokenizer.fromDirectory(path.join(tmp, 'fp32'));
  const vs = variants(true);
  const graphs = vs.map((v) => buildLlamaOnnxFused(weights, v.quantize ? { quantize: v.quantize } : {}));
  const steppers = await Promise.all(graphs.map(async (g) => new Stepper(await session(g), c, c.maxSeqLen)));
  const fp32 = steppers[0]!;

  // 1. The fp32 model writes the text.
  const texts: { prompt: number[]; tokens: number[] }[] = [];
  let generated = 0;
  for (let i = 0; generated < POSITIONS; i++) {
    const prompt = tokenizer.encode(SAMPLE_PROMPTS[i % SAMPLE_PROMPTS.length]!);
    const rng = new SeededRng(1000 + i);
    fp32.reset();
    let logits = await fp32.run(prompt);
    const tokens = [...prompt];
    while (tokens.length < c.maxSeqLen) {
      const t = sample(logits, 0.8, rng);
      tokens.push(t);
      if (t === BOS || t === EOS) break;
      logits = await fp32.run([t]);
    }
    texts.push({ prompt, tokens });
    generated += tokens.length - prompt.length;
  }
  console.log(`stories260K: the fp32 model wrote ${texts.length} texts, ${generated} generated tokens`);

  // 2. Teacher-force it through every variant; compare at every generated position.
  const acc = vs.map(() => ({ agree: 0, kl: 0, nll: 0, n: 0 }));
  for (const { prompt, tokens } of texts) {
    const perVariant: Float64Array[][] = [];
    for (const st of steppers) {
      st.reset();
      const lps: Float64Array[] = [];
      // Positions prompt.length-1 .. tokens.length-2 predict the generated tokens.
      let logits = await st.run(tokens.slice(0, prompt.length));
      for (let pos = prompt.length - 1; pos < tokens.length - 1; pos++) {
        lps.push(logSoftmax(logits));
        if (pos + 1 < tokens.length - 1) logits = await st.run([tokens[pos + 1]!]);
      }
      perVariant.push(lps);
    }
    const ref = perVariant[0]!;
    for (let v = 0; v < vs.length; v++) {
      const a = acc[v]!;
      perVariant[v]!.forEach((lq, j) => {
        const lp = ref[j]!;
        const target = tokens[prompt.length + j]!;
        let kl = 0;
        for (let t = 0; t < lp.length; t++) kl += Math.exp(lp[t]!) * (lp[t]! - lq[t]!);
        a.kl += kl;
        a.nll -= lq[target]!;
        a.agree += argmax(lq) === argmax(lp) ? 1 : 0;
        a.n += 1;
      });
    }
  }
  const metrics = vs.map((v, i) => {
    const a = acc[i]!;
    return {
      variant: v.name,
      quantize: v.quantize ?? null,
      fusedGraphBytes: graphs[i]!.byteLength,
      positions: a.n,
      top1Agreement: a.agree / a.n,
      meanKl: a.kl / a.n,
      perplexity: Math.exp(a.nll / a.n),
    };
  });

  // 3. Greedy continuations side by side (fp32 / int8 / int4 at the defaults).
  const sideBySide = ['fp32', `int8-acc${QUANTIZE_DEFAULTS.int8.accuracyLevel}`, `int4-acc${QUANTIZE_DEFAULTS.int4.accuracyLevel}`];
  const greedy: Record<string, Record<string, string>> = {};
  for (const text of [...GOLDEN_PROMPTS, ...MORE_PROMPTS]) {
    greedy[text] = {};
    for (const name of sideBySide) {
      const st = steppers[vs.findIndex((v) => v.name === name)]!;
      st.reset();
      const prompt = tokenizer.encode(text);
      let logits = await st.run(prompt);
      const out: number[] = [];
      while (out.length < 120 && prompt.length + out.length < c.maxSeqLen) {
        const t = argmax(logits);
        if (t === BOS || t === EOS) break;
        out.push(t);
        logits = await st.run([t]);
      }
      greedy[text]![name] = tokenizer.decode([...prompt, ...out]);
    }
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  return { model: 'stories260K', parameters: parameterCount(c), texts: texts.length, generatedTokens: generated, sampling: { temperature: 0.8, seeds: '1000+i' }, modelDirSizes: sizes, metrics, greedy };
}

async function speed(): Promise<Record<string, unknown>> {
  const config = getPreset('llama-85m');
  const weights: LlamaWeights = randomLlamaWeights(config, 1);
  // The scale method changes the stored scales, not the layout or the operator, so not the speed:
  // absmax builds these 85M-parameter graphs several times faster than the mse search.
  const vs = variants(false).map((v) => (v.quantize ? { ...v, quantize: { ...v.quantize, scales: 'absmax' as const } } : v));
  const cap = PROMPT + DECODE;
  const steppers: Stepper[] = [];
  const bytes: number[] = [];
  for (const v of vs) {
    const g = buildLlamaOnnxFused(weights, v.quantize ? { quantize: v.quantize } : {});
    bytes.push(g.byteLength);
    steppers.push(new Stepper(await session(g), config, cap));
    console.log(`llama-85m ${v.name}: fused graph ${(g.byteLength / 1e6).toFixed(1)} MB`);
  }
  const rng = new SeededRng(7);
  const prompt = Array.from({ length: PROMPT }, (_, i) => (i === 0 ? BOS : 3 + Math.floor(rng.next() * (config.vocabSize - 3))));
  const follow = Array.from({ length: DECODE }, () => 3 + Math.floor(rng.next() * (config.vocabSize - 3)));
  const prefillMs = vs.map(() => [] as number[]);
  const decodeMs = vs.map(() => [] as number[]);
  const argmaxes = vs.map(() => [] as number[]);
  const warmup = vs.map(() => ({ prefill: 0, decode: 0 }));
  // A variant more than SLOW_FACTOR times slower than fp32 in the warm-up round is reported from it alone.
  const SLOW_FACTOR = 4;
  const slow = new Set<number>();
  for (let round = 0; round <= ROUNDS; round++) {
    if (round === 1) vs.forEach((_, v) => warmup[v]!.decode > SLOW_FACTOR * warmup[0]!.decode && slow.add(v));
    for (let j = 0; j < vs.length; j++) {
      const v = (j + round) % vs.length; // rotate the order
      if (slow.has(v)) continue;
      const st = steppers[v]!;
      st.reset();
      let t0 = performance.now();
      let logits = await st.run(prompt);
      const pre = performance.now() - t0;
      const steps: number[] = [];
      const am = [argmax(logits)];
      for (const t of follow) {
        t0 = performance.now();
        logits = await st.run([t]);
        steps.push(performance.now() - t0);
        am.push(argmax(logits));
      }
      if (round === 0) {
        argmaxes[v] = am;
        warmup[v] = { prefill: pre, decode: median(steps) };
        continue; // warm-up
      }
      prefillMs[v]!.push(pre);
      decodeMs[v]!.push(median(steps));
    }
    if (round > 0) console.log(`round ${round}/${ROUNDS} done`);
  }
  const base = { prefill: prefillMs[0]!, decode: decodeMs[0]! };
  const rows = vs.map((v, i) => {
    const timedInRounds = !slow.has(i);
    const pre = timedInRounds ? median(prefillMs[i]!) : warmup[i]!.prefill;
    const dec = timedInRounds ? median(decodeMs[i]!) : warmup[i]!.decode;
    // Ratios within each round, then their median: fp32 time / this time (>1: faster).
    const preRatio = timedInRounds ? median(prefillMs[i]!.map((x, r) => base.prefill[r]! / x)) : warmup[0]!.prefill / pre;
    const decRatio = timedInRounds ? median(decodeMs[i]!.map((x, r) => base.decode[r]! / x)) : warmup[0]!.decode / dec;
    const agree = argmaxes[i]!.filter((t, k) => t === argmaxes[0]![k]).length / argmaxes[0]!.length;
    return {
      variant: v.name,
      quantize: v.quantize ?? null,
      // false: over SLOW_FACTOR x fp32's decode step in the warm-up round, so timed there only (against fp32's warm-up).
      timedInRounds,
      fusedGraphBytes: bytes[i],
      prefillMs: r3(pre),
      prefillTokPerS: Math.round((PROMPT / pre) * 1000),
      decodeMsPerStep: r3(dec),
      decodeTokPerS: Math.round(1000 / dec),
      prefillSpeedupVsFp32: r3(preRatio),
      decodeSpeedupVsFp32: r3(decRatio),
      // Random weights: whether the argmax survives quantization says nothing about text quality.
      top1AgreementRandomWeights: r3(agree),
      weightBytesPerDecodeStep: bytes[i],
      effectiveWeightGBps: r3(bytes[i]! / (dec / 1000) / 1e9),
    };
  });
  return { model: 'llama-85m', slowFactor: SLOW_FACTOR, parameters: parameterCount(config), promptTokens: PROMPT, decodeSteps: DECODE, rounds: ROUNDS, threads: THREADS, capacity: cap, rows };
}

function git(a: string[]): string {
  try {
    return execFileSync('git', a, { cwd: REPO, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

const date = new Date().toISOString().slice(0, 10);
const result: Record<string, unknown> = {
  date,
  commit: git(['rev-parse', 'HEAD']),
  dirty: git(['status', '--porcelain', '--untracked-files=no']) !== '',
  machine: { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.availableParallelism(), memoryGb: Math.round(os.totalmem() / 1e9) },
  onnxruntimeNode: JSON.parse(fs.readFileSync(path.join(REPO, 'node_modules/onnxruntime-node/package.json'), 'utf8')).version,
  quantizeDefaults: QUANTIZE_DEFAULTS,
};
if (!args['skip-quality']) {
  result.quality = await quality();
  const q = result.quality as { metrics: Array<Record<string, unknown>>; greedy: Record<string, Record<string, string>> };
  console.table(q.metrics.map((m) => ({ variant: m.variant, bytes: m.fusedGraphBytes, positions: m.positions, top1: r3(m.top1Agreement as number), kl: (m.meanKl as number).toExponential(2), ppl: r3(m.perplexity as number) })));
  for (const [p, outs] of Object.entries(q.greedy)) {
    console.log(`\n## ${p}`);
    for (const [n, t] of Object.entries(outs)) console.log(`${n}: ${t}`);
  }
}
if (!args['skip-speed']) {
  result.speed = await speed();
  console.table((result.speed as { rows: Array<Record<string, unknown>> }).rows.map(({ quantize: _q, ...r }) => r));
}
const out = path.join(REPO, 'bench/results', `${date}-quantize-quality.json`);
// A part skipped in this run keeps its figures from an earlier run of the same day (with that run's commit).
if (fs.existsSync(out) && (args['skip-quality'] || args['skip-speed'])) {
  const earlier = JSON.parse(fs.readFileSync(out, 'utf8')) as Record<string, unknown>;
  for (const part of ['quality', 'speed'] as const) {
    if (result[part] === undefined && earlier[part] !== undefined) result[part] = { ...(earlier[part] as object), fromRun: { commit: earlier.commit, dirty: earlier.dirty } };
  }
}
fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
console.log(`wrote ${path.relative(REPO, out)}`);
