/**
 * Soak (issue 15): mixed traffic at concurrency 16 for a long time — REST
 * chat (sampled and greedy, some answered by the cache), REST streams,
 * GraphQL chat and reads, OpenAI chat completions, dataset listing — and a
 * small batch evaluation started every minute. Every 5 s it reads the
 * server's /metrics: resident memory, and the event loop's delay as
 * perf_hooks.monitorEventLoopDelay measures it (prom-client's
 * nodejs_eventloop_lag_* gauges, reset at each scrape, so each sample is
 * that window's). Reports errors, RSS growth after warm-up (target < 10%),
 * event-loop p99 (target < 50 ms), throughput over time; writes
 * bench/results/<date>-soak.json and a PNG of the three series
 * (drawn by Debian's chromium through playwright-core).
 *
 *   npx tsx bench/soak.ts [--minutes 30] [--concurrency 16] [--warmup 5]
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { authHeaders, postJson, REPO, startServer } from '../test/helpers/server.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    concurrency: { type: 'string', default: '16' },
    warmup: { type: 'string', default: '5' },
    // Recompute the summary and redraw the PNG from a results file's samples (no server, no traffic).
    replot: { type: 'string' },
  },
});
const MINUTES = Number(values.minutes);
const C = Number(values.concurrency);
const WARMUP_MIN = Math.min(Number(values.warmup), MINUTES / 2);
const SAMPLE_MS = 5000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PROMPTS = ['Once upon a time', "Lily's mom said", 'One day, a big bear', 'Tom had a red ball', 'The sun was hot', 'Ben and his dog'];
const pick = <T>(xs: readonly T[]) => xs[Math.floor(Math.random() * xs.length)]!;

interface Sample {
  t: number;
  rssMb: number;
  loopP99Ms: number;
  loopMaxMs: number;
  requests: number;
  errors: number;
  tokens: number;
}

/** What a run measured besides its samples (and what a results file holds, for --replot). */
interface RunSummary {
  date: string;
  commit: string;
  minutes: number;
  concurrency: number;
  requests: number;
  errors: number;
  [key: string]: unknown;
}
let summaryBase: RunSummary;
let samples: Sample[] = [];
if (values.replot) {
  const old = JSON.parse(fs.readFileSync(values.replot, 'utf8'));
  samples = old.samples;
  const { samples: _s, rss: _r, eventLoop: _e, ...rest } = old;
  summaryBase = rest;
} else {
  // The code under test is what the server loaded at its start.
  const startCommit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
  const server = await startServer({ RATE_LIMIT_PER_MINUTE: '0', ORT_INTRA_OP_THREADS: '1' });
  const url = server.url;
  const model = ((await (await fetch(`${url}/v1/models`, { headers: authHeaders })).json()) as any).data[0].id as string;
  const errors = new Map<string, number>();
  let requests = 0;
  let failures = 0;
  let tokens = 0;
  const fail = (kind: string, what: string) => {
    failures++;
    const key = `${kind}: ${what.slice(0, 120)}`;
    errors.set(key, (errors.get(key) ?? 0) + 1);
  };

  /** One request of a kind drawn by weight; counts it, its tokens, and any answer that is not a success. */
  const KINDS: Array<[string, number, () => Promise<void>]> = [
    ['chat', 4, async () => {
      const r = await postJson(`${url}/v1/chat`, { prompt: pick(PROMPTS), max_new_tokens: 48, temperature: 0.8 });
      if (r.status !== 200) return fail('chat', `${r.status} ${r.text}`);
      tokens += r.json.completion_tokens;
    }],
    ['chat-greedy', 2, async () => {
      const r = await postJson(`${url}/v1/chat`, { prompt: pick(PROMPTS), max_new_tokens: 32, temperature: 0 });
      if (r.status !== 200) return fail('chat-greedy', `${r.status} ${r.text}`);
      tokens += r.json.completion_tokens;
    }],
    ['stream', 3, async () => {
      const res = await fetch(`${url}/v1/chat`, { method: 'POST', headers: authHeaders, body: JSON.stringify({ prompt: pick(PROMPTS), max_new_tokens: 48, temperature: 0.8, stream: true }) });
      const text = await res.text();
      if (res.status !== 200 || !text.includes('event: done')) return fail('stream', `${res.status} ${text.slice(-200)}`);
      tokens += (text.match(/event: token/g) ?? []).length;
    }],
    ['graphql-chat', 2, async () => {
      const r = await postJson(`${url}/graphql`, { query: 'mutation($i: ChatInput!) { chat(input: $i) { response completionTokens } }', variables: { i: { prompt: pick(PROMPTS), maxNewTokens: 32, temperature: 0.7 } } });
      if (r.status !== 200 || r.json.errors) return fail('graphql-chat', `${r.status} ${r.text}`);
      tokens += r.json.data.chat.completionTokens;
    }],
    ['graphql-read', 2, async () => {
      const r = await postJson(`${url}/graphql`, { query: '{ health { status } metrics { uptimeS rateLimitRejections } datasets(first: 10) { nodes { datasetId recordCount } } }' });
      if (r.status !== 200 || r.json.errors) fail('graphql-read', `${r.status} ${r.text}`);
    }],
    ['openai', 2, async () => {
      const r = await postJson(`${url}/v1/chat/completions`, { model, messages: [{ role: 'user', content: pick(PROMPTS) }], max_tokens: 32 });
      if (r.status !== 200) return fail('openai', `${r.status} ${r.text}`);
      tokens += r.json.usage.completion_tokens;
    }],
    ['datasets', 1, async () => {
      const r = await fetch(`${url}/v1/datasets?limit=20`, { headers: authHeaders });
      if (r.status !== 200) fail('datasets', `${r.status} ${await r.text()}`);
      else await r.arrayBuffer();
    }],
  ];
  const totalWeight = KINDS.reduce((a, k) => a + k[1], 0);
  const drawKind = () => {
    let x = Math.random() * totalWeight;
    for (const k of KINDS) if ((x -= k[1]) < 0) return k;
    return KINDS[0]!;
  };

  const endAt = Date.now() + MINUTES * 60_000;
  const startedAt = Date.now();
  async function worker(): Promise<void> {
    while (Date.now() < endAt) {
      const [kind, , run] = drawKind();
      try {
        await run();
      } catch (err) {
        fail(kind, String(err));
      }
      requests++;
    }
  }

  /** A small batch evaluation every minute. */
  const runs: Array<{ id: string; status?: string }> = [];
  async function batches(): Promise<void> {
    let n = 0;
    while (Date.now() < endAt) {
      const records = Array.from({ length: 20 }, (_, i) => ({ record_id: `r${i}`, input: { prompt: pick(PROMPTS) }, reference: { answer: 'there was a little girl' } }));
      const ds = await postJson(`${url}/v1/datasets`, { name: `soak ${n++}`, type: 'eval_set', records });
      if (ds.status !== 201) fail('batch-upload', `${ds.status} ${ds.text}`);
      else {
        const start = await postJson(`${url}/v1/batch-evals`, { dataset_id: ds.json.dataset_id, criteria: ['accuracy'], max_new_tokens: 16, concurrency: 4 });
        if (start.status !== 202) fail('batch-start', `${start.status} ${start.text}`);
        else runs.push({ id: start.json.batch_eval_id });
      }
      await sleep(60_000);
    }
  }

  const metric = (text: string, name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN);
  async function sampler(): Promise<void> {
    let lastReq = 0;
    let lastErr = 0;
    let lastTok = 0;
    while (Date.now() < endAt) {
      await sleep(SAMPLE_MS);
      // The helper keeps every log line it reads; a soak would hold them all.
      server.logs.length = 0;
      const text = await (await fetch(`${url}/v1/metrics?format=prometheus`, { headers: authHeaders })).text();
      samples.push({
        t: Math.round((Date.now() - startedAt) / 1000),
        rssMb: Math.round(metric(text, 'process_resident_memory_bytes') / 1e5) / 10,
        loopP99Ms: Math.round(metric(text, 'nodejs_eventloop_lag_p99_seconds') * 1e4) / 10,
        loopMaxMs: Math.round(metric(text, 'nodejs_eventloop_lag_max_seconds') * 1e4) / 10,
        requests: requests - lastReq,
        errors: failures - lastErr,
        tokens: tokens - lastTok,
      });
      lastReq = requests;
      lastErr = failures;
      lastTok = tokens;
    }
  }

  console.log(`soak: ${MINUTES} min at c=${C} against ${url}`);
  await Promise.all([...Array.from({ length: C }, worker), batches(), sampler()]);
  for (const r of runs) r.status = ((await (await fetch(`${url}/v1/batch-evals/${r.id}`, { headers: authHeaders })).json()) as any).status;
  const exitCode = server.proc.exitCode;
  await server.stop();
  summaryBase = {
    date: new Date().toISOString(),
    commit: startCommit,
    machine: `${os.cpus().length} cores, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} at the end`,
    minutes: MINUTES,
    concurrency: C,
    requests,
    errors: failures,
    errorKinds: Object.fromEntries(errors),
    tokens,
    batchRuns: { started: runs.length, byStatus: runs.reduce<Record<string, number>>((m, r) => ((m[r.status ?? '?'] = (m[r.status ?? '?'] ?? 0) + 1), m), {}) },
    serverExitedDuringSoak: exitCode !== null,
    throughput: { requestsPerMinute: Math.round(requests / MINUTES), tokensPerSecond: Math.round(tokens / (MINUTES * 60)) },
  };
}

/**
 * RSS swings with garbage collection (a sawtooth of ±100 MB here), so growth
 * compares like with like: the lowest and the median RSS of the first five
 * minutes after warm-up against those of the last five. The event loop: the
 * quantiles of the 5 s windows' p99 after warm-up, and of the last third
 * (on a shared machine, the other work's load moves them).
 */
const totalS = samples.at(-1)?.t ?? 0;
const after = samples.filter((s) => s.t >= WARMUP_MIN * 60);
const firstSpan = after.filter((s) => s.t < WARMUP_MIN * 60 + 300);
const lastSpan = samples.filter((s) => s.t >= totalS - 300);
const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
const pct = (a: number, b: number) => Math.round(((b - a) / a) * 1000) / 10;
const rss = (xs: Sample[]) => ({ minMb: Math.min(...xs.map((s) => s.rssMb)), medianMb: q(xs.map((s) => s.rssMb), 0.5), maxMb: Math.max(...xs.map((s) => s.rssMb)) });
const rssFirst = rss(firstSpan);
const rssLast = rss(lastSpan);
const lastThird = samples.filter((s) => s.t >= (totalS * 2) / 3).map((s) => s.loopP99Ms);
const summary = {
  ...summaryBase,
  rss: {
    warmupMinutes: WARMUP_MIN,
    firstFiveMinutesAfterWarmup: rssFirst,
    lastFiveMinutes: rssLast,
    growthOfMinimumPct: pct(rssFirst.minMb, rssLast.minMb),
    growthOfMedianPct: pct(rssFirst.medianMb, rssLast.medianMb),
    target: 'growth < 10% after warm-up',
  },
  eventLoop: {
    windowP99AfterWarmupMs: { median: q(after.map((s) => s.loopP99Ms), 0.5), p90: q(after.map((s) => s.loopP99Ms), 0.9), p99: q(after.map((s) => s.loopP99Ms), 0.99) },
    windowP99LastThirdMs: { median: q(lastThird, 0.5), p90: q(lastThird, 0.9), p99: q(lastThird, 0.99) },
    worstWindowMaxMs: Math.max(...after.map((s) => s.loopMaxMs)),
    target: 'p99 < 50 ms',
  },
  samples,
};
const date = summary.date.slice(0, 10);
const commit = summary.commit;
const requests = summary.requests;
const failures = summary.errors;
const outDir = path.join(REPO, 'bench/results');
fs.writeFileSync(path.join(outDir, `${date}-soak.json`), `${JSON.stringify(summary, null, 2)}\n`);
console.log(JSON.stringify({ ...summary, samples: `${samples.length} samples` }, null, 2));

/** Three stacked line charts as SVG, screenshotted to PNG. */
function chart(title: string, ys: number[], color: string, unit: string, y0 = 0): string {
  const W = 900;
  const H = 200;
  const pad = 50;
  const xs = samples.map((s) => s.t);
  const xMax = Math.max(1, ...xs);
  const yMax = Math.max(1e-9, ...ys) * 1.1;
  const yMin = Math.min(y0, ...ys);
  const X = (x: number) => pad + ((W - 2 * pad) * x) / xMax;
  const Y = (y: number) => H - 30 - ((H - 50) * (y - yMin)) / (yMax - yMin);
  const points = ys.map((y, i) => `${X(xs[i]!).toFixed(1)},${Y(y).toFixed(1)}`).join(' ');
  const warm = X(WARMUP_MIN * 60);
  const ticks = [yMin, (yMin + yMax) / 2, yMax].map((v) => `<text x="${pad - 6}" y="${Y(v) + 4}" text-anchor="end" font-size="11">${v.toFixed(v < 10 ? 1 : 0)}</text>`).join('');
  return `<svg width="${W}" height="${H}" xmlns="http://www.w3.org/2000/svg"><text x="${pad}" y="16" font-size="14" font-weight="bold">${title} (${unit})</text>
<line x1="${pad}" y1="${H - 30}" x2="${W - pad}" y2="${H - 30}" stroke="#999"/><line x1="${pad}" y1="20" x2="${pad}" y2="${H - 30}" stroke="#999"/>${ticks}
<line x1="${warm}" y1="20" x2="${warm}" y2="${H - 30}" stroke="#bbb" stroke-dasharray="4 4"/><text x="${warm + 4}" y="30" font-size="11" fill="#777">warm-up ends</text>
<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${points}"/>
<text x="${W - pad}" y="${H - 10}" text-anchor="end" font-size="11">seconds since start (max ${xMax})</text></svg>`;
}
const html = `<!doctype html><html><body style="font-family:sans-serif;margin:16px;background:#fff">
<h2 style="margin:0 0 8px">Soak ${date} (${commit}): ${summary.minutes} min, c=${summary.concurrency}, ${requests} requests, ${failures} errors; RSS (lowest, first vs last 5 min after warm-up) ${summary.rss.growthOfMinimumPct > 0 ? '+' : ''}${summary.rss.growthOfMinimumPct}%, median ${summary.rss.growthOfMedianPct > 0 ? '+' : ''}${summary.rss.growthOfMedianPct}%; event-loop p99 per 5 s window: median ${summary.eventLoop.windowP99AfterWarmupMs.median} ms, p99 ${summary.eventLoop.windowP99AfterWarmupMs.p99} ms</h2>
${chart('Resident memory', samples.map((s) => s.rssMb), '#1f77b4', 'MB', Math.min(...samples.map((s) => s.rssMb)) * 0.9)}
${chart('Event-loop delay p99 per 5 s window', samples.map((s) => s.loopP99Ms), '#d62728', 'ms')}
${chart('Requests per 5 s window', samples.map((s) => s.requests), '#2ca02c', 'requests')}
${chart('Generated tokens per second', samples.map((s) => s.tokens / (SAMPLE_MS / 1000)), '#9467bd', 'tokens/s')}
</body></html>`;
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-background-networking'] });
try {
  const page = await browser.newPage({ viewport: { width: 940, height: 980 } });
  await page.setContent(html);
  await page.screenshot({ path: path.join(outDir, `${date}-soak.png`), fullPage: true });
} finally {
  await browser.close();
}
console.log(`wrote bench/results/${date}-soak.json and .png`);
