/**
 * `npm run bench:embeddings`: embedding throughput of the real server with a
 * MiniLM-shaped encoder (random weights, all-MiniLM-L6-v2's configuration and
 * tokenizer), in sentences per second for 32-token sentences: single-sentence
 * requests from 1 and from 16 closed-loop clients, and 32-sentence requests;
 * beside transformers.js's own pipeline('feature-extraction') called in a
 * loop on the same model directory, in the same run. Many short rounds
 * alternate the modes, and each ratio is taken between runs measured one
 * after the other in the same round, so load from other work on a shared
 * machine moves both sides alike; medians over rounds are reported. Speed is
 * measured here, never asserted in a test. With --compare-spinning a second
 * server runs with EMBEDDING_ORT_SPINNING=1 (ONNX Runtime's intra-op
 * threads spinning, the setting before it became an option), its modes
 * measured right after the default server's in every round, in alternating
 * order.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AutoTokenizer, pipeline } from '@huggingface/transformers';
import { cachedRandomEncoder } from '../src/engine/encoder-dir.js';
import { sleep, startServer, type ServerHandle } from './lib/proc.js';
import { round, summarize } from './lib/stats.js';

const REPO = path.resolve(import.meta.dirname, '..');
const SHARED = path.resolve(REPO, '../shared/models');
const API_KEY = 'bench-key';

const USAGE = `npm run bench:embeddings -- [options]
  --duration S          seconds per measured run (default 3)
  --rounds N            rounds of all modes, alternated; ratios are taken within a round, medians reported (default 10)
  --concurrency N       clients of the concurrent single-sentence run (default 16)
  --batch N             sentences per batched request and per pipeline call (default 32)
  --tokens N            tokens per sentence, [CLS] and [SEP] included (default 32)
  --sentences N         distinct sentences (default 512)
  --threads N           ONNX Runtime threads, server and pipeline alike (default: cores)
  --max-wait-ms N       EMBEDDING_MAX_WAIT_MS of the server (default: the server's)
  --max-batch-size N    EMBEDDING_MAX_BATCH_SIZE of the server (default: the server's)
  --compare-spinning    also a server with EMBEDDING_ORT_SPINNING=1, alternated with the default one
  --cache-dir DIR       where the model is built (default .model-cache/bench)
  --out-dir DIR         where results JSON goes (default bench/results)
  --no-save             print only`;

function fail(msg: string): never {
  process.stderr.write(`error: ${msg}\nusage: ${USAGE}\n`);
  process.exit(2);
}

function parseCli() {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        duration: { type: 'string' },
        rounds: { type: 'string' },
        concurrency: { type: 'string' },
        batch: { type: 'string' },
        tokens: { type: 'string' },
        sentences: { type: 'string' },
        threads: { type: 'string' },
        'max-wait-ms': { type: 'string' },
        'max-batch-size': { type: 'string' },
        'compare-spinning': { type: 'boolean' },
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
  const int = (k: string, def: number | undefined, min: number, max: number): number | undefined => {
    const v = values[k] as string | undefined;
    if (v === undefined) return def;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) fail(`--${k} must be an integer ${min}..${max}, got "${v}"`);
    return Number(v);
  };
  return {
    durationS: int('duration', 3, 1, 3600)!,
    rounds: int('rounds', 10, 1, 1000)!,
    concurrency: int('concurrency', 16, 2, 256)!,
    batch: int('batch', 32, 2, 256)!,
    tokens: int('tokens', 32, 4, 512)!,
    sentences: int('sentences', 512, 16, 100_000)!,
    threads: int('threads', Math.max(1, os.availableParallelism()), 1, 256)!,
    maxWaitMs: int('max-wait-ms', undefined, 0, 10_000),
    maxBatchSize: int('max-batch-size', undefined, 1, 1024),
    compareSpinning: values['compare-spinning'] === true,
    cacheDir: path.resolve(REPO, (values['cache-dir'] as string | undefined) ?? '.model-cache/bench'),
    outDir: path.resolve(REPO, (values['out-dir'] as string | undefined) ?? 'bench/results'),
    save: !values['no-save'],
  };
}

type Options = ReturnType<typeof parseCli>;

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ---------------------------------------------------------------- inputs

const WORDS = (
  'the a small old river town house garden road light rain morning evening child teacher friend dog cat bird ' +
  'walked found opened watched carried painted quiet bright green heavy early late near under across behind ' +
  'story letter window bridge market station winter summer music paper table kitchen mountain forest village'
).split(' ');

/** Distinct sentences of exactly `tokens` tokens each (special tokens included), from a seeded word stream. */
async function makeSentences(dir: string, count: number, tokens: number): Promise<string[]> {
  const tokenizer = await AutoTokenizer.from_pretrained(dir, { local_files_only: true });
  let state = 12345;
  const rand = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const out = new Set<string>();
  while (out.size < count) {
    const words: string[] = [];
    let len = 2;
    while (len < tokens) {
      const next = [...words, WORDS[Math.floor(rand() * WORDS.length)]!];
      const n = tokenizer.encode(next.join(' ')).length;
      if (n > tokens) break;
      words.splice(0, words.length, ...next);
      len = n;
    }
    if (len === tokens) out.add(words.join(' '));
  }
  return [...out];
}

// ---------------------------------------------------------------- clients

interface RunResult {
  mode: string;
  round: number;
  concurrency: number;
  inputs_per_request: number;
  requests: number;
  errors: number;
  seconds: number;
  sentences_per_s: number;
  latency_ms: { p50: number; p95: number } | null;
  /** Server side: inputs per batch the embedding batcher ran (mean), from /v1/metrics. */
  mean_batch_size?: number;
  /** The machine's 1-minute load average when the run ended: other work on a shared machine shows here. */
  load_avg_1m?: number;
}

function post(agent: http.Agent, port: number, body: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        agent,
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/v1/embeddings',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-api-key': API_KEY },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

async function embeddingFigures(url: string): Promise<{ inputs: number; batches: number }> {
  const r = await fetch(`${url}/v1/metrics`, { headers: { 'x-api-key': API_KEY } });
  const e = ((await r.json()) as { embeddings: { inputs: number; batches: number } }).embeddings;
  return { inputs: e.inputs, batches: e.batches };
}

/** Closed-loop clients against the server for `seconds`; each request embeds `perRequest` sentences. */
async function serverRun(s: ServerHandle, sentences: string[], o: Options, mode: string, roundNo: number, clients: number, perRequest: number): Promise<RunResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  let next = 0;
  const body = () => {
    const items = Array.from({ length: perRequest }, () => sentences[next++ % sentences.length]!);
    return JSON.stringify({ input: perRequest === 1 ? items[0] : items });
  };
  const loop = async (until: number, latencies?: number[]) => {
    let ok = 0;
    let errors = 0;
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (performance.now() < until) {
          const t = performance.now();
          const status = await post(agent, s.port, body());
          if (status === 200) {
            ok++;
            latencies?.push(performance.now() - t);
          } else errors++;
        }
      }),
    );
    return { ok, errors };
  };
  await loop(performance.now() + warmUpMs(roundNo)); // warm-up
  const before = await embeddingFigures(s.url);
  const latencies: number[] = [];
  const started = performance.now();
  const { ok, errors } = await loop(started + o.durationS * 1000, latencies);
  const seconds = (performance.now() - started) / 1000;
  const after = await embeddingFigures(s.url);
  agent.destroy();
  const lat = summarize(latencies);
  return {
    mode,
    round: roundNo,
    concurrency: clients,
    inputs_per_request: perRequest,
    requests: ok,
    errors,
    seconds: round3(seconds),
    sentences_per_s: round((ok * perRequest) / seconds, 1),
    latency_ms: ok ? { p50: round(lat.p50, 2), p95: round(lat.p95, 2) } : null,
    mean_batch_size: after.batches > before.batches ? round((after.inputs - before.inputs) / (after.batches - before.batches), 2) : 0,
  };
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;

/** A long warm-up before a mode's first run; later rounds only re-establish the steady state. */
const warmUpMs = (roundNo: number) => (roundNo === 1 ? 1500 : 300);

type Extractor = (texts: string | string[], opts: { pooling: 'mean'; normalize: boolean }) => Promise<unknown>;

/** transformers.js's pipeline called in a loop, `perCall` sentences a call, for `seconds`. */
async function pipelineRun(extractor: Extractor, sentences: string[], o: Options, roundNo: number, perCall: number): Promise<RunResult> {
  let next = 0;
  const call = () => {
    const items = Array.from({ length: perCall }, () => sentences[next++ % sentences.length]!);
    return extractor(perCall === 1 ? items[0]! : items, { pooling: 'mean', normalize: true });
  };
  const warmUntil = performance.now() + warmUpMs(roundNo);
  while (performance.now() < warmUntil) await call();
  const latencies: number[] = [];
  const started = performance.now();
  const until = started + o.durationS * 1000;
  let calls = 0;
  while (performance.now() < until) {
    const t = performance.now();
    await call();
    latencies.push(performance.now() - t);
    calls++;
  }
  const seconds = (performance.now() - started) / 1000;
  const lat = summarize(latencies);
  return {
    mode: perCall === 1 ? 'pipeline single' : `pipeline ${perCall}-input`,
    round: roundNo,
    concurrency: 1,
    inputs_per_request: perCall,
    requests: calls,
    errors: 0,
    seconds: round3(seconds),
    sentences_per_s: round((calls * perCall) / seconds, 1),
    latency_ms: { p50: round(lat.p50, 2), p95: round(lat.p95, 2) },
  };
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
    available_parallelism: os.availableParallelism(),
    total_mem_gb: round(os.totalmem() / 2 ** 30, 1),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    load_avg_at_start: os.loadavg().map((v) => round(v, 2)),
  };
}

/** Per mode, the run of the median round by throughput. */
function medians(runs: RunResult[]): RunResult[] {
  const byMode = new Map<string, RunResult[]>();
  for (const r of runs) byMode.set(r.mode, [...(byMode.get(r.mode) ?? []), r]);
  return [...byMode.values()].map((rs) => [...rs].sort((a, b) => a.sentences_per_s - b.sentences_per_s)[Math.floor((rs.length - 1) / 2)]!);
}

async function main(): Promise<void> {
  const o = parseCli();
  const source = path.join(SHARED, 'all-MiniLM-L6-v2');
  const stories = path.join(SHARED, 'stories260K/stories260K.bin');
  for (const f of [path.join(source, 'tokenizer.json'), stories]) if (!fs.existsSync(f)) fail(`${f} not found (../shared/models)`);
  const startedAt = machine();

  log('model: random-weight BERT of all-MiniLM-L6-v2\'s configuration');
  const t0 = performance.now();
  const dir = cachedRandomEncoder({ sourceDir: source, cacheRoot: path.join(o.cacheDir, 'encoders'), seed: 1 });
  const buildSeconds = (performance.now() - t0) / 1000;
  const sentences = await makeSentences(dir, o.sentences, o.tokens);
  log(`${sentences.length} sentences of ${o.tokens} tokens; e.g. "${sentences[0]}"`);

  const env: Record<string, string | undefined> = {
    ...process.env,
    PORT: '0',
    HOST: '127.0.0.1',
    API_KEY,
    API_KEYS: undefined,
    RATE_LIMIT_PER_MINUTE: '0',
    // The harness finds the port in the info-level "listening on" line.
    LOG_LEVEL: 'info',
    HF_HUB_OFFLINE: '1',
    MODEL_PATH: stories,
    MODEL_CACHE_DIR: path.join(o.cacheDir, 'server-cache'),
    // A store of its own: the benchmark writes nothing worth keeping, and must not trip over ./data.
    DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'bench-embeddings-data-')),
    EMBEDDING_MODEL_PATH: dir,
    ORT_INTRA_OP_THREADS: String(o.threads),
    ...(o.maxWaitMs === undefined ? {} : { EMBEDDING_MAX_WAIT_MS: String(o.maxWaitMs) }),
    ...(o.maxBatchSize === undefined ? {} : { EMBEDDING_MAX_BATCH_SIZE: String(o.maxBatchSize) }),
  };
  const server = await startServer({ name: 'server', cwd: REPO, entry: 'src/main.ts', env, timeoutMs: 5 * 60_000 });
  const spinning = o.compareSpinning
    ? await startServer({
        name: 'server-spinning',
        cwd: REPO,
        entry: 'src/main.ts',
        env: { ...env, DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'bench-embeddings-data-')), EMBEDDING_ORT_SPINNING: '1' },
        timeoutMs: 5 * 60_000,
      }).catch(async (err: unknown) => {
        await server.stop();
        throw err;
      })
    : null;
  const runs: RunResult[] = [];
  try {
    for (const s of [server, ...(spinning ? [spinning] : [])]) {
      for (;;) {
        const h = (await (await fetch(`${s.url}/v1/health`)).json()) as { embedding: { state: string; reason: string | null } };
        if (h.embedding.state === 'ready') break;
        if (h.embedding.state === 'failed') throw new Error(`embedding model failed to load: ${h.embedding.reason}`);
        await sleep(100);
      }
    }
    const extractor = (await pipeline('feature-extraction', dir, {
      local_files_only: true,
      dtype: 'fp32',
      session_options: { intraOpNumThreads: o.threads, interOpNumThreads: 1 },
    })) as unknown as Extractor & { dispose(): Promise<void> };
    for (let r = 1; r <= o.rounds; r++) {
      log(`round ${r}: load average ${os.loadavg().map((v) => round(v, 2)).join(' ')}`);
      const show = (x: RunResult) => {
        x.load_avg_1m = round(os.loadavg()[0]!, 2);
        runs.push(x);
        log(`round ${r} ${x.mode.padEnd(24)} ${String(x.sentences_per_s).padStart(8)} sentences/s` + (x.mean_batch_size ? `  (mean batch ${x.mean_batch_size})` : '') + (x.errors ? `  ${x.errors} errors` : ''));
      };
      // Each server mode, and right after or before it (alternately) the same mode on the spinning server.
      const serverModes: Array<[string, number, number]> = [
        ['server single c=1', 1, 1],
        [`server single c=${o.concurrency}`, o.concurrency, 1],
        [`server ${o.batch}-input c=1`, 1, o.batch],
      ];
      for (const [mode, clients, perRequest] of serverModes) {
        const pair: Array<[ServerHandle, string]> = [[server, mode], ...(spinning ? [[spinning, `${mode} spinning`] as [ServerHandle, string]] : [])];
        if (r % 2 === 0) pair.reverse();
        for (const [s, m] of pair) show(await serverRun(s, sentences, o, m, r, clients, perRequest));
      }
      show(await pipelineRun(extractor, sentences, o, r, o.batch));
      show(await pipelineRun(extractor, sentences, o, r, 1));
    }
    await extractor.dispose();
  } finally {
    await server.stop();
    await spinning?.stop();
  }

  const med = medians(runs);
  // Each ratio is taken within a round, between runs measured one after the other, then the median
  // over rounds: load from other work on a shared machine moves both sides of a ratio alike.
  const ratio = (a: string, b: string) => {
    const per = Array.from({ length: o.rounds }, (_, i) => {
      const x = runs.find((r) => r.round === i + 1 && r.mode === a)?.sentences_per_s ?? Number.NaN;
      const y = runs.find((r) => r.round === i + 1 && r.mode === b)?.sentences_per_s ?? Number.NaN;
      return x / y;
    }).sort((p, q) => p - q);
    return { median: per[Math.floor((per.length - 1) / 2)]!, rounds: per.map((v) => round(v, 3)) };
  };
  const scaling = ratio(`server single c=${o.concurrency}`, 'server single c=1');
  const parity = ratio(`server ${o.batch}-input c=1`, `pipeline ${o.batch}-input`);
  const ceiling = ratio(`pipeline ${o.batch}-input`, 'pipeline single');
  const targets = [
    { target: `server single c=${o.concurrency} >= 3x server single c=1`, ratio: round(scaling.median, 2), per_round: scaling.rounds, wanted: 3, met: scaling.median >= 3 },
    { target: `server ${o.batch}-input within 10% of pipeline ${o.batch}-input`, ratio: round(parity.median, 3), per_round: parity.rounds, wanted: 0.9, met: parity.median >= 0.9 },
  ];
  // What batching can win at all on this machine: the pipeline's own batched over single-sentence rate.
  const batchingCeiling = { ratio: round(ceiling.median, 2), per_round: ceiling.rounds };
  // The default server (no spinning) over the spinning one, mode by mode.
  const spinningRatios = o.compareSpinning
    ? [`server single c=1`, `server single c=${o.concurrency}`, `server ${o.batch}-input c=1`].map((mode) => {
        const q = ratio(mode, `${mode} spinning`);
        return { mode, default_over_spinning: round(q.median, 3), per_round: q.rounds };
      })
    : null;
  process.stdout.write(
    `\nmedian of ${o.rounds} rounds, ${o.durationS} s each, ${o.tokens}-token sentences, ${o.threads} threads:\n` +
      med.map((m) => `  ${m.mode.padEnd(26)} ${String(m.sentences_per_s).padStart(8)} sentences/s  p50 ${m.latency_ms?.p50 ?? '-'} ms${m.mean_batch_size ? `  mean batch ${m.mean_batch_size}` : ''}`).join('\n') +
      '\n' +
      targets.map((t) => `  ${t.met ? 'MET   ' : 'MISSED'} ${t.target}: ${t.ratio} (wanted ${t.wanted}; rounds ${t.per_round.join(', ')})`).join('\n') +
      `\n  batching ceiling (pipeline ${o.batch}-input / pipeline single): ${batchingCeiling.ratio} (rounds ${batchingCeiling.per_round.join(', ')})\n` +
      (spinningRatios ?? []).map((x) => `  ${x.mode}: no spinning / spinning ${x.default_over_spinning} (rounds ${x.per_round.join(', ')})\n`).join(''),
  );
  if (!o.save) return;
  const date = new Date().toISOString().slice(0, 10);
  const data = {
    date,
    bench: 'embeddings',
    git: gitInfo(),
    machine: startedAt,
    model: { kind: "random-weight BERT, all-MiniLM-L6-v2's config and tokenizer", dir: path.relative(REPO, dir), build_seconds: round(buildSeconds, 2) },
    config: {
      duration_s: o.durationS,
      rounds: o.rounds,
      tokens_per_sentence: o.tokens,
      sentences: sentences.length,
      concurrency: o.concurrency,
      batch: o.batch,
      threads: o.threads,
      server_env: { EMBEDDING_MAX_WAIT_MS: o.maxWaitMs ?? null, EMBEDDING_MAX_BATCH_SIZE: o.maxBatchSize ?? null },
      compare_spinning: o.compareSpinning,
    },
    medians: med,
    targets,
    batching_ceiling: batchingCeiling,
    ...(spinningRatios ? { spinning: spinningRatios } : {}),
    runs,
  };
  fs.mkdirSync(o.outDir, { recursive: true });
  // A comparison run does not overwrite the day's plain one.
  const file = path.join(o.outDir, `${date}-embeddings${o.compareSpinning ? '-spinning' : ''}.json`);
  fs.writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
  log(`wrote ${path.relative(REPO, file)}`);
}

void main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
