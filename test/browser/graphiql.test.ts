import fs from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storiesModel } from '../helpers/models.js';
import { API_KEY, startServer, type RunningServer } from '../helpers/server.js';
import { GOLDEN } from '../helpers/golden.js';

/** Debian's chromium; CI installs it (.ci/run). Playwright's own browser downloads need the internet. */
const CHROMIUM = '/usr/bin/chromium';
const hasChromium = fs.existsSync(CHROMIUM);
const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** The text a Monaco editor shows, lines in screen order (Monaco reuses line nodes, so DOM order can differ). */
async function editorText(page: Page, selector: string): Promise<string> {
  const text = await page.$eval(selector, (el) =>
    [...el.querySelectorAll<HTMLElement>('.view-line')]
      .sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))
      .map((line) => line.textContent ?? '')
      .join('\n'),
  );
  return text.replace(/\u00a0/g, ' ');
}

/** Word wrap splits long lines on screen: compare text with its whitespace runs collapsed. */
const squash = (s: string) => s.replace(/\s+/g, ' ');

describe.skipIf(!storiesModel.present)(storiesModel.title('GraphiQL served from this server'), () => {
  let server: RunningServer;
  beforeAll(async () => {
    // dev-local-key is the key the server accepts when API_KEYS is unset, the one
    // the page fills in; API_KEY stands for a configured key that must never reach the page.
    server = await startServer({ API_KEYS: `dev-local-key,${API_KEY}` });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('the page needs no key and names nothing outside the server (no CDN, no favicon from GitHub)', async () => {
    const res = await fetch(`${server.url}/graphql`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toContain('unpkg');
    expect(html).not.toContain('__TITLE__');
    expect(html).not.toContain(API_KEY);
    expect(html).toContain('dev-local-key');
  });

  it('serves the allow-listed assets with no key and long cache headers; nothing else', async () => {
    const html = await (await fetch(`${server.url}/graphql`, { headers: { accept: 'text/html' } })).text();
    const assets = [...html.matchAll(/"(\/graphql\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    expect(assets.map((a) => a.split('/').pop()).sort()).toEqual(
      ['editor.worker.js', 'graphiql.css', 'graphql.worker.js', 'json.worker.js', 'yoga-graphiql.js'],
    );
    for (const asset of assets) {
      const res = await fetch(`${server.url}${asset}`);
      expect(res.status, asset).toBe(200);
      expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(res.headers.get('content-type')).toMatch(asset.endsWith('.css') ? /^text\/css/ : /javascript/);
      expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(100_000);
    }
    const base = assets[0]!.slice(0, assets[0]!.lastIndexOf('/'));
    for (const bad of [
      `${base}/package.json`,
      `${base}/graphql.worker..bundle.js`,
      `${base}/..%2Fpackage.json`,
      `${base}/..%2F..%2F..%2F..%2Fpackage.json`,
      '/graphql/assets/0.0.0/graphiql.css',
    ]) {
      const res = await fetch(`${server.url}${bad}`);
      expect(res.status, bad).toBe(404);
      expect((await res.json()).error.code).toBe('not_found');
    }
  });

  describe.skipIf(!hasChromium)(
    hasChromium ? 'in chromium, offline' : `in chromium: skipped, chromium not installed (${CHROMIUM})`,
    () => {
      let browser: Browser;
      beforeAll(async () => {
        browser = await chromium.launch({
          executablePath: CHROMIUM,
          headless: true,
          args: [
            '--no-sandbox',
            '--disable-background-networking',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-component-update',
            '--disable-sync',
            // Anything the route below does not see (the browser's own traffic) goes to a dead proxy;
            // loopback bypasses proxies, so the server is still reachable.
            '--proxy-server=http://127.0.0.1:9',
          ],
        });
      });
      afterAll(async () => {
        await browser?.close();
      });

      it('opens /graphql with the example and the key header, runs the chat and shows the answer', async () => {
        const context = await browser.newContext();
        const blocked: string[] = [];
        await context.route('**/*', (route) => {
          const url = new URL(route.request().url());
          if (LOCAL_HOSTS.has(url.hostname)) return route.continue();
          blocked.push(url.href);
          return route.abort('internetdisconnected');
        });
        const page = await context.newPage();
        const pageErrors: string[] = [];
        page.on('pageerror', (err) => pageErrors.push(err.message));
        try {
          await page.goto(`${server.url}/graphql`);
          await page.waitForSelector('.graphiql-query-editor .view-line', { timeout: 30_000 });

          // The first visit shows our example operation (not yoga's welcome text) and the Headers tab with the key.
          const query = await editorText(page, '.graphiql-query-editor');
          expect(query).toContain('mutation Chat');
          expect(query).toContain('prompt: "Once upon a time"');
          expect(query).not.toContain('Welcome to');
          const headersSelector = 'section[aria-label="Headers"] .graphiql-editor:not(.hidden)';
          await page.waitForSelector(`${headersSelector} .view-line`, { timeout: 10_000 });
          expect(squash(await editorText(page, headersSelector))).toContain('{ "x-api-key": "dev-local-key" }');

          const sent = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/graphql') && r.postData()?.includes('chat') === true);
          const answered = page.waitForResponse((r) => r.request().method() === 'POST' && r.request().postData()?.includes('chat') === true);
          await page.click('.graphiql-execute-button');
          expect((await sent).headers()['x-api-key']).toBe('dev-local-key');
          const body = await (await answered).json();
          expect(body.errors).toBeUndefined();
          const response: string = body.data.chat.response;
          const [prompt, reference] = GOLDEN[0]!;
          expect(prompt).toBe('Once upon a time');
          expect(response.length).toBeGreaterThan(20);
          expect(reference.startsWith(prompt + response)).toBe(true);

          // …and the answer is on screen.
          await page.waitForFunction(
            () => document.querySelector('.graphiql-response')?.textContent?.includes('finishReason'),
            undefined,
            { timeout: 30_000 },
          );
          const shown = squash(await editorText(page, '.graphiql-response'));
          expect(shown).toContain(squash(`"response": ${JSON.stringify(response)}`));
          expect(shown).toContain('"finishReason": "LENGTH"');
          expect(pageErrors).toEqual([]);
        } finally {
          await context.close();
        }
        // Everything came from the server: nothing was even attempted elsewhere.
        expect(blocked).toEqual([]);
      });
    },
  );
});
