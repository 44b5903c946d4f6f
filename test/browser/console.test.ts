/**
 * The web console (web/, issue 14) end to end in Debian's headless Chromium,
 * against the real server and the stories260K model: the key form, a
 * streamed chat, a dataset upload with a rejected record, a small batch
 * evaluation and its histograms, two runs compared, the live metrics
 * charts, RAG, a 401, and the 390 px layout. Every page gets an axe-core
 * check (no serious or critical violation) and a screenshot in
 * test-artifacts/console/. Every request the page makes must stay on the
 * server's origin.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storiesModel } from '../helpers/models.js';
import { API_KEY, gql, postJson, REPO, startServer, type RunningServer } from '../helpers/server.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = fs.existsSync(CHROMIUM);
const ARTIFACTS = path.join(REPO, 'test-artifacts', 'console');
const require = createRequire(import.meta.url);
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const KEY_STORAGE = 'inference-console.api-key';
/** expect.poll's wait where the page needs a server answer (its default, 1 s, is short on a loaded 2-core machine). */
const SLOW = { timeout: 20_000 };

/** Four good eval records and one without input.prompt (record 2), as a JSONL upload. */
const PROMPTS = ['Once upon a time', 'Tom had a red ball', 'The sun was hot', "Lily's mom said"];
const JSONL = [
  ...PROMPTS.slice(0, 2).map((prompt, i) => ({ record_id: `tiny-${i}`, input: { prompt }, reference: { answer: 'there was a little girl named Lily. She loved to play outside.' } })),
  { record_id: 'tiny-bad', reference: { answer: 'no prompt here' } },
  ...PROMPTS.slice(2).map((prompt, i) => ({ record_id: `tiny-${i + 2}`, input: { prompt }, reference: { answer: 'Quantum chromodynamics describes the strong interaction.' } })),
]
  .map((r) => JSON.stringify(r))
  .join('\n');

const CORPUS = [
  { doc_id: 'gzip', text: 'gzip reduces the size of files. To decompress a .gz file run gunzip or gzip -d.' },
  { doc_id: 'tar', text: 'tar bundles many files into one archive. Extract an archive with tar -x and create one with tar -c.' },
  { doc_id: 'cron', text: 'The cron daemon runs scheduled jobs. Each user edits a crontab to schedule commands.' },
];

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: Array<{ target: string[] }>;
}

describe.skipIf(!storiesModel.present || !hasChromium)(
  storiesModel.title(hasChromium ? 'web console in chromium' : `web console in chromium: skipped, chromium not installed (${CHROMIUM})`),
  () => {
    let server: RunningServer;
    let browser: Browser;
    let context: BrowserContext;
    let page: Page;
    let origin: string;
    const requests: string[] = [];
    const pageErrors: string[] = [];
    const cspErrors: string[] = [];
    const started = Date.now();

    const shot = async (name: string) => {
      await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
    };

    /** axe-core on the page as it is: no serious or critical violation. */
    const axe = async (name: string) => {
      // Evaluated through the DevTools protocol: the page's CSP (no inline scripts) does not apply to it.
      if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(AXE_SOURCE);
      const violations = (await page.evaluate(async () => {
        const w = window as unknown as { axe: { run(ctx: Document, opts: object): Promise<{ violations: AxeViolation[] }> } };
        const r = await w.axe.run(document, { resultTypes: ['violations'] });
        return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target })) }));
      })) as AxeViolation[];
      const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
      expect(bad.map((v) => `${name}: ${v.impact} ${v.id} (${v.help}) at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
    };

    const nav = async (label: string, heading: string | RegExp) => {
      await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: label, exact: true }).click();
      await page.getByRole('heading', { level: 1, name: heading }).waitFor();
    };

    /** The page's horizontal overflow: 0 when it fits the viewport's width; else the elements that stick out. */
    const overflow = () =>
      page.evaluate(() => {
        const over = document.documentElement.scrollWidth - document.documentElement.clientWidth;
        if (over <= 0) return over;
        const width = document.documentElement.clientWidth;
        const wide = [...document.querySelectorAll('body *')]
          .filter((el) => el.getBoundingClientRect().right > width + 1 && !el.closest('.table-scroll'))
          .slice(0, 8)
          .map((el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}.${[...el.classList].join('.')} right=${Math.round(el.getBoundingClientRect().right)}`);
        return `${over} px too wide: ${wide.join('; ')}`;
      });

    beforeAll(async () => {
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      // The console as the sources say now (skipped in a moment when web/dist is up to date).
      await promisify(execFile)(process.execPath, ['scripts/build-console.mjs'], { cwd: REPO, timeout: 120_000 });
      // The pages poll every 2 s: no per-key rate limit in this test.
      server = await startServer({ RATE_LIMIT_PER_MINUTE: '0' });
      origin = new URL(server.url).origin;
      // A corpus to ask questions of: its index builds while the other steps run.
      const corpus = await postJson(`${server.url}/v1/datasets`, { name: 'tools', type: 'rag_corpus', records: CORPUS });
      expect(corpus.status).toBe(201);
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync', '--proxy-server=http://127.0.0.1:9'],
      });
      context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
      // Nothing may leave the server's origin: record every request, and refuse any that would.
      context.on('request', (r) => requests.push(r.url()));
      await context.route('**/*', (route) => (new URL(route.request().url()).origin === origin ? route.continue() : route.abort('blockedbyclient')));
      page = await context.newPage();
      page.on('pageerror', (err) => pageErrors.push(err.message));
      page.on('console', (msg) => {
        if (msg.type() === 'error' && /Content Security Policy/i.test(msg.text())) cspErrors.push(msg.text());
      });
    }, 180_000);

    afterAll(async () => {
      await context?.close();
      await browser?.close();
      await server?.stop();
      console.log(`console browser test: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    });

    it('serves the page and its hashed assets without a key, with cache headers and a same-origin policy', async () => {
      const res = await fetch(`${server.url}/`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(res.headers.get('cache-control')).toBe('no-cache');
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("connect-src 'self'");
      expect(csp).toContain("script-src 'self'");
      const html = await res.text();
      expect(html).not.toMatch(/(src|href)="https?:/);
      const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]!);
      expect(assets.some((a) => a.endsWith('.js'))).toBe(true);
      expect(assets.some((a) => a.endsWith('.css'))).toBe(true);
      for (const asset of assets) {
        const r = await fetch(`${server.url}${asset}`);
        expect(r.status, asset).toBe(200);
        expect(r.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
        const body = await r.text();
        // No font, style or script is fetched from elsewhere (XML namespace names are not fetched).
        expect(body.replace(/http:\/\/www\.w3\.org\/[\w/.]+/g, '')).not.toMatch(/https?:\/\/[a-z]/i);
      }
      for (const bad of ['/assets/nope.js', '/assets/..%2Findex.html', '/assets/.sources']) {
        const r = await fetch(`${server.url}${bad}`);
        expect(r.status, bad).toBe(404);
        expect((await r.json()).error.code).toBe('not_found');
      }
      // The API still needs the key.
      expect((await fetch(`${server.url}/v1/datasets`)).status).toBe(401);
    });

    it('asks for the key, refuses a wrong one, and keeps the right one in sessionStorage only', async () => {
      await page.goto(`${server.url}/`);
      await page.getByLabel('API key').waitFor();
      await axe('key');
      await shot('01-key');
      await page.getByLabel('API key').fill('not-a-key');
      await page.getByRole('button', { name: 'Use this key' }).click();
      await expect.poll(() => page.locator('#api-key-error').textContent(), SLOW).toContain('refused');
      // By keyboard alone, from a fresh load: the skip link, then the key field; Enter submits.
      await page.reload();
      await page.getByLabel('API key').waitFor();
      await page.keyboard.press('Tab');
      expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content');
      await page.keyboard.press('Tab');
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('api-key');
      await page.keyboard.type(API_KEY);
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { level: 1, name: 'Playground' }).waitFor();
      expect(await page.evaluate((k) => sessionStorage.getItem(k), KEY_STORAGE)).toBe(API_KEY);
      expect(await page.evaluate(() => localStorage.length)).toBe(0);
      expect(page.url()).not.toContain(API_KEY);
      // Typed once: a reload in the same tab keeps it.
      await page.reload();
      await page.getByRole('heading', { level: 1, name: 'Playground' }).waitFor();
      expect(await page.getByLabel('API key').count()).toBe(0);
    });

    it('streams a chat: tokens appear before the end, then TTFT, inter-token latency, token counts and cache hit', async () => {
      await page.locator('#pg-prompt').fill('Once upon a time');
      await page.getByLabel('Max new tokens').fill('200');
      await page.getByLabel('Temperature (0 = greedy)').fill('0');
      // Record every change of the answer's text, and when the final result shows.
      await page.evaluate(() => {
        const w = window as unknown as { seen: Array<{ t: number; len: number }>; resultAt: number | null };
        w.seen = [];
        w.resultAt = null;
        const out = document.getElementById('output')!;
        new MutationObserver(() => {
          const len = out.querySelector('.text')?.textContent?.length ?? 0;
          if (len > 0 && w.seen.at(-1)?.len !== len) w.seen.push({ t: performance.now(), len });
          if (w.resultAt === null && document.getElementById('result-stats')) w.resultAt = performance.now();
        }).observe(document.body, { subtree: true, childList: true, characterData: true });
      });
      await page.getByRole('button', { name: 'Generate' }).click();
      await page.locator('#result-stats').waitFor({ timeout: 60_000 });
      const { seen, resultAt } = await page.evaluate(() => {
        const w = window as unknown as { seen: Array<{ t: number; len: number }>; resultAt: number };
        return { seen: w.seen, resultAt: w.resultAt };
      });
      const before = seen.filter((s) => s.t < resultAt);
      // The text grew in several steps, the first well before the result arrived.
      expect(before.length, JSON.stringify(seen)).toBeGreaterThanOrEqual(3);
      expect(before[0]!.len).toBeLessThan(seen.at(-1)!.len);

      const shown = await page.locator('#output .text').textContent();
      const plain = await gql(server.url, 'mutation($input: ChatInput!) { chat(input: $input) { response completionTokens } }', {
        input: { prompt: 'Once upon a time', maxNewTokens: 200, temperature: 0, topP: 0.95, topK: 0, repetitionPenalty: 1, mode: 'SINGLE' },
      });
      expect(shown).toBe(plain.json.data.chat.response);
      const stats = (await page.locator('#result-stats').textContent()) ?? '';
      for (const label of ['Time to first token', 'Inter-token latency', 'Prompt tokens', 'Completion tokens', 'Total tokens', 'Cache hit']) expect(stats).toContain(label);
      expect(stats).toContain(`Completion tokens${plain.json.data.chat.completionTokens}`);
      expect(stats).toMatch(/Cache hit(yes|no)/);
      await axe('playground');
      await shot('02-playground');
    });

    it('copies the exact request as curl, GraphQL and OpenAI SDK, with no key in it', async () => {
      await page.getByRole('button', { name: 'curl', exact: true }).click();
      const curl = (await page.locator('#snippet[data-kind="curl"]').textContent())!;
      expect(curl).toContain(`${origin}/v1/chat`);
      expect(curl).toContain('$API_KEY');
      expect(curl).not.toContain(API_KEY);
      // The body it would send is the request the page sent, and the server takes it.
      const body = JSON.parse(/-d '([\s\S]*)'$/.exec(curl)![1]!) as Record<string, unknown>;
      expect(body).toMatchObject({ prompt: 'Once upon a time', max_new_tokens: 200, temperature: 0, top_p: 0.95, top_k: 0, repetition_penalty: 1, stream: true });
      const rest = await fetch(`${server.url}/v1/chat`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': API_KEY }, body: JSON.stringify({ ...body, max_new_tokens: 4 }) });
      expect(rest.status).toBe(200);
      await rest.text();

      await page.getByRole('button', { name: 'GraphQL', exact: true }).click();
      const graphqlText = (await page.locator('#snippet[data-kind="graphql"]').textContent())!;
      expect(graphqlText).toContain('subscription ChatStream($input: ChatInput!)');
      expect(graphqlText).toContain('"maxNewTokens": 200');
      await page.getByRole('button', { name: 'OpenAI SDK', exact: true }).click();
      const openai = (await page.locator('#snippet[data-kind="openai"]').textContent())!;
      expect(openai).toContain(`baseURL: '${origin}/v1'`);
      expect(openai).toContain('client.completions.create(');
      expect(openai).toContain('"max_tokens": 200');
      expect(openai).not.toContain(API_KEY);
    });

    it('shows the model and health: name, source, context window, quantization, queue, batch, load time, database and Redis', async () => {
      await nav('Model and health', 'Model and health');
      await expect.poll(() => page.locator('#model-facts').textContent(), SLOW).toContain('stories260K');
      const model = (await page.locator('#model-facts').textContent())!;
      expect(model).toContain('Context window512 tokens');
      expect(model).toContain('Quantizationnone (fp32)');
      expect(model).toMatch(/Load time[\d.]+ s/);
      // The imported checkpoint's directory (MODEL_PATH's .bin is imported once into MODEL_CACHE_DIR).
      expect(model).toMatch(/Source\/\S*llama2c\//);
      expect(await page.locator('#serving-facts').textContent()).toMatch(/Queue depth\d+Running batch\d+/);
      const deps = (await page.locator('#dependency-facts').textContent())!;
      expect(deps).toContain('DatabaseSQLite');
      expect(deps).toContain('Database statusok');
      expect(deps).toContain('Redisnot configured');
      await axe('model');
      await shot('03-model');
    });

    let datasetId: string;

    it('uploads a JSONL dataset with one bad record: the rejected row shows its code; the records page lists the rest', async () => {
      await nav('Datasets', 'Datasets');
      await page.getByLabel('Name').fill('console tiny');
      await page.getByLabel(/^File/).setInputFiles({ name: 'tiny.jsonl', mimeType: 'application/x-ndjson', buffer: Buffer.from(JSONL) });
      await page.getByRole('button', { name: 'Upload' }).click();
      const row = page.locator('#rejected-records tbody tr');
      await row.first().waitFor();
      expect(await row.count()).toBe(1);
      expect(await row.getAttribute('data-index')).toBe('2');
      const cells = await row.locator('td').allTextContents();
      expect(cells).toEqual(['2', 'tiny-bad', 'missing_required_field', 'input.prompt', 'input.prompt is required']);
      const result = (await page.locator('#upload-result').textContent())!;
      expect(result).toMatch(/Stored ds_\w+ with 4 records; 1 rejected/);
      datasetId = /Stored (ds_\w+)/.exec(result)![1]!;
      await expect.poll(() => page.locator('#datasets-table').textContent(), SLOW).toContain('console tiny');
      await axe('datasets');
      await shot('04-datasets');

      await page.getByRole('link', { name: 'console tiny' }).click();
      await page.getByRole('heading', { level: 1, name: 'console tiny' }).waitFor();
      await expect.poll(() => page.locator('#records-table tbody tr').count(), SLOW).toBe(4);
      expect(await page.locator('#records-table tbody tr td:nth-child(2)').allTextContents()).toEqual(['tiny-0', 'tiny-1', 'tiny-2', 'tiny-3']);
      await axe('dataset');
      await shot('05-dataset');
    });

    let runA: string;
    let runB: string;

    it('runs a small batch evaluation: pass rate with its interval, histograms drawn with the right counts, failures, artifacts', async () => {
      // From the dataset's page: the start form comes with the dataset chosen.
      await page.getByRole('button', { name: 'Evaluate the model on it' }).click();
      await page.getByRole('heading', { level: 1, name: 'Evaluations' }).waitFor();
      await expect.poll(() => page.locator('#eval-dataset').inputValue(), SLOW).toBe(datasetId);
      await page.getByRole('checkbox', { name: 'accuracy' }).check();
      await page.getByRole('checkbox', { name: 'clarity' }).check();
      await page.getByLabel('Max new tokens').fill('24');
      await page.getByLabel('Temperature').fill('0');
      await page.getByRole('button', { name: 'Start' }).click();
      await page.waitForURL(/#\/evals\/be_/);
      runA = decodeURIComponent(page.url().split('/').pop()!);
      await expect.poll(() => page.locator('#run-summary').textContent(), { timeout: 60_000 }).toContain('completed');
      await page.locator('#hist-latency').waitFor();

      const api = (
        await gql(
          server.url,
          `query($id: String!) { batchEval(id: $id) { status criteria result { passRate passRateCi95Lower passRateCi95Upper }
            overall: distribution(criterion: OVERALL) { buckets { score count } }
            accuracy: distribution(criterion: ACCURACY) { buckets { score count } }
            clarity: distribution(criterion: CLARITY) { buckets { score count } }
            failures(first: 100) { count nodes { reason } } } }`,
          { id: runA },
        )
      ).json.data.batchEval;
      expect(api.status).toBe('COMPLETED');
      expect(api.criteria).toEqual(['OVERALL', 'ACCURACY', 'CLARITY']);
      for (const c of ['overall', 'accuracy', 'clarity'] as const) {
        const counts: number[] = api[c].buckets.map((b: { count: number }) => b.count);
        expect(counts.reduce((a, b) => a + b, 0), c).toBe(4);
        const fig = page.locator(`#hist-run-${c}`);
        expect(await fig.getAttribute('data-counts'), c).toBe(counts.join(','));
        expect(await fig.locator('td[data-category]').allTextContents(), c).toEqual(counts.map(String));
        // Drawn: the canvas holds pixels of the bars' color.
        const barPixels = await fig.locator('canvas').evaluate((canvas: HTMLCanvasElement) => {
          const d = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
          let n = 0;
          for (let i = 0; i < d.length; i += 4) if (d[i] === 0x1f && d[i + 1] === 0x5f && d[i + 2] === 0xbf) n++;
          return n;
        });
        expect(barPixels, c).toBeGreaterThan(100);
      }
      const latencyCounts = (await page.locator('#hist-latency').getAttribute('data-counts'))!.split(',').map(Number);
      expect(latencyCounts.reduce((a, b) => a + b, 0)).toBe(4);
      const summary = (await page.locator('#run-summary').textContent())!;
      const pctText = (v: number) => `${(v * 100).toFixed(1)}%`;
      expect(summary).toContain(`${pctText(api.result.passRate)} (95% interval ${pctText(api.result.passRateCi95Lower)} – ${pctText(api.result.passRateCi95Upper)})`);
      await expect.poll(() => page.locator('#failures-table tbody tr').count(), SLOW).toBe(api.failures.count);

      // The filter narrows the table to one reason.
      if (api.failures.count > 0) {
        const reason: string = api.failures.nodes[0].reason;
        await page.locator('#failures-reason').selectOption(reason);
        const reasons = await page.locator('#failures-table tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-reason')));
        expect(reasons.length).toBe(api.failures.nodes.filter((n: { reason: string }) => n.reason === reason).length);
        expect(new Set(reasons)).toEqual(new Set([reason]));
        await page.locator('#failures-search').fill('no such record');
        await expect.poll(() => page.locator('#failures-table tbody tr').count(), SLOW).toBe(0);
        await page.locator('#failures-search').fill('');
        await page.locator('#failures-reason').selectOption('');
      }

      // The artifact comes through a Blob: the key in a header, never in a URL.
      const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download predictions.jsonl' }).click()]);
      expect(download.suggestedFilename()).toBe(`${runA}-predictions.jsonl`);
      const lines = fs.readFileSync((await download.path())!, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { record_id: string });
      expect(lines.map((l) => l.record_id)).toEqual(['tiny-0', 'tiny-1', 'tiny-2', 'tiny-3']);
      await axe('eval-run');
      await shot('06-eval-run');
    });

    it('lists the runs with their progress and compares two side by side', async () => {
      const start = await gql(server.url, 'mutation($input: StartBatchEvalInput!) { startBatchEval(input: $input) { batchEvalId } }', {
        input: { datasetId, criteria: ['OVERALL', 'CLARITY'], maxNewTokens: 24, temperature: 0.9, seed: 7 },
      });
      runB = start.json.data.startBatchEval.batchEvalId;
      await nav('Evaluations', 'Evaluations');
      const rowA = page.locator(`#runs-table tr[data-run="${runA}"]`);
      const rowB = page.locator(`#runs-table tr[data-run="${runB}"]`);
      await rowB.waitFor();
      // The list follows the new run until it ends.
      await expect.poll(() => rowB.textContent(), { timeout: 60_000 }).toContain('4/4');
      await expect.poll(() => rowB.textContent(), SLOW).toContain('completed');
      expect(await rowA.textContent()).toContain('completed');
      await axe('evals');
      await shot('07-evals');
      await rowA.getByRole('checkbox').check();
      await rowB.getByRole('checkbox').check();
      await page.getByRole('button', { name: 'Compare the two chosen runs' }).click();
      await page.getByRole('heading', { level: 1, name: 'Two runs side by side' }).waitFor();
      const table = (await page.locator('#compare-table').textContent())!;
      expect(table).toContain(runA);
      expect(table).toContain(runB);
      expect(table).toContain('temperature=0.9');
      // Both runs' clarity histograms, side by side, each with its own counts.
      for (const [i, id] of [runA, runB].entries()) {
        const counts = (await gql(server.url, 'query($id: String!) { batchEval(id: $id) { distribution(criterion: CLARITY) { buckets { count } } } }', { id })).json.data.batchEval.distribution.buckets.map(
          (b: { count: number }) => b.count,
        );
        await expect.poll(() => page.locator(`#cmp-${i}-clarity`).getAttribute('data-counts'), SLOW).toBe(counts.join(','));
      }
      expect(await page.locator('[id^="cmp-1-accuracy"]').count()).toBe(0);
      await axe('compare');
      await shot('08-compare');
    });

    it('draws the live metrics, gaining a point every 2 s, with a time window selector', async () => {
      await nav('Live metrics', 'Live metrics');
      const points = async () => Number(await page.locator('#chart-tokens').getAttribute('data-points'));
      await expect.poll(points, SLOW).toBeGreaterThanOrEqual(1);
      const first = await points();
      // Some generation to draw, meanwhile.
      const chat = postJson(`${server.url}/v1/chat`, { prompt: 'One day, a big bear', max_new_tokens: 200, temperature: 0 });
      await expect.poll(points, { timeout: 20_000, interval: 250 }).toBeGreaterThanOrEqual(first + 3);
      expect((await chat).status).toBe(200);
      for (const id of ['chart-tokens', 'chart-requests', 'chart-ttft', 'chart-itl', 'chart-batch']) {
        expect(await page.locator(`#${id} canvas`).count(), id).toBe(1);
        expect(Number(await page.locator(`#${id}`).getAttribute('data-points')), id).toBeGreaterThanOrEqual(first + 3);
      }
      await page.getByLabel('Time window').selectOption('60');
      expect(await page.getByLabel('Time window').inputValue()).toBe('60');
      await axe('metrics');
      await shot('09-metrics');
    });

    it('lists the RAG indexes and answers a question with its citations', async () => {
      await nav('RAG', 'RAG');
      await expect.poll(() => page.locator('#rag-indexes').textContent(), { timeout: 60_000 }).toContain('ready');
      await page.getByLabel('Question').fill('How do I extract a tar archive?');
      await page.getByRole('button', { name: 'Ask' }).click();
      await page.locator('#rag-citations li').first().waitFor({ timeout: 60_000 });
      expect(await page.locator('#rag-citations li').count()).toBeGreaterThanOrEqual(1);
      expect(((await page.locator('#rag-answer .output').textContent()) ?? '').length).toBeGreaterThan(0);
      expect(await page.locator('#rag-citations').textContent()).toContain('tar');

      // stories260K never writes [n]; an answer that does (served here in place of the server's) shows its marks.
      const result = {
        answer: 'Extract it with tar -x [1], or compress with gzip [2].',
        latencyMs: 12,
        citations: [
          { number: 1, cited: true, hit: { docId: 'tar', chunkId: 'c1', text: CORPUS[1]!.text, score: 0.03 } },
          { number: 2, cited: true, hit: { docId: 'gzip', chunkId: 'c2', text: CORPUS[0]!.text, score: 0.02 } },
          { number: 3, cited: false, hit: { docId: 'cron', chunkId: 'c3', text: CORPUS[2]!.text, score: 0.01 } },
        ],
        generation: { model: 'stories260K', promptTokens: 40, completionTokens: 12, timeToFirstTokenMs: 3, finishReason: 'STOP' },
        retrieval: { indexId: 'ri_x', mode: 'HYBRID', retrieved: 3, used: 3, latencyMs: 2 },
      };
      const sse = [
        { ragStream: { token: 'Extract it', done: false, result: null } },
        { ragStream: { token: null, done: true, result } },
      ]
        .map((data) => `event: next\ndata: ${JSON.stringify({ data })}\n\n`)
        .join('');
      await page.route(`${origin}/graphql`, (route) =>
        route.request().postData()?.includes('RagStream')
          ? route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body: `${sse}event: complete\ndata:\n\n` })
          : route.fallback(),
      );
      try {
        await page.getByRole('button', { name: 'Ask' }).click();
        await page.locator('#rag-answer mark').first().waitFor();
        expect(await page.locator('#rag-answer .output mark').allTextContents()).toEqual(['[1]', '[2]']);
        await page.getByRole('button', { name: 'Source 2' }).click();
        expect(await page.evaluate(() => document.activeElement?.getAttribute('data-number'))).toBe('2');
        expect(await page.locator('#rag-citations li.cited').count()).toBe(2);
      } finally {
        await page.unroute(`${origin}/graphql`);
      }
      await axe('rag');
      await shot('10-rag');
    });

    it('fits a 390 px wide screen', async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      for (const [label, heading, name] of [
        ['Playground', 'Playground', 'playground'],
        ['Datasets', 'Datasets', 'datasets'],
        ['Live metrics', 'Live metrics', 'metrics'],
      ] as const) {
        await nav(label, heading);
        await page.waitForTimeout(300);
        expect(await overflow(), name).toBe(0);
        await shot(`11-${name}-390`);
      }
      await page.goto(`${server.url}/#/evals/${runA}`);
      await page.locator('#hist-latency').waitFor();
      expect(await overflow(), 'eval run').toBe(0);
      await axe('eval-run-390');
      await shot('11-eval-run-390');
      await page.setViewportSize({ width: 1280, height: 900 });
    });

    it('sends the user back to the key form on a 401', async () => {
      await page.evaluate((k) => sessionStorage.setItem(k, 'revoked-key'), KEY_STORAGE);
      await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Model and health', exact: true }).click();
      await page.getByLabel('API key').waitFor();
      expect(await page.getByRole('status').first().textContent()).toContain('refused');
      expect(await page.evaluate((k) => sessionStorage.getItem(k), KEY_STORAGE)).toBeNull();
      await shot('12-key-again');
    });

    it('made no request outside the server, kept the key out of every URL, and raised no page error', () => {
      expect(requests.length).toBeGreaterThan(20);
      expect(requests.filter((u) => !u.startsWith(`${origin}/`) && !u.startsWith('blob:') && !u.startsWith('data:'))).toEqual([]);
      expect(requests.filter((u) => u.includes(API_KEY))).toEqual([]);
      expect(pageErrors).toEqual([]);
      expect(cspErrors).toEqual([]);
    });
  },
);
