/**
 * `npm run bench:llamacpp -- --llama-bin DIR`: llama.cpp side by side with
 * this server on the same weights, in one run on one machine (issue 11).
 *
 * Bring and build llama.cpp yourself, outside this repository (this bench
 * builds nothing and no script here builds it); DIR is the folder with its
 * binaries: llama-convert-llama2c-to-ggml, llama-quantize, llama-bench,
 * llama-server. Then:
 *  1. the `llama-85m` preset's random weights (the same `make-model` writes)
 *     go out as a llama2.c checkpoint and tokenizer (bench/llamacpp/export-llama2c.ts),
 *     are converted to GGUF f32 and quantized to Q8_0 and Q4_0;
 *  2. agreement: greedy continuations of the same prompt ids from llama-server
 *     and from our server, and llama.cpp's tokenization of the prompt texts;
 *  3. per round: llama-bench pp/tg for each GGUF type, then every server
 *     (ours per weight variant, llama-server per TYPE:SLOTS) under closed-loop
 *     streaming load at each concurrency, servers in an order rotated each
 *     round; ratios to our fp32 server are taken within a round.
 * Requests: the same prompt token ids to both (llama-server gets the ids, ours
 * the text our tokenizer turns into those ids; every response's prompt token
 * count is checked), the same sampling (temperature, top-p, no top-k/min-p,
 * ignore EOS), and by default the same logit bias banning ids 0..258 (unk,
 * BOS, EOS, the 256 byte tokens) so that every generated token is a whole
 * printable piece and both servers stream exactly one event per token (each
 * holds back incomplete UTF-8, which would merge events and skew the
 * inter-token latency).
 */
import { execFileSync } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AutoTokenizer, env as hfEnv } from '@huggingface/transformers';
import { IMPORT_FORMAT_VERSION } from '../src/engine/model-dir.js';
import { getPreset } from '../src/engine/presets.js';
import { buildSyntheticVocab } from '../src/engine/synthetic-vocab.js';
import { BOS_ID, referenceDecode } from '../src/engine/llama2c.js';
import { postJson, streamCompletion, type Outcome, type ServerKind } from './llamacpp/client.js';
import { exportLlama2cModel } from './llamacpp/export-llama2c.js';
import { RssMonitor, runCommand, sleep, spawnTracked, startServer, stopChild } from './lib/proc.js';
import { makePrompts, type Prompt } from './lib/prompts.js';
import { DoubleList, round, summarize } from './lib/stats.js';

const REPO = path.resolve(import.meta.dirname, '..');
const PRESET = 'llama-85m';
const API_KEY = 'bench-key';
const GGUF_TYPES = ['f32', 'q8_0', 'q4_0'] as const;
type GgufType = (typeof GGUF_TYPES)[number];
const OURS_VARIANTS = ['fp32', 'int8', 'int4'] as const;
type OursVariant = (typeof OURS_VARIANTS)[number];
/** unk, BOS, EOS and the 256 byte-fallback tokens of the llama2.c-style vocabulary. */
const BANNED_IDS = Array.from({ length: 259 }, (_, i) => i);

const USAGE = `npm run bench:llamacpp -- --llama-bin DIR [options]
  --llama-bin DIR          llama.cpp's built binaries (llama-server, llama-bench, llama-quantize,
                           llama-convert-llama2c-to-ggml); build llama.cpp yourself outside this repository
  --llama-commit SHA       llama.cpp's commit for the results (default: git rev-parse in DIR/../.., else unknown)
  --ours LIST              our server's weight variants, fp32,int8,int4 (default fp32; int8/int4 are
                           built with make-model --quantize)
  --types LIST             GGUF types for llama-bench, f32,q8_0,q4_0 (default all three)
  --servers LIST           llama-server configurations TYPE:SLOTS[:fa][:tN] (fa: flash attention; tN: N threads)
                           (default f32:1,q8_0:1,q4_0:1,f32:16,q8_0:16,q4_0:16)
  --concurrency LIST       closed-loop client counts (default 1,16)
  --duration S             seconds per measured run (default 30)
  --rounds N               rounds, servers in a rotated order each round (default 2)
  --threads N              llama.cpp threads (llama-bench -t, llama-server -t/-tb) (default: cores; ours uses
                           ORT_INTRA_OP_THREADS, default cores)
  --max-new-tokens N       (default 120)
  --temperature T          (default 0.8; top-p 0.95, no top-k, no min-p)
  --prompt-tokens N        prompt length, +-20 tokens, BOS included (default 300)
  --prompts N              distinct prompts (default 32)
  --bench-reps N           llama-bench repetitions (default 3)
  --bench-threads LIST     llama-bench thread counts (default: --threads)
  --bench-rounds N         run llama-bench in the first N rounds only (default: every round)
  --include-queued         also load a llama-server at a concurrency above its slots (it only queues; cut
                           queued requests then keep it busy after the window: the bench waits for it)
  --tag NAME               results go to <date>-llamacpp-85m-NAME.json (default: <date>-llamacpp-85m.json)
  --allow-all-tokens       do not ban ids 0..258 (events then merge where UTF-8 is held back)
  --skip-llama-bench / --skip-agreement / --skip-servers
  --seed N                 model seed (default 1)
  --cache-dir DIR          exported, converted and built models (default .model-cache/llamacpp)
  --out-dir DIR            results (default bench/results)
  --no-save                print only`;

function fail(msg: string): never {
  process.stderr.write(`error: ${msg}\nusage: ${USAGE}\n`);
  process.exit(2);
}

const log = (msg: string) => process.stderr.write(`[llamacpp ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

interface ServerSpec {
  type: GgufType;
  slots: number;
  flashAttn: boolean;
  /** llama.cpp threads for this server (default --threads). */
  threads?: number;
}

function parseCli() {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        'llama-bin': { type: 'string' },
        'llama-commit': { type: 'string' },
        ours: { type: 'string' },
        types: { type: 'string' },
        servers: { type: 'string' },
        concurrency: { type: 'string' },
        duration: { type: 'string' },
        rounds: { type: 'string' },
        threads: { type: 'string' },
        'max-new-tokens': { type: 'string' },
        temperature: { type: 'string' },
        'prompt-tokens': { type: 'string' },
        prompts: { type: 'string' },
        'bench-reps': { type: 'string' },
        'bench-threads': { type: 'string' },
        'bench-rounds': { type: 'string' },
        'include-queued': { type: 'boolean' },
        tag: { type: 'string' },
        'allow-all-tokens': { type: 'boolean' },
        'skip-llama-bench': { type: 'boolean' },
        'skip-agreement': { type: 'boolean' },
        'skip-servers': { type: 'boolean' },
        seed: { type: 'string' },
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
  const posInt = (k: string, def: number, max = 1_000_000) => {
    const v = str(k);
    if (v === undefined) return def;
    if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) fail(`--${k} must be an integer in 1..${max}, got "${v}"`);
    return Number(v);
  };
  const list = <T extends string>(k: string, allowed: readonly T[], def: readonly T[]): T[] => {
    const v = str(k);
    if (v === undefined) return [...def];
    const xs = v.split(',').map((s) => s.trim()).filter(Boolean);
    for (const x of xs) if (!allowed.includes(x as T)) fail(`--${k}: "${x}" is not one of ${allowed.join(', ')}`);
    return xs as T[];
  };
  const bin = str('llama-bin') ?? fail('--llama-bin is required (the folder with llama.cpp\'s built binaries)');
  const servers: ServerSpec[] = (str('servers') ?? 'f32:1,q8_0:1,q4_0:1,f32:16,q8_0:16,q4_0:16')
    .split(',')
    .filter(Boolean)
    .map((s) => {
      const [type, slots, ...flags] = s.split(':');
      if (!GGUF_TYPES.includes(type as GgufType) || !/^\d+$/.test(slots ?? '') || flags.some((f) => f !== 'fa' && !/^t\d+$/.test(f))) {
        fail(`--servers: "${s}" is not TYPE:SLOTS[:fa][:tTHREADS] with TYPE one of ${GGUF_TYPES.join(', ')}`);
      }
      const t = flags.find((f) => f.startsWith('t'));
      return { type: type as GgufType, slots: Number(slots), flashAttn: flags.includes('fa'), ...(t ? { threads: Number(t.slice(1)) } : {}) };
    });
  const temperature = Number(str('temperature') ?? 0.8);
  if (!(temperature >= 0 && temperature <= 2)) fail('--temperature must be in 0..2');
  const concurrency = (str('concurrency') ?? '1,16').split(',').map((c) => {
    if (!/^\d+$/.test(c) || Number(c) < 1 || Number(c) > 256) fail(`--concurrency: "${c}" is not 1..256`);
    return Number(c);
  });
  const seed = str('seed') === undefined ? 1 : Number(str('seed'));
  if (!Number.isInteger(seed) || seed < 0) fail('--seed must be a non-negative integer');
  return {
    bin: path.resolve(bin),
    llamaCommit: str('llama-commit'),
    ours: list<OursVariant>('ours', OURS_VARIANTS, ['fp32']),
    types: list<GgufType>('types', GGUF_TYPES, GGUF_TYPES),
    servers,
    concurrency,
    durationS: posInt('duration', 30, 3600),
    rounds: posInt('rounds', 2, 100),
    threads: posInt('threads', os.availableParallelism(), 256),
    maxNewTokens: posInt('max-new-tokens', 120, 1000),
    temperature,
    promptTokens: posInt('prompt-tokens', 300, 900),
    promptCount: posInt('prompts', 32, 1000),
    benchReps: posInt('bench-reps', 3, 100),
    benchRounds: posInt('bench-rounds', 100, 100),
    includeQueued: Boolean(values['include-queued']),
    benchThreads: (str('bench-threads') ?? '').split(',').filter(Boolean).map((t) => {
      if (!/^\d+$/.test(t) || Number(t) < 1 || Number(t) > 256) fail(`--bench-threads: "${t}" is not 1..256`);
      return Number(t);
    }),
    tag: str('tag') === undefined ? undefined : /^[\w.-]{1,40}$/.test(str('tag')!) ? str('tag') : fail('--tag: letters, digits, . _ - only'),
    banBytes: !values['allow-all-tokens'],
    skipLlamaBench: Boolean(values['skip-llama-bench']),
    skipAgreement: Boolean(values['skip-agreement']),
    skipServers: Boolean(values['skip-servers']),
    seed,
    cacheDir: path.resolve(REPO, str('cache-dir') ?? '.model-cache/llamacpp'),
    outDir: path.resolve(REPO, str('out-dir') ?? 'bench/results'),
    save: !values['no-save'],
  };
}

type Options = ReturnType<typeof parseCli>;

// ---------------------------------------------------------------- models

const binPath = (o: Options, name: string) => {
  const p = path.join(o.bin, name);
  if (!fs.existsSync(p)) throw new Error(`${p} not found: build llama.cpp's ${name} target (see README, "Benchmark")`);
  return p;
};

interface Models {
  gguf: Record<GgufType, { path: string; mb: number }>;
  ours: Partial<Record<OursVariant, { dir: string; fused_onnx_mb: number; quantization: unknown }>>;
}

/** Exports, converts and quantizes the llama.cpp side once (cached by preset and seed). */
async function prepareGguf(o: Options): Promise<Models['gguf']> {
  const dir = path.join(o.cacheDir, `${PRESET}-s${o.seed}`);
  const ckpt = path.join(dir, 'model.bin');
  const tok = path.join(dir, 'tokenizer.bin');
  if (!fs.existsSync(ckpt) || !fs.existsSync(tok)) {
    log(`exporting ${PRESET} seed ${o.seed} as a llama2.c checkpoint to ${dir}`);
    exportLlama2cModel({ preset: PRESET, seed: o.seed, outDir: dir });
  }
  const f32 = path.join(dir, 'f32.gguf');
  if (!fs.existsSync(f32)) {
    log('converting to GGUF f32 (llama-convert-llama2c-to-ggml)');
    await runCommand(
      binPath(o, 'llama-convert-llama2c-to-ggml'),
      ['--copy-vocab-from-model', tok, '--llama2c-model', ckpt, '--llama2c-output-model', `${f32}.partial`],
      { cwd: dir, timeoutMs: 10 * 60_000, capture: true },
    );
    fs.renameSync(`${f32}.partial`, f32);
  }
  const out = {} as Models['gguf'];
  for (const t of GGUF_TYPES) {
    const p = path.join(dir, `${t}.gguf`);
    if (!fs.existsSync(p)) {
      log(`quantizing to ${t.toUpperCase()} (llama-quantize)`);
      await runCommand(binPath(o, 'llama-quantize'), [f32, `${p}.partial`, t.toUpperCase(), String(o.threads)], { cwd: dir, timeoutMs: 10 * 60_000, capture: true });
      fs.renameSync(`${p}.partial`, p);
    }
    out[t] = { path: p, mb: round(fs.statSync(p).size / 1e6, 1) };
  }
  return out;
}

/** Whether scripts/make-model.ts takes --quantize yet (the quantization work of issue 11). */
function makeModelQuantizes(): boolean {
  return /['"]?quantize['"]?\s*:\s*\{\s*type/.test(fs.readFileSync(path.join(REPO, 'scripts/make-model.ts'), 'utf8'));
}

/** Our model directory for a variant, built once with `make-model` (same preset and seed as the GGUFs). */
async function prepareOurs(o: Options, variant: OursVariant): Promise<{ dir: string; fused_onnx_mb: number; quantization: unknown }> {
  const dir = path.join(o.cacheDir, `ours-${variant}-s${o.seed}`);
  const complete = () => {
    if (!['config.json', 'tokenizer.json', 'onnx/model_fused.onnx'].every((f) => fs.existsSync(path.join(dir, f)))) return false;
    const c = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { llama2c?: { formatVersion?: number; preset?: string; seed?: number }; quantization?: { mode?: string } };
    const mode = c.quantization?.mode ?? 'fp32';
    return c.llama2c?.formatVersion === IMPORT_FORMAT_VERSION && c.llama2c.preset === PRESET && c.llama2c.seed === o.seed && mode === variant;
  };
  if (!complete()) {
    const args = ['--import', 'tsx', 'scripts/make-model.ts', '--preset', PRESET, '--seed', String(o.seed)];
    if (variant !== 'fp32') {
      if (!makeModelQuantizes()) throw new Error(`our ${variant} variant needs make-model --quantize, which scripts/make-model.ts does not take yet`);
      args.push('--quantize', variant);
    }
    const tmp = `${dir}.partial`;
    fs.rmSync(tmp, { recursive: true, force: true });
    log(`building our ${variant} model (make-model ${args.slice(3).join(' ')})`);
    await runCommand(process.execPath, [...args, '--out', tmp], { cwd: REPO, timeoutMs: 30 * 60_000, capture: true });
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
  }
  const quantization = (JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { quantization?: unknown }).quantization ?? null;
  return { dir, fused_onnx_mb: round(fs.statSync(path.join(dir, 'onnx/model_fused.onnx')).size / 1e6, 1), quantization };
}

async function loadPrompts(dir: string, o: Options): Promise<Prompt[]> {
  hfEnv.allowLocalModels = true;
  hfEnv.allowRemoteModels = false;
  const tok = await AutoTokenizer.from_pretrained(dir, { local_files_only: true });
  return makePrompts(o.promptCount, (t) => tok.encode(t), o.promptTokens - 20, o.promptTokens + 20);
}

// ---------------------------------------------------------------- servers

interface Server {
  name: string;
  kind: ServerKind;
  pid: number;
  /** llama-server's slots (ours: its batch). */
  slots: number;
  port: number;
  rss: RssMonitor;
  logs: string[];
  stop(): Promise<void>;
  /** What the server was started with, for the results. */
  info: Record<string, unknown>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function httpStatus(port: number, p: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

async function startLlamaServer(o: Options, models: Models, spec: ServerSpec, ctxPerSlot: number): Promise<Server> {
  const threads = spec.threads ?? o.threads;
  const name = `llama.cpp ${spec.type} ${spec.slots} slot${spec.slots > 1 ? 's' : ''}${spec.flashAttn ? ' fa' : ''}${spec.threads ? ` t${spec.threads}` : ''}`;
  const port = await freePort();
  const args = [
    '-m', models.gguf[spec.type].path,
    '--host', '127.0.0.1', '--port', String(port),
    '-t', String(threads), '-tb', String(threads),
    '-c', String(ctxPerSlot * spec.slots), '-np', String(spec.slots),
    // The converter writes a 128-token training context; the preset's is 1,024.
    '--override-kv', `llama.context_length=int:${ctxPerSlot}`,
    ...(spec.flashAttn ? ['-fa'] : []),
  ];
  const child = spawnTracked(binPath(o, 'llama-server'), args, { cwd: o.cacheDir, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  const keep = (c: Buffer) => {
    for (const l of c.toString('utf8').split('\n')) if (l) logs.push(l);
    if (logs.length > 300) logs.splice(0, logs.length - 300);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const deadline = Date.now() + 180_000;
  while ((await httpStatus(port, '/health')) !== 200) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      await stopChild(child);
      throw new Error(`${name} did not become healthy\n${logs.slice(-30).join('\n')}`);
    }
    await sleep(200);
  }
  const rss = new RssMonitor(child.pid!, 200);
  return {
    name,
    kind: 'llamacpp',
    pid: child.pid!,
    slots: spec.slots,
    port,
    rss,
    logs,
    info: { args: args.map((a) => (a === models.gguf[spec.type].path ? path.basename(a) : a)), gguf_mb: models.gguf[spec.type].mb, ...spec },
    stop: async () => {
      rss.stop();
      await stopChild(child);
    },
  };
}

async function startOurs(o: Options, models: Models, variant: OursVariant): Promise<Server> {
  const dir = models.ours[variant]!.dir;
  const e: Record<string, string | undefined> = { ...process.env };
  delete e['API_KEYS'];
  delete e['TOKENIZER_PATH'];
  delete e['MODEL_DIR'];
  const s = await startServer({
    name: `ours ${variant}`,
    cwd: REPO,
    entry: 'src/main.ts',
    env: {
      RATE_LIMIT_PER_MINUTE: '0',
      CHAT_CACHE_TTL_SECONDS: '0',
      ...e,
      PORT: '0',
      HOST: '127.0.0.1',
      API_KEY,
      MODEL_PATH: dir,
      MODEL_CACHE_DIR: path.join(o.cacheDir, 'server-cache'),
    },
    timeoutMs: 10 * 60_000,
  });
  return {
    name: `ours ${variant}`,
    kind: 'ours',
    pid: s.pid,
    slots: Number(process.env.MAX_BATCH_SIZE ?? 16),
    port: s.port,
    rss: s.rss,
    logs: s.logs,
    info: {
      model_dir: path.relative(REPO, dir),
      fused_onnx_mb: models.ours[variant]!.fused_onnx_mb,
      ORT_INTRA_OP_THREADS: process.env.ORT_INTRA_OP_THREADS ?? null,
      ORT_SPINNING: process.env.ORT_SPINNING ?? null,
      MAX_BATCH_SIZE: process.env.MAX_BATCH_SIZE ?? null,
    },
    stop: () => s.stop(),
  };
}

/** CPU seconds a process has used (utime + stime from /proc), or undefined without /proc. */
function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return undefined;
  }
}

/**
 * Waits until a server is idle: its CPU time grows by under 5% of a core over
 * half a second (requests cut at a window's end may still be prefilling or
 * queued there), at most `maxS`. Returns the seconds waited.
 */
async function drain(pid: number, maxS = 90): Promise<number> {
  const started = performance.now();
  const first = cpuSeconds(pid);
  if (first === undefined) {
    await sleep(1500);
    return 1.5;
  }
  let prev: number = first;
  while ((performance.now() - started) / 1000 < maxS) {
    await sleep(500);
    const now: number = cpuSeconds(pid) ?? prev;
    if (now - prev < 0.025) break;
    prev = now;
  }
  return round((performance.now() - started) / 1000, 1);
}

// ---------------------------------------------------------------- requests

interface Sampling {
  maxNewTokens: number;
  temperature: number;
  banBytes: boolean;
}

/** The same request for both servers: ids to llama.cpp, the text that encodes to them to ours. */
function request(s: Server, prompt: Prompt, sp: Sampling, seed: number, stream = true): { path: string; body: Record<string, unknown>; headers: Record<string, string> } {
  if (s.kind === 'llamacpp') {
    return {
      path: '/completion',
      headers: {},
      body: {
        prompt: prompt.ids,
        n_predict: sp.maxNewTokens,
        temperature: sp.temperature,
        top_k: 0,
        top_p: 0.95,
        min_p: 0,
        typical_p: 1,
        repeat_penalty: 1,
        seed,
        stream,
        ignore_eos: true,
        cache_prompt: false,
        ...(sp.banBytes ? { logit_bias: BANNED_IDS.map((id) => [id, false]) } : {}),
      },
    };
  }
  return {
    path: '/v1/completions',
    headers: { 'x-api-key': API_KEY },
    body: {
      prompt: prompt.text,
      max_tokens: sp.maxNewTokens,
      temperature: sp.temperature,
      top_p: 0.95,
      top_k: 0,
      seed,
      stream,
      ...(stream ? { stream_options: { include_usage: true } } : {}),
      ignore_eos: true,
      ...(sp.banBytes ? { logit_bias: Object.fromEntries(BANNED_IDS.map((id) => [String(id), -100])) } : {}),
    },
  };
}

interface RunResult {
  server: string;
  concurrency: number;
  round: number;
  wall_s: number;
  requests_ok: number;
  /** Requests still streaming at the end of the window: cut there, their tokens so far counted. */
  requests_cut: number;
  requests_failed: number;
  errors: Record<string, number>;
  /** Tokens delivered within the window (completed requests' counts plus cut requests' streamed tokens). */
  completion_tokens: number;
  tok_s: number;
  /** Over requests whose first token came within the window. */
  ttft_ms: { p50: number; p95: number; mean: number; samples: number };
  itl_ms: { p50: number; p95: number; mean: number; samples: number };
  e2e_ms: { p50: number; p95: number };
  /** Streamed token events per completion token over completed requests (1: every token streams on its own). */
  events_per_token: number;
  /** Completed responses whose prompt token count is not the ids' length. */
  prompt_token_mismatches: number;
  peak_rss_mb: number;
  load_avg_1m_after: number;
  /** Seconds until the server was idle after the window (cut requests finishing or cancelling). */
  drain_s?: number;
}

/**
 * Closed loop for a fixed window: `c` workers each send the next request as
 * soon as the last one ended; at the end of the window requests still in
 * flight are cut (so a 1-slot server at c=16 does not take minutes to drain)
 * and the tokens they streamed count. Throughput is tokens in the window /
 * window; with `requests` instead, exactly that many requests run to the end.
 */
async function runLoad(
  s: Server,
  prompts: Prompt[],
  c: number,
  sp: Sampling,
  opts: { durationS?: number; requests?: number; seedBase: number; round: number },
): Promise<RunResult> {
  // A connection per request for both: a kept-alive connection to llama-server (cpp-httplib) was once
  // reset as the next request went out under load (ECONNRESET); a new loopback connection costs well under 1 ms.
  const agent = new http.Agent({ keepAlive: false, maxSockets: c });
  const gaps = new DoubleList();
  const outcomes: Outcome[] = [];
  const cut = new AbortController();
  // One abort listener per request in flight.
  setMaxListeners(Math.max(10, c * 2), cut.signal);
  let mismatches = 0;
  let next = 0;
  s.rss.resetPeak();
  const started = performance.now();
  const timer = opts.durationS === undefined ? undefined : setTimeout(() => cut.abort(), opts.durationS * 1000);
  const worker = async () => {
    for (;;) {
      if (cut.signal.aborted) return;
      if (opts.requests !== undefined && next >= opts.requests) return;
      const k = next++;
      const prompt = prompts[k % prompts.length]!;
      const r = request(s, prompt, sp, (opts.seedBase + k) % 4294967296);
      const out = await streamCompletion({ kind: s.kind, agent, port: s.port, path: r.path, headers: r.headers, body: r.body, timeoutMs: 600_000, gaps, cut: cut.signal });
      if (out.ok && out.promptTokens !== prompt.ids.length) mismatches++;
      outcomes.push(out);
      if (!out.ok && out.error !== 'cut') await sleep(10);
    }
  };
  try {
    await Promise.all(Array.from({ length: c }, worker));
  } finally {
    clearTimeout(timer);
    agent.destroy();
  }
  const wall = (performance.now() - started) / 1000;
  const ok = outcomes.filter((x) => x.ok);
  const cutOnes = outcomes.filter((x) => x.error === 'cut');
  const failed = outcomes.filter((x) => !x.ok && x.error !== 'cut');
  const errors: Record<string, number> = {};
  for (const x of failed) errors[x.error ?? 'unknown'] = (errors[x.error ?? 'unknown'] ?? 0) + 1;
  const completedTokens = ok.reduce((a, x) => a + (x.completionTokens ?? x.events), 0);
  const completion = completedTokens + cutOnes.reduce((a, x) => a + x.events, 0);
  const events = ok.reduce((a, x) => a + x.events, 0);
  const ttft = summarize([...ok, ...cutOnes].filter((x) => x.ttftMs !== undefined).map((x) => x.ttftMs!));
  const itl = summarize(gaps.toArray());
  const e2e = summarize(ok.map((x) => x.endMs - x.startMs));
  return {
    server: s.name,
    concurrency: c,
    round: opts.round,
    wall_s: round(wall, 2),
    requests_ok: ok.length,
    requests_cut: cutOnes.length,
    requests_failed: failed.length,
    errors,
    completion_tokens: completion,
    tok_s: round(completion / wall, 1),
    ttft_ms: { p50: round(ttft.p50, 1), p95: round(ttft.p95, 1), mean: round(ttft.mean, 1), samples: ttft.count },
    itl_ms: { p50: round(itl.p50, 2), p95: round(itl.p95, 2), mean: round(itl.mean, 2), samples: itl.count },
    e2e_ms: { p50: round(e2e.p50, 0), p95: round(e2e.p95, 0) },
    events_per_token: completedTokens ? round(events / completedTokens, 3) : Number.NaN,
    prompt_token_mismatches: mismatches,
    peak_rss_mb: round(s.rss.peakKb / 1024, 0),
    load_avg_1m_after: round(os.loadavg()[0]!, 2),
  };
}

// ---------------------------------------------------------------- llama-bench

interface BenchRow {
  round: number;
  threads: number;
  type: string;
  test: string;
  avg_ts: number;
  stddev_ts: number;
  samples_ts: number[];
}

async function llamaBench(o: Options, models: Models, r: number): Promise<BenchRow[]> {
  const args = [...o.types.flatMap((t) => ['-m', models.gguf[t].path]), '-p', String(o.promptTokens), '-n', String(o.maxNewTokens), '-t', (o.benchThreads.length ? o.benchThreads : [o.threads]).join(','), '-r', String(o.benchReps), '-o', 'json'];
  const { stdout } = await runCommand(binPath(o, 'llama-bench'), args, { cwd: o.cacheDir, timeoutMs: 20 * 60_000, capture: true });
  const rows = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<Record<string, unknown>>;
  return rows.map((x) => {
    const file = path.basename(String(x['model_filename'] ?? ''), '.gguf');
    const nPrompt = Number(x['n_prompt'] ?? 0);
    const nGen = Number(x['n_gen'] ?? 0);
    return {
      round: r,
      threads: Number(x['n_threads']),
      type: file,
      test: nPrompt > 0 ? `pp${nPrompt}` : `tg${nGen}`,
      avg_ts: round(Number(x['avg_ts']), 1),
      stddev_ts: round(Number(x['stddev_ts']), 1),
      samples_ts: (x['samples_ts'] as number[] | undefined)?.map((v) => round(v, 1)) ?? [],
    };
  });
}

// ---------------------------------------------------------------- agreement

/**
 * Greedy continuations of the same prompt ids: llama-server (ids, return_tokens)
 * against our server (the text, logprobs for the token strings). Counts the
 * leading tokens that agree, by piece text in our vocabulary.
 */
async function agreement(o: Options, llama: Server[], ours: Server, prompts: Prompt[]) {
  const vocab = buildSyntheticVocab(getPreset(PRESET).vocabSize);
  const n = 24;
  const sp: Sampling = { maxNewTokens: n, temperature: 0, banBytes: false };
  const out: Array<Record<string, unknown>> = [];
  const ourRuns: Array<{ tokens: string[]; top1: Record<string, number> | undefined }> = [];
  for (const p of prompts) {
    const r = request(ours, p, sp, 0, false);
    const res = await postJson(ours.port, r.path, { ...r.body, logprobs: 5 }, r.headers);
    const choice = (res.json as { choices?: Array<{ text: string; logprobs?: { tokens: string[]; top_logprobs: Array<Record<string, number>> } }> }).choices?.[0];
    if (res.status !== 200 || !choice?.logprobs) throw new Error(`ours: greedy request failed (${res.status}): ${JSON.stringify(res.json).slice(0, 300)}`);
    ourRuns.push({ tokens: choice.logprobs.tokens, top1: choice.logprobs.top_logprobs[0] });
  }
  for (const s of llama) {
    const perPrompt: Array<Record<string, unknown>> = [];
    for (const [i, p] of prompts.entries()) {
      const r = request(s, p, sp, 0, false);
      const res = await postJson(s.port, r.path, { ...r.body, return_tokens: true, n_probs: 5 });
      const j = res.json as { tokens?: number[]; tokens_evaluated?: number; completion_probabilities?: Array<{ top_logprobs?: Array<{ id: number; logprob: number }>; top_probs?: Array<{ id: number; prob: number }> }> };
      if (res.status !== 200 || !j.tokens) throw new Error(`${s.name}: greedy request failed (${res.status}): ${JSON.stringify(res.json).slice(0, 300)}`);
      // Ours names a token by its text decoded alone (leading space dropped, a byte as its character): the same here.
      const name = (id: number) => referenceDecode(vocab, [BOS_ID, id]);
      const theirs = j.tokens.map(name);
      const mine = ourRuns[i]!.tokens;
      let agree = 0;
      while (agree < Math.min(theirs.length, mine.length) && theirs[agree] === mine[agree]) agree++;
      // First position: both top-5 lists as piece -> logprob.
      const llamaTop = j.completion_probabilities?.[0];
      const llamaTop5: Record<string, number> | undefined = llamaTop?.top_logprobs
        ? Object.fromEntries(llamaTop.top_logprobs.map((t) => [name(t.id), t.logprob]))
        : llamaTop?.top_probs
          ? Object.fromEntries(llamaTop.top_probs.map((t) => [name(t.id), Math.log(t.prob)]))
          : undefined;
      const ourTop5 = ourRuns[i]!.top1 ?? {};
      const common = Object.keys(llamaTop5 ?? {}).filter((k) => k in ourTop5);
      const maxDiff = common.length ? Math.max(...common.map((k) => Math.abs(llamaTop5![k]! - ourTop5[k]!))) : null;
      perPrompt.push({
        prompt_tokens: p.ids.length,
        llama_prompt_tokens: j.tokens_evaluated,
        leading_tokens_agree: agree,
        of: Math.min(theirs.length, mine.length),
        llama: theirs.join('|'),
        ours: mine.join('|'),
        first_top5_llama: llamaTop5 ? Object.fromEntries(Object.entries(llamaTop5).map(([k, v]) => [k, round(v, 4)])) : undefined,
        first_top5_ours: Object.fromEntries(Object.entries(ourTop5).map(([k, v]) => [k, round(v, 4)])),
        first_top5_common: common.length,
        first_top5_max_abs_logprob_diff: maxDiff === null ? null : round(maxDiff, 5),
      });
    }
    out.push({ server: s.name, prompts: perPrompt });
    log(
      `agreement ${s.name} vs ours fp32: leading greedy tokens equal ${perPrompt.map((x) => `${x['leading_tokens_agree']}/${x['of']}`).join(', ')}; ` +
        `first-token top-5 max |logprob diff| ${perPrompt.map((x) => x['first_top5_max_abs_logprob_diff']).join(', ')}`,
    );
  }
  // llama.cpp's own tokenizer on the prompt texts (BOS added), against our ids.
  const tokenization: Array<Record<string, unknown>> = [];
  for (const p of prompts) {
    const res = await postJson(llama[0]!.port, '/tokenize', { content: p.text, add_special: true });
    const ids = (res.json as { tokens?: number[] }).tokens ?? [];
    let same = 0;
    while (same < Math.min(ids.length, p.ids.length) && ids[same] === p.ids[same]) same++;
    tokenization.push({ ours: p.ids.length, llama: ids.length, identical: same === ids.length && ids.length === p.ids.length, leading_equal: same });
  }
  return { greedy_new_tokens: n, runs: out, tokenization_of_prompt_text: tokenization };
}

// ---------------------------------------------------------------- report

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function summarizeRuns(runs: RunResult[], baseline: string) {
  const keys = [...new Set(runs.map((r) => `${r.server}\u0000${r.concurrency}`))];
  return keys.map((k) => {
    const [server, cs] = k.split('\u0000') as [string, string];
    const c = Number(cs);
    const mine = runs.filter((r) => r.server === server && r.concurrency === c);
    const ratios = mine
      .map((r) => {
        const b = runs.find((x) => x.server === baseline && x.concurrency === c && x.round === r.round);
        return b && b.tok_s > 0 ? r.tok_s / b.tok_s : undefined;
      })
      .filter((x): x is number => x !== undefined);
    const tok = mine.map((r) => r.tok_s);
    return {
      server,
      concurrency: c,
      rounds: mine.length,
      tok_s_median: round(median(tok), 1),
      tok_s_range: [Math.min(...tok), Math.max(...tok)],
      ratio_to_ours_fp32_median: ratios.length ? round(median(ratios), 2) : null,
      ratio_to_ours_fp32_range: ratios.length ? [round(Math.min(...ratios), 2), round(Math.max(...ratios), 2)] : null,
      ttft_p50_ms: round(median(mine.map((r) => r.ttft_ms.p50)), 0),
      ttft_p95_ms: round(median(mine.map((r) => r.ttft_ms.p95)), 0),
      itl_p50_ms: round(median(mine.map((r) => r.itl_ms.p50)), 2),
      itl_p95_ms: round(median(mine.map((r) => r.itl_ms.p95)), 2),
      errors: mine.reduce((a, r) => a + r.requests_failed, 0),
      requests: mine.reduce((a, r) => a + r.requests_ok, 0),
      requests_cut: mine.reduce((a, r) => a + r.requests_cut, 0),
      events_per_token: round(median(mine.map((r) => r.events_per_token)), 3),
      prompt_token_mismatches: mine.reduce((a, r) => a + r.prompt_token_mismatches, 0),
      peak_rss_mb: Math.max(...mine.map((r) => r.peak_rss_mb)),
    };
  });
}

function table(rows: ReturnType<typeof summarizeRuns>): string {
  const head = '| server | c | tok/s (median, range) | x ours fp32 (median, range) | TTFT p50/p95 ms | ITL p50/p95 ms | errors | RSS MB |';
  const lines = rows.map(
    (r) =>
      `| ${r.server} | ${r.concurrency} | ${r.tok_s_median} (${r.tok_s_range.join('-')}) | ` +
      `${r.ratio_to_ours_fp32_median ?? '-'}${r.ratio_to_ours_fp32_range ? ` (${r.ratio_to_ours_fp32_range.join('-')})` : ''} | ` +
      `${r.ttft_p50_ms}/${r.ttft_p95_ms} | ${r.itl_p50_ms}/${r.itl_p95_ms} | ${r.errors} | ${r.peak_rss_mb} |`,
  );
  return [head, '|---|---|---|---|---|---|---|---|', ...lines].join('\n');
}

function benchTable(rows: BenchRow[]): string {
  const key = (r: BenchRow) => `${r.type} ${r.test} t${r.threads}`;
  const keys = [...new Set(rows.map(key))];
  const lines = keys.map((k) => {
    const mine = rows.filter((r) => key(r) === k);
    return `| ${k} | ${mine.map((r) => `${r.avg_ts} ± ${r.stddev_ts}`).join(' ; ')} |`;
  });
  return ['| llama-bench | tokens/s per round (mean ± sd) |', '|---|---|', ...lines].join('\n');
}

function gitCommit(dir: string): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const o = parseCli();
  const date = new Date().toISOString().slice(0, 10);
  fs.mkdirSync(o.cacheDir, { recursive: true });
  const machine = {
    cpu_model: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.cpus().length,
    available_parallelism: os.availableParallelism(),
    total_mem_gb: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    load_avg_at_start: os.loadavg().map((v) => round(v, 2)),
  };
  const llamaSrc = path.resolve(o.bin, '../..');
  const llamaCommit = o.llamaCommit ?? gitCommit(llamaSrc) ?? 'unknown';
  const ourCommit = gitCommit(REPO) ?? 'unknown';
  // Whether this runner's own files differ from that commit (then the results were not made by it alone).
  let runnerDirty: boolean | 'unknown' = 'unknown';
  try {
    runnerDirty = execFileSync('git', ['status', '--porcelain', '--', 'bench/llamacpp.ts', 'bench/llamacpp', 'bench/lib'], { cwd: REPO, encoding: 'utf8' }).trim() !== '';
  } catch {
    /* not a git checkout */
  }
  log(`llama.cpp ${llamaCommit} (${o.bin}); ours ${ourCommit}; ${o.threads} threads`);

  const models: Models = { gguf: await prepareGguf(o), ours: {} };
  for (const v of o.ours) models.ours[v] = await prepareOurs(o, v);
  const prompts = await loadPrompts(models.ours[o.ours[0]!]!.dir, o);
  const lens = prompts.map((p) => p.ids.length);
  log(`${prompts.length} prompts of ${Math.min(...lens)}..${Math.max(...lens)} tokens`);
  const ctxPerSlot = getPreset(PRESET).maxSeqLen;

  const servers: Server[] = [];
  const benchRows: BenchRow[] = [];
  const runs: RunResult[] = [];
  let agree: unknown;
  try {
    if (!o.skipServers || !o.skipAgreement) {
      for (const v of o.ours) servers.push(await startOurs(o, models, v));
      for (const spec of o.servers) servers.push(await startLlamaServer(o, models, spec, ctxPerSlot));
      log(`servers up: ${servers.map((s) => s.name).join(', ')}`);
    }
    const oursFp32 = servers.find((s) => s.name === 'ours fp32');
    if (!o.skipAgreement && oursFp32) {
      const oneSlot = o.servers.map((spec, i) => ({ spec, s: servers[o.ours.length + i]! })).filter((x) => x.spec.slots === 1).map((x) => x.s);
      agree = await agreement(o, oneSlot.length ? oneSlot : servers.filter((s) => s.kind === 'llamacpp').slice(0, 1), oursFp32, prompts.slice(0, 3));
    }
    if (!o.skipServers) {
      // One warm-up per server (first requests allocate, fault pages in, spin up thread pools).
      const warm: Sampling = { maxNewTokens: 16, temperature: o.temperature, banBytes: o.banBytes };
      for (const s of servers) await runLoad(s, prompts, 2, warm, { requests: 2, seedBase: 900_000_000, round: 0 });
    }
    let seedBase = 0;
    const sampling: Sampling = { maxNewTokens: o.maxNewTokens, temperature: o.temperature, banBytes: o.banBytes };
    for (let r = 1; r <= o.rounds; r++) {
      if (!o.skipLlamaBench && r <= o.benchRounds) {
        log(`round ${r}: llama-bench pp${o.promptTokens} tg${o.maxNewTokens} ${o.types.join(', ')}`);
        benchRows.push(...(await llamaBench(o, models, r)));
      }
      if (o.skipServers) continue;
      for (const c of o.concurrency) {
        const shift = (r - 1) % servers.length;
        const order = [...servers.slice(shift), ...servers.slice(0, shift)];
        for (const s of order) {
          if (s.kind === 'llamacpp' && s.slots < c && !o.includeQueued) continue;
          const res = await runLoad(s, prompts, c, sampling, { durationS: o.durationS, seedBase: (seedBase += 1_000_000), round: r });
          // Let cut requests finish cancelling before the next server's window.
          res.drain_s = await drain(s.pid);
          runs.push(res);
          log(
            `round ${r} c=${c} ${s.name}: ${res.tok_s} tok/s, TTFT p50 ${res.ttft_ms.p50} ms, ITL p50/p95 ${res.itl_ms.p50}/${res.itl_ms.p95} ms, ` +
              `${res.requests_ok} ok, ${res.requests_cut} cut, ${res.requests_failed} failed ${JSON.stringify(res.errors)}, events/token ${res.events_per_token}, ` +
              `load ${res.load_avg_1m_after}, drained in ${res.drain_s} s`,
          );
        }
      }
    }
  } finally {
    for (const s of servers) await s.stop();
  }

  const summary = summarizeRuns(runs, 'ours fp32');
  if (benchRows.length) process.stdout.write(`\n${benchTable(benchRows)}\n`);
  if (summary.length) process.stdout.write(`\n${table(summary)}\n`);
  const result = {
    date,
    what: `llama.cpp side by side with this server on the ${PRESET} preset's random weights (seed ${o.seed}), issue 11`,
    commit: ourCommit,
    runner_dirty: runnerDirty,
    llama_cpp: { commit: llamaCommit, bin: o.bin },
    machine,
    config: {
      threads: o.threads,
      concurrency: o.concurrency,
      duration_s: o.durationS,
      rounds: o.rounds,
      max_new_tokens: o.maxNewTokens,
      temperature: o.temperature,
      top_p: 0.95,
      top_k: 0,
      min_p: 0,
      ignore_eos: true,
      banned_ids: o.banBytes ? '0..258 (unk, BOS, EOS, byte tokens): logit_bias -100 (ours), false (llama.cpp)' : null,
      llama_cache_prompt: false,
      prompts: o.promptCount,
      prompt_tokens: [Math.min(...lens), Math.max(...lens)],
      ours_endpoint: 'POST /v1/completions (text that our tokenizer encodes to the ids)',
      llama_endpoint: 'POST /completion (the token ids)',
      bench_reps: o.benchReps,
    },
    models: { gguf: models.gguf, ours: models.ours },
    servers: servers.map((s) => ({ name: s.name, ...s.info })),
    agreement: agree ?? null,
    llama_bench: benchRows,
    summary,
    runs,
  };
  if (o.save) {
    fs.mkdirSync(o.outDir, { recursive: true });
    const file = path.join(o.outDir, `${date}-llamacpp-85m${o.tag ? `-${o.tag}` : ''}.json`);
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(result, null, 2) + '\n');
    fs.renameSync(`${file}.tmp`, file);
    log(`wrote ${path.relative(REPO, file)}`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:llamacpp: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
