/**
 * The event loop under a large upload (issue 15): a 50,000-record dataset
 * uploaded (JSON and JSONL) while a client streams tokens. Reports the
 * server's event-loop delay in the upload's window (perf_hooks
 * monitorEventLoopDelay, as prom-client's nodejs_eventloop_lag_* gauges,
 * which reset at each scrape), the longest gap between streamed tokens the
 * client saw, and the upload's own time. Writes bench/results/<date>-event-loop.json.
 *
 *   npx tsx bench/event-loop.ts [--records 50000] [--rounds 3]
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { authHeaders, REPO, startServer } from '../test/helpers/server.js';

const { values } = parseArgs({ options: { records: { type: 'string', default: '50000' }, rounds: { type: 'string', default: '3' } } });
const N = Number(values.records);
const ROUNDS = Number(values.rounds);
const server = await startServer({ RATE_LIMIT_PER_MINUTE: '0', ORT_INTRA_OP_THREADS: '1' });
const url = server.url;
const metric = (text: string, name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN);
const scrape = async () => {
  const text = await (await fetch(`${url}/v1/metrics?format=prometheus`, { headers: authHeaders })).text();
  return { p99Ms: metric(text, 'nodejs_eventloop_lag_p99_seconds') * 1000, maxMs: metric(text, 'nodejs_eventloop_lag_max_seconds') * 1000 };
};
const records = Array.from({ length: N }, (_, i) => ({ record_id: `r${i}`, input: { prompt: `Once upon a time there was a girl number ${i} who liked to play in the park.` }, reference: { answer: 'there was a little girl' }, tags: ['bench'] }));
const json = JSON.stringify({ name: 'big', type: 'eval_set', records });
const jsonl = records.map((r) => JSON.stringify(r)).join('\n');

/** Streams tokens until `stop` resolves; returns the gaps between tokens (ms). */
async function streamGaps(stop: Promise<void>): Promise<number[]> {
  const gaps: number[] = [];
  let done = false;
  void stop.then(() => (done = true));
  while (!done) {
    const res = await fetch(`${url}/v1/chat`, { method: 'POST', headers: authHeaders, body: JSON.stringify({ prompt: 'Once upon a time', max_new_tokens: 400, temperature: 0.8, stream: true }) });
    const reader = res.body!.getReader();
    let last = performance.now();
    for (;;) {
      const { done: end } = await reader.read();
      if (end) break;
      const now = performance.now();
      gaps.push(now - last);
      last = now;
    }
  }
  return gaps;
}

const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;
const rounds: unknown[] = [];
for (let round = 0; round < ROUNDS; round++) {
  for (const format of ['json', 'jsonl'] as const) {
    // Quiet window: the same stream without an upload.
    await scrape();
    let endQuiet!: () => void;
    const quietStop = new Promise<void>((r) => (endQuiet = r));
    const quietGaps = streamGaps(quietStop);
    await new Promise((r) => setTimeout(r, 3000));
    endQuiet();
    const quiet = { loop: await scrape(), gaps: await quietGaps };

    let endLoad!: () => void;
    const loadStop = new Promise<void>((r) => (endLoad = r));
    const loadGaps = streamGaps(loadStop);
    await new Promise((r) => setTimeout(r, 300));
    const started = performance.now();
    let status: number;
    if (format === 'json') {
      status = (await fetch(`${url}/v1/datasets`, { method: 'POST', headers: authHeaders, body: json })).status;
    } else {
      const form = new FormData();
      form.set('name', 'big');
      form.set('type', 'eval_set');
      form.set('file', new Blob([jsonl]), 'big.jsonl');
      status = (await fetch(`${url}/v1/datasets`, { method: 'POST', headers: { 'x-api-key': authHeaders['x-api-key'] }, body: form })).status;
    }
    const uploadMs = performance.now() - started;
    endLoad();
    const load = { loop: await scrape(), gaps: await loadGaps };
    const row = {
      round,
      format,
      status,
      uploadMs: Math.round(uploadMs),
      quiet: { loopP99Ms: Math.round(quiet.loop.p99Ms * 10) / 10, loopMaxMs: Math.round(quiet.loop.maxMs * 10) / 10, tokenGapMaxMs: Math.round(Math.max(...quiet.gaps)), tokenGapP99Ms: Math.round(q(quiet.gaps, 0.99)) },
      upload: { loopP99Ms: Math.round(load.loop.p99Ms * 10) / 10, loopMaxMs: Math.round(load.loop.maxMs * 10) / 10, tokenGapMaxMs: Math.round(Math.max(...load.gaps)), tokenGapP99Ms: Math.round(q(load.gaps, 0.99)) },
    };
    console.log(JSON.stringify(row));
    rounds.push(row);
  }
}
await server.stop();
const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
const out = { date: new Date().toISOString(), commit, records: N, bodyMb: Math.round(json.length / 1e5) / 10, rounds };
fs.writeFileSync(path.join(REPO, 'bench/results', `${new Date().toISOString().slice(0, 10)}-event-loop.json`), `${JSON.stringify(out, null, 2)}\n`);
