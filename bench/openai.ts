/**
 * `npm run bench:openai`: POST /v1/chat/completions against POST /v1/chat on
 * one server process, with the load profile of `npm run bench` (streaming,
 * closed loop, 150-250-token prompts, 120 new tokens, temperature 0.8,
 * top_p 0.95, a distinct seed per request), at each concurrency. Three
 * request shapes, run in alternating order over several rounds so drift on a
 * shared machine hits them alike, each round sending the same requests with
 * the same seeds to every shape:
 *   prompt            /v1/chat with the prompt text (the benchmark's own profile)
 *   messages          /v1/chat with the prompt as one user message (read through the chat template)
 *   chat-completions  /v1/chat/completions with that same message (OpenAI's stream, usage chunk)
 * messages and chat-completions generate the same tokens (same rendered
 * prompt, same seed), so their ratio is the OpenAI surface's own cost.
 * A single stream is also measured interleaved: request k is sent in each
 * shape back to back (rotating which goes first), so each pair of requests
 * ran under the same machine conditions; the median of the per-request
 * ratios is the least noisy figure a shared machine gives.
 * Then a micro-measure of chat-template rendering per request (SmolLM2's
 * ChatML template, compiled once and cached by transformers.js).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AutoTokenizer, env as hfEnv } from '@huggingface/transformers';
import http from 'node:http';
import { requestBody, runLoad, streamChat, type LoadResult, type RequestShape, type SamplingProfile } from './lib/client.js';
import { startServer, type ServerHandle } from './lib/proc.js';
import { makePrompts, type Prompt } from './lib/prompts.js';
import { round, summarize } from './lib/stats.js';
import { cachedHubShapedDecoder } from '../src/engine/hub-model-dir.js';
import { IMPORT_FORMAT_VERSION, makeRandomModel, resolveCheckpointModel } from '../src/engine/model-dir.js';
import { Tokenizer } from '../src/engine/tokenizer.js';
import type { ChatMessage } from '../src/engine/types.js';

const REPO = path.resolve(import.meta.dirname, '..');
const SHARED = path.resolve(REPO, '../shared/models');
const STORIES_BIN = path.join(SHARED, 'stories260K/stories260K.bin');
const SMOLLM2 = path.join(SHARED, 'SmolLM2-135M-Instruct');
const MODELS = ['stories260K', 'distil', 'smollm2'] as const;
type ModelName = (typeof MODELS)[number];
const SHAPES: RequestShape[] = ['prompt', 'messages', 'chat-completions'];
const API_KEY = 'bench-key';
/** chat-completions tok/s must be at least this share of /v1/chat's (the median of the rounds' paired ratios). */
const TARGET = 0.95;

const USAGE = `npm run bench:openai -- [options]
  --model stories260K,distil,smollm2|all  models (default stories260K,distil)
  --concurrency 1,16                       closed-loop client counts (default 1,16)
  --requests-per-client N                  requests per client per run (default 8: 8 at c=1, 128 at c=16)
  --rounds N                               rounds of the three shapes, in alternating order (default 2)
  --max-new-tokens N                       (default 120)
  --temperature T                          (default 0.8)
  --prompts N                              distinct prompts (default 64)
  --smollm2-layers N                       layers of the SmolLM2-shaped random model (default 30, the real count)
  --template-iterations N                  renders timed per case in the template micro-measure (default 2000)
  --interleaved N                          single-stream requests per shape sent interleaved (default 48; 0: none)
  --cache-dir DIR                          (default .model-cache/bench)
  --out-dir DIR                            (default bench/results)
  --no-save                                print only`;

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
        concurrency: { type: 'string' },
        'requests-per-client': { type: 'string' },
        rounds: { type: 'string' },
        'max-new-tokens': { type: 'string' },
        temperature: { type: 'string' },
        prompts: { type: 'string' },
        'smollm2-layers': { type: 'string' },
        'template-iterations': { type: 'string' },
        interleaved: { type: 'string' },
        'cache-dir': { type: 'string' },
        'out-dir': { type: 'string' },
        'no-save': { type: 'boolean' },
        help: { type: 'boolean' },
      },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values['help']) {
    process.stdout.write(`usage: ${USAGE}\n`);
    process.exit(0);
  }
  const str = (k: string) => values[k] as string | undefined;
  const int = (k: string, def: number, max: number): number => {
    const v = str(k);
    if (v === undefined) return def;
    if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) fail(`--${k} must be an integer 1..${max}, got "${v}"`);
    return Number(v);
  };
  const modelArg = str('model') ?? 'stories260K,distil';
  const models = (modelArg === 'all' ? [...MODELS] : modelArg.split(',').map((m) => m.trim())) as ModelName[];
  for (const m of models) if (!MODELS.includes(m)) fail(`unknown model "${m}" (${MODELS.join(', ')} or all)`);
  const concurrency = (str('concurrency') ?? '1,16').split(',').map((c) => {
    if (!/^\d+$/.test(c.trim()) || Number(c) < 1 || Number(c) > 256) fail(`--concurrency takes integers 1..256, got "${c}"`);
    return Number(c);
  });
  const temperature = str('temperature') === undefined ? 0.8 : Number(str('temperature'));
  if (!Number.isFinite(temperature) || temperature < 0 || temperature > 2) fail('--temperature must be 0..2');
  return {
    models,
    concurrency: [...new Set(concurrency)],
    requestsPerClient: int('requests-per-client', 8, 10_000),
    rounds: int('rounds', 2, 100),
    maxNewTokens: int('max-new-tokens', 120, 1024),
    temperature,
    promptCount: int('prompts', 64, 10_000),
    smollm2Layers: int('smollm2-layers', 30, 64),
    templateIterations: int('template-iterations', 2000, 1_000_000),
    interleaved: str('interleaved') === '0' ? 0 : int('interleaved', 48, 100_000),
    cacheDir: path.resolve(REPO, str('cache-dir') ?? '.model-cache/bench'),
    outDir: path.resolve(REPO, str('out-dir') ?? 'bench/results'),
    save: !values['no-save'],
  };
}

type Options = ReturnType<typeof parseCli>;

const log = (msg: string) => process.stderr.write(`[bench:openai ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ---------------------------------------------------------------- models

interface ModelSetup {
  name: ModelName;
  /** A transformers.js directory of the model (its tokenizer counts the prompts). */
  dir: string;
  /** MODEL_PATH for the server. */
  serverModelPath: string;
}

function isCurrentDistil(dir: string): boolean {
  if (!fs.existsSync(path.join(dir, 'onnx', 'model.onnx'))) return false;
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { llama2c?: { formatVersion?: number } };
  return config.llama2c?.formatVersion === IMPORT_FORMAT_VERSION;
}

async function prepareModel(name: ModelName, o: Options): Promise<ModelSetup> {
  if (name === 'stories260K') {
    if (!fs.existsSync(STORIES_BIN)) throw new Error(`${STORIES_BIN} not found`);
    // Where the server (MODEL_CACHE_DIR below) imports the checkpoint itself.
    const dir = await resolveCheckpointModel(STORIES_BIN, undefined, path.join(o.cacheDir, 'server-cache', 'llama2c'));
    return { name, dir, serverModelPath: STORIES_BIN };
  }
  if (name === 'distil') {
    // The same directory `npm run bench` builds and uses.
    const dir = path.join(o.cacheDir, 'distil');
    if (!isCurrentDistil(dir)) {
      log(`building ${dir}`);
      const tmp = `${dir}.partial`;
      fs.rmSync(tmp, { recursive: true, force: true });
      await makeRandomModel({ preset: 'distil', seed: 1, outDir: tmp });
      fs.rmSync(dir, { recursive: true, force: true });
      fs.renameSync(tmp, dir);
    }
    return { name, dir, serverModelPath: dir };
  }
  if (!fs.existsSync(path.join(SMOLLM2, 'tokenizer.json'))) throw new Error(`${SMOLLM2} not found`);
  log(`SmolLM2-135M-Instruct-shaped random model, ${o.smollm2Layers} layers (built once)`);
  const dir = cachedHubShapedDecoder({ sourceDir: SMOLLM2, cacheRoot: path.join(o.cacheDir, 'hub-shaped'), seed: 1, layers: o.smollm2Layers });
  return { name, dir, serverModelPath: dir };
}

async function loadPrompts(dir: string, count: number): Promise<Prompt[]> {
  hfEnv.allowLocalModels = true;
  hfEnv.allowRemoteModels = false;
  const tok = await AutoTokenizer.from_pretrained(dir, { local_files_only: true });
  return makePrompts(count, (t) => tok.encode(t));
}

async function startRealServer(m: ModelSetup, o: Options): Promise<ServerHandle> {
  const env: Record<string, string | undefined> = { ...process.env };
  delete env['API_KEYS'];
  delete env['TOKENIZER_PATH'];
  return startServer({
    name: 'server',
    cwd: REPO,
    entry: 'src/main.ts',
    env: {
      // A load test's single key: no rate limit and no response cache, unless the caller's environment asks.
      RATE_LIMIT_PER_MINUTE: '0',
      CHAT_CACHE_TTL_SECONDS: '0',
      // No hub: the embedding model (unused here) is the decoder mean-pooled, loaded beside it.
      HF_HUB_OFFLINE: '1',
      EMBEDDING_MODEL: '',
      ...env,
      PORT: '0',
      HOST: '127.0.0.1',
      API_KEY,
      MODEL_PATH: m.serverModelPath,
      MODEL_CACHE_DIR: path.join(o.cacheDir, 'server-cache'),
      // A fresh store: nothing here reads stored data, and ./data may hold another version's schema.
      DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'bench-openai-data-')),
    },
    timeoutMs: 10 * 60_000,
  });
}

// ---------------------------------------------------------------- load runs

interface ShapeRun extends LoadResult {
  shape: RequestShape;
  round: number;
  /** CPU seconds the server process (all its threads) used during the run; null without /proc. */
  server_cpu_s: number | null;
}

/** utime + stime of a process in seconds (/proc/<pid>/stat, clock ticks of 1/100 s); null without /proc. */
function cpuSeconds(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

interface ShapeSummary {
  shape: RequestShape;
  concurrency: number;
  rounds: number;
  requests_ok: number;
  requests_failed: number;
  completion_tokens: number;
  wall_s: number;
  /** All rounds' completion tokens over all rounds' wall time. */
  tok_s: number;
  /** Per round, for the spread. */
  tok_s_rounds: number[];
  /**
   * Server CPU per generated token (ms), all rounds: the cost of the work,
   * which a competing process on the machine moves much less than tok/s.
   */
  server_cpu_ms_per_token: number | null;
  ttft_ms_p50: number;
  e2e_ms_p50: number;
  itl_ms_mean: number;
  prompt_tokens_mean: number;
}

function summarizeShape(runs: ShapeRun[]): ShapeSummary {
  const tokens = runs.reduce((a, r) => a + r.completion_tokens, 0);
  const wall = runs.reduce((a, r) => a + r.wall_s, 0);
  const med = (xs: number[]) => summarize(xs).p50;
  return {
    shape: runs[0]!.shape,
    concurrency: runs[0]!.concurrency,
    rounds: runs.length,
    requests_ok: runs.reduce((a, r) => a + r.requests_ok, 0),
    requests_failed: runs.reduce((a, r) => a + r.requests_failed, 0),
    completion_tokens: tokens,
    wall_s: round(wall, 3),
    tok_s: round(tokens / wall, 1),
    tok_s_rounds: runs.map((r) => r.tok_s),
    server_cpu_ms_per_token: runs.some((r) => r.server_cpu_s === null) ? null : round((1000 * runs.reduce((a, r) => a + r.server_cpu_s!, 0)) / tokens, 4),
    ttft_ms_p50: round(med(runs.map((r) => r.ttft_ms.p50))),
    e2e_ms_p50: round(med(runs.map((r) => r.e2e_ms.p50))),
    itl_ms_mean: round(med(runs.map((r) => r.itl_ms.mean)), 3),
    prompt_tokens_mean: round(med(runs.map((r) => r.prompt_tokens.mean)), 1),
  };
}

async function benchModel(m: ModelSetup, o: Options) {
  const prompts = await loadPrompts(m.dir, o.promptCount);
  const profile: SamplingProfile = { maxNewTokens: o.maxNewTokens, temperature: o.temperature, topP: 0.95, topK: 0 };
  const s = await startRealServer(m, o);
  const summaries: ShapeSummary[] = [];
  const runs: ShapeRun[] = [];
  let interleaved: Awaited<ReturnType<typeof interleavedSingleStream>> | null = null;
  try {
    let seedBase = 1;
    for (const c of o.concurrency) {
      const requests = o.requestsPerClient * c;
      for (const shape of SHAPES) {
        // Warm-up per shape: the first requests of a route compile its validation and code paths.
        await runLoad({ port: s.port, apiKey: API_KEY, concurrency: c, requests: c, prompts, profile, seedBase: 999_000_000, requestTimeoutMs: 600_000, shape });
      }
      for (let r = 0; r < o.rounds; r++) {
        seedBase += 1_000_000;
        const order = r % 2 === 0 ? SHAPES : [...SHAPES].reverse();
        for (const shape of order) {
          log(`${m.name} c=${c} round ${r + 1}/${o.rounds} ${shape}: ${requests} requests`);
          // The same requests and seeds for every shape of the round.
          const cpu0 = cpuSeconds(s.pid);
          const res = await runLoad({ port: s.port, apiKey: API_KEY, concurrency: c, requests, prompts, profile, seedBase, requestTimeoutMs: 600_000, shape });
          const cpu1 = cpuSeconds(s.pid);
          const cpu = cpu0 === null || cpu1 === null ? null : round(cpu1 - cpu0, 2);
          log(`  ${res.tok_s} tok/s, ${res.requests_ok} ok, ${res.requests_failed} failed, ${res.completion_tokens} tokens, server CPU ${cpu ?? '-'} s`);
          runs.push({ ...res, shape, round: r + 1, server_cpu_s: cpu });
        }
      }
      for (const shape of SHAPES) summaries.push(summarizeShape(runs.filter((x) => x.concurrency === c && x.shape === shape)));
    }
    interleaved = o.interleaved > 0 ? await interleavedSingleStream(m, s, prompts, profile, o.interleaved) : null;
  } finally {
    await s.stop();
  }
  const ratios = o.concurrency.flatMap((c) => {
    const at = (shape: RequestShape) => summaries.find((x) => x.concurrency === c && x.shape === shape)!;
    const cc = at('chat-completions');
    // Per round, each shape ran the same requests back to back: the median of those paired ratios is
    // what drift on a shared machine moves least.
    const perRound = (base: RequestShape) =>
      Array.from({ length: o.rounds }, (_, r) => {
        const pick = (shape: RequestShape) => runs.find((x) => x.concurrency === c && x.shape === shape && x.round === r + 1)!.tok_s;
        return pick('chat-completions') / pick(base);
      });
    return (['messages', 'prompt'] as const).map((base) => ({
      name: `chat-completions / /v1/chat (${base}) tok/s at c=${c}`,
      value: round(cc.tok_s / at(base).tok_s, 3),
      rounds: perRound(base).map((v) => round(v, 3)),
      median_of_rounds: round(summarize(perRound(base)).p50, 3),
      // Same rendered prompt, same seeds: the same tokens, so tok/s compares the same work.
      same_tokens: base === 'messages' ? cc.completion_tokens === at(base).completion_tokens : null,
      /** Server CPU per token, chat-completions over /v1/chat: above 1 costs more. */
      cpu_per_token_ratio:
        cc.server_cpu_ms_per_token === null || at(base).server_cpu_ms_per_token === null ? null : round(cc.server_cpu_ms_per_token / at(base).server_cpu_ms_per_token!, 3),
      target: `>= ${TARGET}`,
      met: summarize(perRound(base)).p50 >= TARGET,
    }));
  });
  return { model: m.name, model_dir: path.relative(REPO, m.dir), server_model_path: path.relative(REPO, m.serverModelPath), summaries, ratios, interleaved, runs };
}

/**
 * One stream, the shapes interleaved request by request: prompt k with seed
 * k goes out in every shape back to back (the first shape rotating), so
 * drift hits the shapes alike. Per shape: new tokens over the summed
 * request times (a single stream's tok/s); per request, chat-completions'
 * time over the other shapes' for the same prompt and seed.
 */
async function interleavedSingleStream(m: ModelSetup, s: ServerHandle, prompts: Prompt[], profile: SamplingProfile, n: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const per: Record<RequestShape, { ms: number[]; tokens: number[]; ttft: number[]; failed: number }> = {
    prompt: { ms: [], tokens: [], ttft: [], failed: 0 },
    messages: { ms: [], tokens: [], ttft: [], failed: 0 },
    'chat-completions': { ms: [], tokens: [], ttft: [], failed: 0 },
  };
  log(`${m.name} single stream, shapes interleaved: ${n} requests each`);
  try {
    for (let k = -1; k < n; k++) {
      const order = SHAPES.map((_, i) => SHAPES[(i + Math.max(k, 0)) % SHAPES.length]!);
      for (const shape of order) {
        const prompt = prompts[Math.max(k, 0) % prompts.length]!;
        const r = await streamChat({
          agent,
          port: s.port,
          apiKey: API_KEY,
          timeoutMs: 600_000,
          api: shape === 'chat-completions' ? 'openai' : 'contract',
          body: requestBody(shape, prompt.text, profile, 500_000_000 + Math.max(k, 0)),
        });
        if (k < 0) continue; // the first round warms every route up
        if (!r.ok) {
          per[shape].failed++;
          continue;
        }
        per[shape].ms.push(r.endMs - r.startMs);
        per[shape].tokens.push(r.completionTokens ?? r.tokenEvents);
        if (r.ttftMs !== undefined) per[shape].ttft.push(r.ttftMs);
      }
    }
  } finally {
    agent.destroy();
  }
  const shapes = SHAPES.map((shape) => {
    const x = per[shape];
    const seconds = x.ms.reduce((a, b) => a + b, 0) / 1000;
    return {
      shape,
      requests_ok: x.ms.length,
      requests_failed: x.failed,
      completion_tokens: x.tokens.reduce((a, b) => a + b, 0),
      tok_s: round(x.tokens.reduce((a, b) => a + b, 0) / seconds, 1),
      e2e_ms_p50: round(summarize(x.ms).p50, 1),
      ttft_ms_p50: round(summarize(x.ttft).p50, 1),
    };
  });
  const paired = (base: RequestShape) => {
    const a = per['chat-completions'];
    const b = per[base];
    const ratios: number[] = [];
    // Time per token, chat-completions over base, request by request (throughput ratio = its inverse).
    for (let i = 0; i < Math.min(a.ms.length, b.ms.length); i++) ratios.push(b.ms[i]! / b.tokens[i]! / (a.ms[i]! / a.tokens[i]!));
    const q = summarize(ratios);
    return { name: `chat-completions / /v1/chat (${base}) single-stream tok/s, per-request pairs`, median: round(q.p50, 3), mean: round(q.mean, 3), pairs: q.count, met: q.p50 >= TARGET };
  };
  return { requests_per_shape: n, shapes, ratios: [paired('messages'), paired('prompt')] };
}

// ---------------------------------------------------------------- template rendering

function timeLoop(iterations: number, fn: () => unknown): { mean_us: number; p50_us: number; p95_us: number } {
  const samples = new Float64Array(iterations);
  for (let i = 0; i < iterations; i++) {
    const t = performance.now();
    fn();
    samples[i] = (performance.now() - t) * 1000;
  }
  const s = summarize(samples);
  return { mean_us: round(s.mean, 1), p50_us: round(s.p50, 1), p95_us: round(s.p95, 1) };
}

/**
 * What rendering a conversation costs per request with SmolLM2's ChatML
 * template: transformers.js compiles a template once per tokenizer and keeps
 * it (its _compiled_template_cache), so a request pays the render and the
 * tokenization of the rendered text. Timed: the first render (compile
 * included), apply_chat_template to text, our renderChat (render and
 * encode, what a request runs), and encoding the same text alone.
 */
async function templateMicro(o: Options, prompt: string) {
  if (!fs.existsSync(path.join(SMOLLM2, 'tokenizer_config.json'))) return null;
  hfEnv.allowLocalModels = true;
  const ours = await Tokenizer.fromDirectory(SMOLLM2);
  const theirs = await AutoTokenizer.from_pretrained(SMOLLM2, { local_files_only: true });
  const conversations: Record<string, ChatMessage[]> = {
    'system + user (a 150-250-token benchmark prompt)': [
      { role: 'system', content: 'You are a helpful assistant who tells short stories.' },
      { role: 'user', content: prompt },
    ],
    'six turns': [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello! How can I help?' },
      { role: 'user', content: 'Tell me a story about a bear.' },
      { role: 'assistant', content: prompt },
      { role: 'user', content: 'Another one, please.' },
    ],
  };
  const first = performance.now();
  theirs.apply_chat_template(conversations['six turns']!, { tokenize: false, add_generation_prompt: true });
  const firstMs = performance.now() - first;
  const cases = Object.entries(conversations).map(([name, messages]) => {
    const text = ours.renderChat(messages).text;
    const n = o.templateIterations;
    // Warm-up: the JIT and the caches, as a server that has answered a few requests has them.
    for (let i = 0; i < 200; i++) ours.renderChat(messages);
    return {
      conversation: name,
      prompt_tokens: ours.renderChat(messages).ids.length,
      render_text: timeLoop(n, () => theirs.apply_chat_template(messages, { tokenize: false, add_generation_prompt: true })),
      render_and_encode: timeLoop(n, () => ours.renderChat(messages)),
      encode_only: timeLoop(n, () => ours.encodeRaw(text)),
    };
  });
  return { tokenizer: 'SmolLM2-135M-Instruct', first_render_ms_with_compile: round(firstMs, 2), iterations: o.templateIterations, cases };
}

// ---------------------------------------------------------------- report

function gitInfo() {
  const git = (args: string[]) => execFileSync('git', args, { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    return { commit: git(['rev-parse', 'HEAD']), dirty: git(['status', '--porcelain', '--untracked-files=no']) !== '' };
  } catch {
    return { commit: 'unknown', dirty: true };
  }
}

function machine() {
  const cpus = os.cpus();
  return {
    cpu_model: cpus[0]?.model ?? 'unknown',
    cpus: cpus.length,
    total_mem_gb: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    load_avg_at_start: os.loadavg().map((v) => round(v, 2)),
  };
}

function printModel(r: Awaited<ReturnType<typeof benchModel>>): void {
  const rows = r.summaries.map((x) => [
    x.shape,
    String(x.concurrency),
    x.tok_s.toFixed(0),
    x.tok_s_rounds.map((v) => v.toFixed(0)).join('/'),
    String(x.completion_tokens),
    x.server_cpu_ms_per_token === null ? '-' : x.server_cpu_ms_per_token.toFixed(3),
    x.ttft_ms_p50.toFixed(1),
    x.e2e_ms_p50.toFixed(0),
    x.itl_ms_mean.toFixed(2),
    x.prompt_tokens_mean.toFixed(1),
    String(x.requests_failed),
  ]);
  const head = ['shape', 'conc', 'tok/s', 'per round', 'tokens', 'CPU ms/tok', 'TTFT p50', 'e2e p50', 'ITL mean', 'prompt tok', 'errors'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ') + ' |';
  process.stdout.write(`\n${r.model}\n${line(head)}\n${rows.map(line).join('\n')}\n`);
  if (r.interleaved) {
    process.stdout.write(`  single stream, interleaved (${r.interleaved.requests_per_shape} requests per shape): ` +
      r.interleaved.shapes.map((x) => `${x.shape} ${x.tok_s} tok/s`).join(', ') + '\n');
    for (const q of r.interleaved.ratios) process.stdout.write(`  [${q.met ? 'met' : 'MISSED'}] ${q.name}: median ${q.median} (mean ${q.mean}, ${q.pairs} pairs)\n`);
  }
  for (const q of r.ratios) {
    process.stdout.write(
      `  [${q.met ? 'met' : 'MISSED'}] ${q.name}: median of rounds ${q.median_of_rounds} (rounds ${q.rounds.join(', ')}; pooled ${q.value}); ` +
        `server CPU per token ${q.cpu_per_token_ratio ?? '-'}x` +
        `${q.same_tokens === null ? '' : q.same_tokens ? ', same tokens' : ', TOKENS DIFFER'}\n`,
    );
  }
}

async function main(): Promise<void> {
  const o = parseCli();
  const date = new Date().toISOString().slice(0, 10);
  const m = machine();
  log(`${m.cpu_model} x${m.cpus}, load ${m.load_avg_at_start.join(' ')}; models ${o.models.join(',')}`);
  const results = [];
  for (const name of o.models) {
    const setup = await prepareModel(name, o);
    const r = await benchModel(setup, o);
    printModel(r);
    results.push(r);
  }
  const storyPrompt = (await loadPrompts(path.join(SMOLLM2), 1).catch(() => [] as Prompt[]))[0]?.text ?? 'Once upon a time, there was a bear.';
  const template = await templateMicro(o, storyPrompt);
  if (template) {
    process.stdout.write(`\nchat template (${template.tokenizer}), first render with compile ${template.first_render_ms_with_compile} ms; per request (µs, p50):\n`);
    for (const c of template.cases) {
      process.stdout.write(
        `  ${c.conversation} (${c.prompt_tokens} tokens): render ${c.render_text.p50_us}, render + encode ${c.render_and_encode.p50_us}, encode alone ${c.encode_only.p50_us}\n`,
      );
    }
  }
  const out = {
    date,
    bench: 'openai',
    machine: m,
    git: gitInfo(),
    config: {
      concurrency: o.concurrency,
      requests_per_client: o.requestsPerClient,
      rounds: o.rounds,
      max_new_tokens: o.maxNewTokens,
      temperature: o.temperature,
      top_p: 0.95,
      top_k: 0,
      stream: true,
      prompts: o.promptCount,
      shapes: SHAPES,
      target: `chat-completions tok/s >= ${TARGET} x /v1/chat tok/s`,
      server_env: { ORT_INTRA_OP_THREADS: process.env.ORT_INTRA_OP_THREADS ?? null, MAX_BATCH_SIZE: process.env.MAX_BATCH_SIZE ?? null },
    },
    models: results,
    template,
  };
  if (o.save) {
    fs.mkdirSync(o.outDir, { recursive: true });
    const file = path.join(o.outDir, `${date}-openai-${o.models.join("-")}-c${o.concurrency.join("_")}.json`);
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(out, null, 2) + '\n');
    fs.renameSync(`${file}.tmp`, file);
    log(`wrote ${path.relative(REPO, file)}`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
