/**
 * `npm run bench`: the server under closed-loop HTTP streaming load, against
 * two baselines measured in the same run (`raw`: the ONNX Runtime session in
 * a bare loop; `naive`: one transformers.js generate() at a time behind
 * HTTP). See README.md, "Benchmark", for the flags.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AutoTokenizer, env as hfEnv } from '@huggingface/transformers';
import { runLoad, type LoadResult, type SamplingProfile } from './lib/client.js';
import { runCommand, sleep, startServer, type ServerHandle } from './lib/proc.js';
import { IMPORT_FORMAT_VERSION } from '../src/engine/model-dir.js';
import { makePrompts, PROMPT_MAX_TOKENS, PROMPT_MIN_TOKENS, type Prompt } from './lib/prompts.js';
import { round, summarize } from './lib/stats.js';

const REPO = path.resolve(import.meta.dirname, '..');
const MODELS = ['stories260K', 'distil', 'llama-85m'] as const;
type BaseModel = (typeof MODELS)[number];
/** Weight formats of the random-weight Llama presets (make-model --quantize); fp32 is the plain build. */
const VARIANTS = ['fp32', 'int8', 'int4'] as const;
type Variant = (typeof VARIANTS)[number];
/** A model and its weight format, named `llama-85m` (fp32) or `llama-85m-int8`. */
type ModelName = string;
const MODES = ['server', 'raw', 'naive'] as const;
type Mode = (typeof MODES)[number];
const API_KEY = 'bench-key';

const USAGE = `npm run bench -- [options]
  --model stories260K|distil|llama-85m|all   models to run (default all)
  --variants fp32,int8,int4        weight formats of the random-weight presets (distil, llama-85m): each
                                   is built once with make-model --quantize and benchmarked as its own
                                   model, e.g. llama-85m-int8 (default fp32; stories260K is always fp32)
  --modes server,raw,naive         modes to run (default all three)
  --concurrency 1,4,16             closed-loop client counts (default 1,4,16)
  --duration S                     seconds per run (default 20)
  --requests N                     instead of a duration: N requests per run
  --warmup N                       warm-up requests before each run (default: the concurrency, at least 2)
  --max-new-tokens N               new tokens per request (default 120)
  --temperature T                  sampling temperature (default 0.8)
  --prompts N                      distinct prompts, 150-250 tokens each (default 64)
  --threads N                      ONNX Runtime threads for the raw baseline (default: cores)
  --request-timeout S              per-request limit (default 600)
  --soak S                         instead of the matrix: concurrency 16 against the server for S seconds, RSS every second
  --soak-concurrency N             clients for --soak (default 16)
  --cache-dir DIR                  models built or imported for the benchmark (default .model-cache/bench)
  --out-dir DIR                    where results JSON goes (default bench/results)
  --no-save                        print only, write no results file`;

function fail(msg: string): never {
  process.stderr.write(`error: ${msg}\nusage: ${USAGE}\n`);
  process.exit(2);
}

function parseCli() {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        model: { type: 'string' },
        variants: { type: 'string' },
        modes: { type: 'string' },
        concurrency: { type: 'string' },
        duration: { type: 'string' },
        requests: { type: 'string' },
        warmup: { type: 'string' },
        'max-new-tokens': { type: 'string' },
        temperature: { type: 'string' },
        prompts: { type: 'string' },
        threads: { type: 'string' },
        'request-timeout': { type: 'string' },
        soak: { type: 'string' },
        'soak-concurrency': { type: 'string' },
        'cache-dir': { type: 'string' },
        'out-dir': { type: 'string' },
        'no-save': { type: 'boolean' },
        help: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values['help']) {
    process.stdout.write(`usage: ${USAGE}\n`);
    process.exit(0);
  }
  const str = (k: string) => values[k] as string | undefined;
  const posInt = (k: string, def: number | undefined, max = 1_000_000): number | undefined => {
    const v = str(k);
    if (v === undefined) return def;
    if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) fail(`--${k} must be an integer 1..${max}, got "${v}"`);
    return Number(v);
  };
  const posNum = (k: string, def: number): number => {
    const v = str(k);
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) fail(`--${k} must be a positive number, got "${v}"`);
    return n;
  };
  const modelArg = str('model') ?? 'all';
  const bases: BaseModel[] =
    modelArg === 'all' ? [...MODELS] : (modelArg.split(',').map((m) => m.trim()) as BaseModel[]);
  for (const m of bases) if (!MODELS.includes(m)) fail(`unknown model "${m}" (${MODELS.join(', ')} or all)`);
  const variants = (str('variants') ?? 'fp32').split(',').map((v) => v.trim()) as Variant[];
  for (const v of variants) if (!VARIANTS.includes(v)) fail(`unknown variant "${v}" (${VARIANTS.join(', ')})`);
  const models: ModelSetupName[] = bases.flatMap((base): ModelSetupName[] =>
    base === 'stories260K' ? [{ base, variant: 'fp32' }] : variants.map((variant) => ({ base, variant })),
  );
  const modesArg = str('modes') ?? MODES.join(',');
  const modes = modesArg.split(',').map((m) => m.trim()) as Mode[];
  for (const m of modes) if (!MODES.includes(m)) fail(`unknown mode "${m}" (server, raw, naive)`);
  const concurrency = (str('concurrency') ?? '1,4,16').split(',').map((c) => {
    if (!/^\d+$/.test(c.trim()) || Number(c) < 1 || Number(c) > 256) fail(`--concurrency takes integers 1..256, got "${c}"`);
    return Number(c);
  });
  const temperature = str('temperature') === undefined ? 0.8 : Number(str('temperature'));
  if (!Number.isFinite(temperature) || temperature < 0 || temperature > 2) fail('--temperature must be 0..2');
  const requests = posInt('requests', undefined);
  return {
    models,
    modes: MODES.filter((m) => modes.includes(m)),
    concurrency: [...new Set(concurrency)],
    durationS: requests === undefined ? posNum('duration', 20) : undefined,
    requests,
    warmup: str('warmup') === '0' ? 0 : posInt('warmup', undefined),
    maxNewTokens: posInt('max-new-tokens', 120, 1024)!,
    temperature,
    promptCount: posInt('prompts', 64, 10_000)!,
    threads: posInt('threads', Math.max(1, os.availableParallelism()), 256)!,
    requestTimeoutMs: posNum('request-timeout', 600) * 1000,
    soakS: str('soak') === undefined ? undefined : posNum('soak', 300),
    soakConcurrency: posInt('soak-concurrency', 16, 256)!,
    cacheDir: path.resolve(REPO, str('cache-dir') ?? '.model-cache/bench'),
    outDir: path.resolve(REPO, str('out-dir') ?? 'bench/results'),
    save: !values['no-save'],
  };
}

type Options = ReturnType<typeof parseCli>;

interface ModelSetupName {
  base: BaseModel;
  variant: Variant;
}

const modelName = (m: ModelSetupName): ModelName => (m.variant === 'fp32' ? m.base : `${m.base}-${m.variant}`);

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ---------------------------------------------------------------- models

const STORIES_BIN = path.resolve(REPO, '../shared/models/stories260K/stories260K.bin');

/** A complete model directory written by this version of the builder (older ones are rebuilt). */
function isModelDir(dir: string): boolean {
  if (!['config.json', 'tokenizer.json', 'onnx/model.onnx'].every((f) => fs.existsSync(path.join(dir, f)))) return false;
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { llama2c?: { formatVersion?: number } };
  return config.llama2c?.formatVersion === IMPORT_FORMAT_VERSION;
}

/** Builds a model directory once with a repository script (into a temporary folder, renamed when complete). */
async function buildOnce(dir: string, script: string, args: string[], timeoutMs: number): Promise<{ built: boolean; seconds: number }> {
  if (isModelDir(dir)) return { built: false, seconds: 0 };
  const tmp = `${dir}.partial`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const started = performance.now();
  log(`building ${dir} (${script} ${args.join(' ')})`);
  await runCommand(process.execPath, ['--import', 'tsx', script, ...args, '--out', tmp], { cwd: REPO, timeoutMs });
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  return { built: true, seconds: (performance.now() - started) / 1000 };
}

interface ModelSetup {
  name: ModelName;
  base: BaseModel;
  variant: Variant;
  /** The transformers.js model directory (raw and naive read it). */
  dir: string;
  /** What the real server is given as MODEL_PATH. */
  serverModelPath: string;
  build: { built: boolean; seconds: number; onnx_mb: number };
  /** Size of the graph the server runs (onnx/model_fused.onnx when there is one: the quantized one for int8/int4), MB. */
  model_mb: number;
}

async function prepareModel(setup: ModelSetupName, o: Options): Promise<ModelSetup> {
  const name = modelName(setup);
  const dir = path.join(o.cacheDir, name);
  let build: { built: boolean; seconds: number };
  let serverModelPath: string;
  if (setup.base === 'stories260K') {
    if (!fs.existsSync(STORIES_BIN)) throw new Error(`${STORIES_BIN} not found (the stories260K checkpoint beside this repository)`);
    build = await buildOnce(dir, 'scripts/import-llama2c.ts', ['--checkpoint', STORIES_BIN], 10 * 60_000);
    // The server imports the checkpoint itself, as a user's server would.
    serverModelPath = STORIES_BIN;
  } else {
    const quantize = setup.variant === 'fp32' ? [] : ['--quantize', setup.variant];
    build = await buildOnce(dir, 'scripts/make-model.ts', ['--preset', setup.base, '--seed', '1', ...quantize], 60 * 60_000);
    serverModelPath = dir;
  }
  const onnxMb = fs.statSync(path.join(dir, 'onnx', 'model.onnx')).size / 1e6;
  const fused = path.join(dir, 'onnx', 'model_fused.onnx');
  const modelMb = fs.existsSync(fused) ? fs.statSync(fused).size / 1e6 : onnxMb;
  if (build.built) log(`built ${name} in ${build.seconds.toFixed(1)} s (onnx/model.onnx ${onnxMb.toFixed(1)} MB, served graph ${modelMb.toFixed(1)} MB)`);
  return {
    name, base: setup.base, variant: setup.variant, dir, serverModelPath,
    build: { ...build, seconds: round(build.seconds), onnx_mb: round(onnxMb, 1) }, model_mb: round(modelMb, 1),
  };
}

async function loadPrompts(dir: string, count: number): Promise<Prompt[]> {
  hfEnv.allowLocalModels = true;
  hfEnv.allowRemoteModels = false;
  const tok = await AutoTokenizer.from_pretrained(dir, { local_files_only: true });
  return makePrompts(count, (t) => tok.encode(t));
}

// ---------------------------------------------------------------- servers

function serverEnv(extra: Record<string, string>): Record<string, string | undefined> {
  const e: Record<string, string | undefined> = { ...process.env };
  // Our key and model must win over anything in the caller's environment.
  delete e['API_KEYS'];
  delete e['TOKENIZER_PATH'];
  delete e['MODEL_DIR'];
  // One key sending a load test's traffic: no rate limit, and no response cache (a repeated
  // seeded request would skip the engine), unless the caller's environment asks for them.
  return { RATE_LIMIT_PER_MINUTE: '0', CHAT_CACHE_TTL_SECONDS: '0', ...e, PORT: '0', HOST: '127.0.0.1', API_KEY, ...extra };
}

async function startRealServer(m: ModelSetup, o: Options): Promise<ServerHandle> {
  return startServer({
    name: 'server',
    cwd: REPO,
    entry: 'src/main.ts',
    env: serverEnv({ MODEL_PATH: m.serverModelPath, MODEL_CACHE_DIR: path.join(o.cacheDir, 'server-cache') }),
    timeoutMs: 10 * 60_000,
  });
}

async function startNaiveServer(m: ModelSetup): Promise<ServerHandle> {
  return startServer({
    name: 'naive-server',
    cwd: REPO,
    entry: 'bench/naive-server.ts',
    env: serverEnv({ MODEL_DIR: m.dir }),
    timeoutMs: 10 * 60_000,
  });
}

/** The directory the real server says it loaded (`model ready` log line, model.source). */
function servedSource(s: ServerHandle): string | undefined {
  for (const l of s.jsonLogs) {
    if (l['msg'] === 'model ready') {
      const model = l['model'] as { source?: unknown } | undefined;
      if (typeof model?.source === 'string') return model.source;
    }
  }
  return undefined;
}

export interface HttpRun extends LoadResult {
  model: ModelName;
  base_model: BaseModel;
  variant: Variant;
  mode: 'server' | 'naive';
  warmup_requests: number;
  warmup_errors: number;
  /** Peak resident memory of the server process during the run (sampled), and its VmHWM. */
  peak_rss_mb: number;
  vm_hwm_mb: number;
  /** Size of the graph the server runs, MB. */
  model_mb: number;
  /** Prompt tokens a second of one request's prefill: mean prompt tokens / TTFT p50 (TTFT includes queueing at c>1). */
  prefill_tok_s: number;
  /** Tokens a second of one stream while it decodes: 1000 / mean inter-token latency (the aggregate is about c times it). */
  decode_tok_s: number;
}

let seedBase = 1;

async function measureHttp(mode: 'server' | 'naive', m: ModelSetup, s: ServerHandle, prompts: Prompt[], o: Options): Promise<HttpRun[]> {
  const runs: HttpRun[] = [];
  const profile: SamplingProfile = { maxNewTokens: o.maxNewTokens, temperature: o.temperature, topP: 0.95, topK: 0 };
  for (const c of o.concurrency) {
    const warm = o.warmup ?? Math.max(2, c);
    let warmErrors = 0;
    if (warm > 0) {
      const w = await runLoad({
        port: s.port, apiKey: API_KEY, concurrency: c, requests: warm, prompts, profile,
        seedBase: (seedBase += 1_000_000), requestTimeoutMs: o.requestTimeoutMs,
      });
      warmErrors = w.requests_failed;
    }
    s.rss.resetPeak();
    log(`${m.name} ${mode} c=${c}: ${o.requests === undefined ? `${o.durationS} s` : `${o.requests} requests`} (after ${warm} warm-up requests)`);
    const r = await runLoad({
      port: s.port, apiKey: API_KEY, concurrency: c, durationS: o.durationS, requests: o.requests, prompts, profile,
      seedBase: (seedBase += 1_000_000), requestTimeoutMs: o.requestTimeoutMs,
    });
    s.rss.sample();
    const run: HttpRun = {
      model: m.name, base_model: m.base, variant: m.variant, mode, ...r, warmup_requests: warm, warmup_errors: warmErrors,
      peak_rss_mb: round(s.rss.peakKb / 1024, 1), vm_hwm_mb: round(s.rss.hwmKb / 1024, 1), model_mb: m.model_mb,
      prefill_tok_s: round(r.prompt_tokens.mean / (r.ttft_ms.p50 / 1000), 1),
      decode_tok_s: round(1000 / r.itl_ms.mean, 1),
    };
    log(`  ${run.tok_s} tok/s, ${run.req_s} req/s, ${run.requests_ok} ok, ${run.requests_failed} failed; prefill ${run.prefill_tok_s} tok/s, decode ${run.decode_tok_s} tok/s a stream`);
    runs.push(run);
  }
  return runs;
}

// ---------------------------------------------------------------- raw

export interface RawRun {
  model: ModelName;
  base_model: BaseModel;
  variant: Variant;
  /** The served graph's size (raw itself runs onnx/model.onnx, the plain fp32 graph). */
  model_mb: number;
  mode: 'raw';
  concurrency: 1;
  sequences: number;
  threads: number;
  wall_s: number;
  new_tokens_per_sequence: number;
  /** New tokens over the whole wall time (prefill included): comparable to a server stream. */
  tok_s: number;
  req_s: number;
  decode_tok_s: number;
  prefill_tok_s: number;
  prefill_ms: { p50: number; p95: number; mean: number };
  sequence_ms: { p50: number; p95: number; mean: number };
  decode_step_ms: { mean: number; p95: number };
  prompt_tokens: { min: number; max: number; mean: number };
  peak_rss_mb: number;
}

interface RawChildResult {
  sequences: Array<{ promptTokens: number; prefillMs: number; stepMs: number[]; totalMs: number }>;
  wall_ms: number;
  threads: number;
  peak_rss_mb: number;
}

async function rawRun(m: ModelSetup, prompts: Prompt[], o: Options): Promise<RawRun> {
  log(`${m.name} raw: ${o.requests === undefined ? `${o.durationS} s` : `${o.requests} sequences`} of ${o.maxNewTokens} greedy tokens, ${o.threads} threads`);
  const job = {
    dir: m.dir,
    prompts: prompts.map((p) => p.ids),
    newTokens: o.maxNewTokens,
    durationS: o.durationS,
    sequences: o.requests,
    warmup: o.warmup === 0 ? 0 : 1,
    threads: o.threads,
  };
  const timeoutMs = ((o.durationS ?? 0) + 600) * 1000 + (o.requests ?? 0) * 60_000;
  const { stdout } = await runCommand(process.execPath, ['--import', 'tsx', 'bench/raw.ts'], {
    cwd: REPO, timeoutMs, input: JSON.stringify(job), capture: true,
  });
  const lastLine = stdout.trim().split('\n').pop() ?? '';
  const res = JSON.parse(lastLine) as RawChildResult;
  const seqs = res.sequences;
  const steps = seqs.flatMap((s) => s.stepMs);
  const stepSum = steps.reduce((a, b) => a + b, 0);
  const prefillTokens = seqs.reduce((a, s) => a + s.promptTokens, 0);
  const prefillMs = seqs.reduce((a, s) => a + s.prefillMs, 0);
  const pre = summarize(seqs.map((s) => s.prefillMs));
  const tot = summarize(seqs.map((s) => s.totalMs));
  const st = summarize(steps);
  const pt = summarize(seqs.map((s) => s.promptTokens));
  const wallS = res.wall_ms / 1000;
  const run: RawRun = {
    model: m.name,
    base_model: m.base,
    variant: m.variant,
    model_mb: m.model_mb,
    mode: 'raw',
    concurrency: 1,
    sequences: seqs.length,
    threads: res.threads,
    wall_s: round(wallS, 3),
    new_tokens_per_sequence: o.maxNewTokens,
    tok_s: round((seqs.length * o.maxNewTokens) / wallS, 1),
    req_s: round(seqs.length / wallS, 3),
    decode_tok_s: round(steps.length / (stepSum / 1000), 1),
    prefill_tok_s: round(prefillTokens / (prefillMs / 1000), 1),
    prefill_ms: { p50: round(pre.p50), p95: round(pre.p95), mean: round(pre.mean) },
    sequence_ms: { p50: round(tot.p50), p95: round(tot.p95), mean: round(tot.mean) },
    decode_step_ms: { mean: round(st.mean, 3), p95: round(st.p95, 3) },
    prompt_tokens: { min: pt.min, max: pt.max, mean: round(pt.mean, 1) },
    peak_rss_mb: round(res.peak_rss_mb, 1),
  };
  log(`  ${run.tok_s} tok/s end to end, decode ${run.decode_tok_s} tok/s, prefill ${run.prefill_tok_s} tok/s`);
  return run;
}

// ---------------------------------------------------------------- report

const fmt = (v: number | undefined, d = 0) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(d));

function table(rows: Array<HttpRun | RawRun>): string {
  const head = ['model', 'mode', 'conc', 'tok/s', 'req/s', 'tok/req', 'TTFT p50', 'TTFT p95', 'e2e p50', 'e2e p95', 'ITL mean', 'ITL p95', 'prefill tok/s', 'decode tok/s', 'errors', 'peak RSS MB', 'model MB'];
  const body = rows.map((r) => {
    if (r.mode === 'raw') {
      return [r.model, 'raw', '1', fmt(r.tok_s), fmt(r.req_s, 2), fmt(r.new_tokens_per_sequence), fmt(r.prefill_ms.p50, 1), fmt(r.prefill_ms.p95, 1),
        fmt(r.sequence_ms.p50), fmt(r.sequence_ms.p95), fmt(r.decode_step_ms.mean, 2), fmt(r.decode_step_ms.p95, 2), fmt(r.prefill_tok_s), fmt(r.decode_tok_s),
        '0', fmt(r.peak_rss_mb), fmt(r.model_mb, 1)];
    }
    const errs = Object.entries(r.errors).map(([k, v]) => `${k}=${v}`).join(' ');
    return [r.model, r.mode, String(r.concurrency), fmt(r.tok_s), fmt(r.req_s, 2), fmt(r.completion_tokens_per_request.mean, 1), fmt(r.ttft_ms.p50, 1), fmt(r.ttft_ms.p95, 1),
      fmt(r.e2e_ms.p50), fmt(r.e2e_ms.p95), fmt(r.itl_ms.mean, 2), fmt(r.itl_ms.p95, 2), fmt(r.prefill_tok_s), fmt(r.decode_tok_s),
      errs || '0', fmt(r.peak_rss_mb), fmt(r.model_mb, 1)];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ') + ' |';
  return [line(head), '|' + widths.map((w, i) => (i < 3 ? '-'.repeat(w + 1) + '-' : '-'.repeat(w + 1) + ':')).join('|') + '|', ...body.map(line)].join('\n');
}

interface Ratio {
  name: string;
  value: number;
}

function ratios(httpRuns: HttpRun[], raw: RawRun | undefined): Ratio[] {
  const out: Ratio[] = [];
  const server = (c: number) => httpRuns.find((r) => r.mode === 'server' && r.concurrency === c);
  const naive = (c: number) => httpRuns.find((r) => r.mode === 'naive' && r.concurrency === c);
  const cs = [...new Set(httpRuns.map((r) => r.concurrency))].sort((a, b) => a - b);
  for (const c of cs) {
    const s = server(c);
    const n = naive(c);
    if (s && n && n.tok_s > 0) out.push({ name: `server / naive tok/s at c=${c}`, value: s.tok_s / n.tok_s });
  }
  const s1 = server(1);
  for (const c of cs) {
    const s = server(c);
    if (c !== 1 && s && s1 && s1.tok_s > 0) out.push({ name: `server c=${c} / server c=1 tok/s`, value: s.tok_s / s1.tok_s });
  }
  const n1 = naive(1);
  for (const c of cs) {
    const n = naive(c);
    if (c !== 1 && n && n1 && n1.tok_s > 0) out.push({ name: `naive c=${c} / naive c=1 tok/s`, value: n.tok_s / n1.tok_s });
  }
  if (raw && s1) {
    out.push({ name: 'server c=1 / raw tok/s (end to end, prefill included)', value: s1.tok_s / raw.tok_s });
    out.push({ name: 'server c=1 / raw decode tok/s', value: s1.tok_s / raw.decode_tok_s });
  }
  const s16 = server(16);
  if (raw && s16) out.push({ name: 'server c=16 tok/s / raw prefill tok/s', value: s16.tok_s / raw.prefill_tok_s });
  return out.map((r) => ({ ...r, value: round(r.value, 3) }));
}

/** Each quantized format against fp32 of the same model, server runs: tok/s at each concurrency, decode and prefill tok/s at c=1. */
function variantRatios(rows: Array<HttpRun | RawRun>): Ratio[] {
  const out: Ratio[] = [];
  const server = rows.filter((r): r is HttpRun => r.mode === 'server');
  for (const r of server) {
    if (r.variant === 'fp32') continue;
    const base = server.find((b) => b.base_model === r.base_model && b.variant === 'fp32' && b.concurrency === r.concurrency);
    if (!base || base.tok_s <= 0) continue;
    out.push({ name: `${r.model} / ${base.model} tok/s at c=${r.concurrency}`, value: r.tok_s / base.tok_s });
    if (r.concurrency === 1) {
      out.push({ name: `${r.model} / ${base.model} decode tok/s at c=1`, value: r.decode_tok_s / base.decode_tok_s });
      out.push({ name: `${r.model} / ${base.model} prefill tok/s at c=1`, value: r.prefill_tok_s / base.prefill_tok_s });
    }
  }
  return out.map((r) => ({ ...r, value: round(r.value, 3) }));
}

interface TargetCheck {
  target: string;
  measured: string;
  met: boolean;
}

/** Issue 11's targets for the quantized formats, against fp32 of the same model in the same run (informational). */
function variantTargets(rows: Array<HttpRun | RawRun>): TargetCheck[] {
  const out: TargetCheck[] = [];
  const server = rows.filter((r): r is HttpRun => r.mode === 'server');
  const find = (base: BaseModel, v: Variant, c: number) => server.find((r) => r.base_model === base && r.variant === v && r.concurrency === c);
  for (const base of new Set(server.map((r) => r.base_model))) {
    const f1 = find(base, 'fp32', 1);
    const f16 = find(base, 'fp32', 16);
    for (const [v, factor] of [['int8', 2], ['int4', 2.5]] as const) {
      const q1 = find(base, v, 1);
      const q16 = find(base, v, 16);
      if (f1 && q1) {
        out.push({ target: `${base} ${v} c=1 >= ${factor}x fp32 c=1`, measured: `${round(q1.tok_s / f1.tok_s, 2)}x`, met: q1.tok_s >= factor * f1.tok_s });
        out.push({
          target: `${base} ${v} prefill not slower than fp32 (c=1)`,
          measured: `${q1.prefill_tok_s} vs ${f1.prefill_tok_s} tok/s`,
          met: q1.prefill_tok_s >= f1.prefill_tok_s,
        });
      }
      if (f16 && q16) out.push({ target: `${base} ${v} c=16 not below fp32 c=16`, measured: `${q16.tok_s} vs ${f16.tok_s} tok/s`, met: q16.tok_s >= f16.tok_s });
    }
  }
  return out;
}

/** The figures of issue 3 item 7 that this run measured (informational; nothing here fails the run). */
function targets(model: BaseModel, httpRuns: HttpRun[], raw: RawRun | undefined): TargetCheck[] {
  const out: TargetCheck[] = [];
  const server = (c: number) => httpRuns.find((r) => r.mode === 'server' && r.concurrency === c);
  const naive = (c: number) => httpRuns.find((r) => r.mode === 'naive' && r.concurrency === c);
  const s1 = server(1);
  const s16 = server(16);
  const s20 = server(20);
  const n16 = naive(16);
  if (model === 'stories260K') {
    if (s1) out.push({ target: 'one stream >= 2,400 tok/s', measured: `${s1.tok_s} tok/s`, met: s1.tok_s >= 2400 });
    if (s16) {
      out.push({
        target: 'c=16 >= 12,000 tok/s, no errors',
        measured: `${s16.tok_s} tok/s, ${s16.requests_failed} errors`,
        met: s16.tok_s >= 12000 && s16.requests_failed === 0,
      });
    }
    if (s20) {
      out.push({
        target: 'c=20: e2e p95 <= 2,500 ms and < 1,170 ms (llama.cpp), >= 8 req/s',
        measured: `p95 ${s20.e2e_ms.p95} ms, ${s20.req_s} req/s`,
        met: s20.e2e_ms.p95 <= 2500 && s20.e2e_ms.p95 < 1170 && s20.req_s >= 8,
      });
    }
  } else if (model === 'distil') {
    if (s1 && s16) out.push({ target: 'c=16 >= 4x single stream', measured: `${round(s16.tok_s / s1.tok_s, 2)}x`, met: s16.tok_s >= 4 * s1.tok_s });
    if (s16 && raw) {
      out.push({
        target: 'batch-16 decode >= half the prefill rate',
        measured: `${s16.tok_s} of ${raw.prefill_tok_s} tok/s (${round(s16.tok_s / raw.prefill_tok_s, 3)})`,
        met: s16.tok_s >= raw.prefill_tok_s / 2,
      });
    }
  }
  if (s16 && n16) out.push({ target: 'c=16 >= 6x naive', measured: `${round(s16.tok_s / n16.tok_s, 2)}x`, met: s16.tok_s >= 6 * n16.tok_s });
  return out;
}

let machineAtStart: ReturnType<typeof readMachine> | undefined;

/** The machine, with its load average when the benchmark started (other work on shared machines shows there). */
function machine() {
  machineAtStart ??= readMachine();
  return machineAtStart;
}

function readMachine() {
  const cpus = os.cpus();
  return {
    cpu_model: cpus[0]?.model ?? 'unknown',
    cpus: cpus.length,
    available_parallelism: os.availableParallelism(),
    total_mem_gb: round(os.totalmem() / 2 ** 30, 1),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    load_avg_at_start: os.loadavg().map((v) => round(v, 2)),
  };
}

function gitInfo() {
  const git = (args: string[]) => execFileSync('git', args, { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    return { commit: git(['rev-parse', 'HEAD']), dirty: git(['status', '--porcelain', '--untracked-files=no']) !== '' };
  } catch {
    return { commit: 'unknown', dirty: true };
  }
}

function writeResults(o: Options, file: string, data: unknown): void {
  if (!o.save) return;
  fs.mkdirSync(o.outDir, { recursive: true });
  const target = path.join(o.outDir, file);
  const tmp = `${target}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(data, null, 2) + '\n');
  fs.renameSync(tmp, target);
  log(`wrote ${path.relative(REPO, target)}`);
}

function config(o: Options) {
  return {
    modes: o.modes,
    concurrency: o.concurrency,
    duration_s: o.durationS ?? null,
    requests: o.requests ?? null,
    warmup: o.warmup ?? 'concurrency (at least 2)',
    max_new_tokens: o.maxNewTokens,
    temperature: o.temperature,
    top_p: 0.95,
    top_k: 0,
    stream: true,
    prompts: o.promptCount,
    prompt_tokens_range: [PROMPT_MIN_TOKENS, PROMPT_MAX_TOKENS],
    raw_threads: o.threads,
    request_timeout_s: o.requestTimeoutMs / 1000,
    server_env: {
      ORT_INTRA_OP_THREADS: process.env.ORT_INTRA_OP_THREADS ?? null,
      ORT_SPINNING: process.env.ORT_SPINNING ?? null,
      MAX_BATCH_SIZE: process.env.MAX_BATCH_SIZE ?? null,
      MAX_WAITING_REQUESTS: process.env.MAX_WAITING_REQUESTS ?? null,
      LOG_LEVEL: process.env.LOG_LEVEL ?? null,
    },
  };
}

// ---------------------------------------------------------------- main flows

async function benchModel(setup: ModelSetupName, o: Options, date: string): Promise<Array<HttpRun | RawRun>> {
  const m = await prepareModel(setup, o);
  const name = m.name;
  const prompts = await loadPrompts(m.dir, o.promptCount);
  const lens = prompts.map((p) => p.tokens);
  log(`${name}: ${prompts.length} prompts of ${Math.min(...lens)}..${Math.max(...lens)} tokens (bench tokenizer)`);
  const httpRuns: HttpRun[] = [];
  let raw: RawRun | undefined;
  let servedDir: string | undefined;
  for (const mode of o.modes) {
    if (mode === 'raw') {
      raw = await rawRun(m, prompts, o);
      continue;
    }
    const s = mode === 'server' ? await startRealServer(m, o) : await startNaiveServer(m);
    try {
      if (mode === 'server') servedDir = servedSource(s);
      httpRuns.push(...(await measureHttp(mode, m, s, prompts, o)));
    } finally {
      await s.stop();
    }
  }
  const rows: Array<HttpRun | RawRun> = [...httpRuns.filter((r) => r.mode === 'server'), ...(raw ? [raw] : []), ...httpRuns.filter((r) => r.mode === 'naive')];
  const rs = ratios(httpRuns, raw);
  const ts = targets(m.base, httpRuns, raw);
  process.stdout.write(`\n${name}\n${table(rows)}\n`);
  const seen = httpRuns.filter((r) => r.requests_ok > 0);
  if (seen.length) {
    const mins = seen.map((r) => r.prompt_tokens.min);
    const maxs = seen.map((r) => r.prompt_tokens.max);
    const mismatch = seen.reduce((a, r) => a + r.prompt_token_mismatches, 0);
    process.stdout.write(`prompt_tokens reported by the servers: ${Math.min(...mins)}..${Math.max(...maxs)}` +
      `${mismatch ? ` (${mismatch} responses disagree with the bench tokenizer)` : ''}\n`);
  }
  if (raw) process.stdout.write(`raw: decode ${raw.decode_tok_s} tok/s, prefill ${raw.prefill_tok_s} tok/s, ${raw.threads} ORT threads, ${raw.sequences} sequences\n`);
  if (rs.length) process.stdout.write(`ratios:\n${rs.map((r) => `  ${r.name}: ${r.value}`).join('\n')}\n`);
  if (ts.length) process.stdout.write(`targets (issue 3):\n${ts.map((t) => `  [${t.met ? 'met' : 'MISSED'}] ${t.target}: ${t.measured}`).join('\n')}\n`);
  writeResults(o, `${date}-${name}.json`, {
    date,
    model: name,
    model_dir: path.relative(REPO, m.dir),
    server_model_path: path.relative(REPO, m.serverModelPath),
    server_model_source: servedDir ?? null,
    model_build: m.build,
    machine: machine(),
    git: gitInfo(),
    config: config(o),
    prompts: { count: prompts.length, tokens_min: Math.min(...lens), tokens_max: Math.max(...lens) },
    runs: rows,
    ratios: rs,
    targets: ts,
  });
  return rows;
}

async function soakModel(setup: ModelSetupName, o: Options, date: string): Promise<void> {
  const soakS = o.soakS!;
  const c = o.soakConcurrency;
  const m = await prepareModel(setup, o);
  const name = m.name;
  const prompts = await loadPrompts(m.dir, o.promptCount);
  const s = await startRealServer(m, o);
  const profile: SamplingProfile = { maxNewTokens: o.maxNewTokens, temperature: o.temperature, topP: 0.95, topK: 0 };
  try {
    const warm = o.warmup ?? 2 * c;
    log(`${name} soak: ${warm} warm-up requests at c=${c}`);
    const w = await runLoad({ port: s.port, apiKey: API_KEY, concurrency: c, requests: warm, prompts, profile, seedBase: (seedBase += 1_000_000), requestTimeoutMs: o.requestTimeoutMs });
    await sleep(1000);
    const afterWarmKb = s.rss.sample();
    const samples: Array<{ t_s: number; rss_mb: number }> = [];
    log(`${name} soak: c=${c} for ${soakS} s; RSS after warm-up ${(afterWarmKb / 1024).toFixed(1)} MB`);
    s.rss.resetPeak();
    const r = await runLoad({
      port: s.port, apiKey: API_KEY, concurrency: c, durationS: soakS, prompts, profile,
      seedBase: (seedBase += 1_000_000), requestTimeoutMs: o.requestTimeoutMs,
      onSecond: (t) => {
        const kb = s.rss.sample();
        samples.push({ t_s: Math.round(t), rss_mb: round(kb / 1024, 1) });
        if (Math.round(t) % 30 === 0) log(`  t=${Math.round(t)} s rss ${(kb / 1024).toFixed(1)} MB`);
      },
    });
    const endLoadKb = samples.length ? samples[samples.length - 1]!.rss_mb * 1024 : s.rss.sample();
    await sleep(2000);
    const endIdleKb = s.rss.sample();
    const growthPct = (100 * (endIdleKb - afterWarmKb)) / afterWarmKb;
    const result = {
      date,
      model: name,
      mode: 'soak',
      concurrency: c,
      soak_s: soakS,
      warmup_requests: warm,
      warmup_errors: w.requests_failed,
      rss_after_warmup_mb: round(afterWarmKb / 1024, 1),
      rss_end_under_load_mb: round(endLoadKb / 1024, 1),
      rss_end_idle_mb: round(endIdleKb / 1024, 1),
      rss_peak_mb: round(s.rss.peakKb / 1024, 1),
      rss_growth_pct: round(growthPct, 2),
      within_10pct: Math.abs(growthPct) <= 10,
      load: r,
      rss_samples: samples,
      machine: machine(),
      git: gitInfo(),
      config: { ...config(o), concurrency: [c], duration_s: soakS },
    };
    process.stdout.write(
      `\n${name} soak, c=${c}, ${soakS} s: ${r.requests_ok} requests ok, ${r.requests_failed} errors ${JSON.stringify(r.errors)}, ${r.tok_s} tok/s\n` +
        `  RSS after warm-up ${result.rss_after_warmup_mb} MB, end under load ${result.rss_end_under_load_mb} MB, ` +
        `end idle ${result.rss_end_idle_mb} MB, peak ${result.rss_peak_mb} MB: ${result.rss_growth_pct}% ` +
        `(${result.within_10pct ? 'within' : 'NOT within'} 10%)\n`,
    );
    writeResults(o, `${date}-${name}-soak.json`, result);
  } finally {
    await s.stop();
  }
}

async function main(): Promise<void> {
  const o = parseCli();
  const date = new Date().toISOString().slice(0, 10);
  const m = machine();
  log(`${m.cpu_model} x${m.cpus}, node ${m.node}; models ${o.models.map(modelName).join(',')}`);
  const all: Array<HttpRun | RawRun> = [];
  for (const setup of o.models) {
    if (o.soakS !== undefined) await soakModel(setup, o, date);
    else all.push(...(await benchModel(setup, o, date)));
  }
  // Several models or weight formats: one table of them all, and the format ratios at one stream and at 16.
  if (o.models.length > 1 && all.length > 0) {
    process.stdout.write(`\nall models\n${table(all)}\n`);
    const vr = variantRatios(all);
    if (vr.length) process.stdout.write(`weight formats:\n${vr.map((r) => `  ${r.name}: ${r.value}`).join('\n')}\n`);
    const vt = variantTargets(all);
    if (vt.length) process.stdout.write(`targets (issue 11):\n${vt.map((t) => `  [${t.met ? 'met' : 'MISSED'}] ${t.target}: ${t.measured}`).join('\n')}\n`);
    writeResults(o, `${date}-formats.json`, { date, machine: machine(), git: gitInfo(), config: config(o), runs: all, ratios: vr, targets: vt });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
