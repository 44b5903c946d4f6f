import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsoleBuild, consoleRouter, type ConsolePaths } from '../../src/console/static.js';
import { AppError } from '../../src/errors.js';

/** A console layout in a temporary folder: sources and/or a build, as a test needs. */
function layout(opts: { built?: boolean; sources?: boolean }): ConsolePaths {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'console-static-'));
  const paths = { web: path.join(root, 'web'), dist: path.join(root, 'web', 'dist'), buildScript: path.join(root, 'scripts', 'build-console.mjs') };
  fs.mkdirSync(paths.web, { recursive: true });
  if (opts.built) {
    fs.mkdirSync(path.join(paths.dist, 'assets'), { recursive: true });
    fs.writeFileSync(path.join(paths.dist, 'index.html'), '<!doctype html><title>console</title><script type="module" src="/assets/index-abc123.js"></script>');
    fs.writeFileSync(path.join(paths.dist, 'assets', 'index-abc123.js'), 'console.log(1)');
    fs.writeFileSync(path.join(paths.dist, 'assets', '.hidden'), 'secret');
    fs.writeFileSync(path.join(paths.dist, '.sources'), 'hash\n');
    fs.writeFileSync(path.join(root, 'secret.txt'), 'secret');
  }
  if (opts.sources) {
    fs.mkdirSync(path.join(paths.web, 'src'), { recursive: true });
    fs.writeFileSync(path.join(paths.web, 'index.html'), '<!doctype html>');
    fs.mkdirSync(path.dirname(paths.buildScript), { recursive: true });
    // A stand-in for the build script: reports that it cannot build (as without Vite) and exits 0.
    fs.writeFileSync(paths.buildScript, "process.stdout.write('build-console: vite is not installed\\n');");
  }
  return paths;
}

async function serve(paths: ConsolePaths, build = false) {
  const app = express();
  app.use(consoleRouter({ paths, build }));
  app.use((_req, res) => res.status(401).json({ error: { code: 'unauthorized' } }));
  app.use((err: AppError, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(err.status ?? 500).json({ error: { code: err.code ?? 'internal_error' } });
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(r)) };
}

describe('the web console at /', () => {
  describe('built', () => {
    let s: Awaited<ReturnType<typeof serve>>;
    beforeAll(async () => {
      s = await serve(layout({ built: true }));
    });
    afterAll(() => s.close());

    it('serves index.html revalidated every time, with a policy that keeps the page on this origin', async () => {
      const res = await fetch(`${s.url}/`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(res.headers.get('content-security-policy')).toMatch(/default-src 'none'.*connect-src 'self'/);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(await res.text()).toContain('<title>console</title>');
    });

    it('serves hashed assets for a year; names that are not plain asset names never reach the disk', async () => {
      const ok = await fetch(`${s.url}/assets/index-abc123.js`);
      expect(ok.status).toBe(200);
      expect(ok.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(ok.headers.get('content-type')).toMatch(/javascript/);
      for (const bad of ['/assets/missing.js', '/assets/.hidden', '/assets/..%2F..%2Fsecret.txt', '/assets/index-abc123.js%00']) {
        const res = await fetch(`${s.url}${bad}`);
        expect(res.status, bad).toBe(404);
        expect(((await res.json()) as { error: { code: string } }).error.code, bad).toBe('not_found');
      }
      // Anything else falls through to the key check.
      expect((await fetch(`${s.url}/index.html`)).status).toBe(401);
      expect((await fetch(`${s.url}/v1/models`)).status).toBe(401);
    });
  });

  it('without a build or its sources, answers 503 with a page that says how to build it', async () => {
    const s = await serve(layout({}));
    try {
      const res = await fetch(`${s.url}/`);
      expect(res.status).toBe(503);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const html = await res.text();
      expect(html).toContain('The web console is not built');
      expect(html).toContain('npm run build:console');
      expect(html).toContain('/graphql');
      expect(html).not.toMatch(/https?:\/\//);
    } finally {
      await s.close();
    }
  });

  it('with sources but no way to build (no Vite), says why and keeps serving the API', async () => {
    const paths = layout({ sources: true });
    const build = new ConsoleBuild(paths);
    expect(build.buildable).toBe(true);
    expect(build.stale()).toBe(true);
    build.start();
    expect(build.state.kind).toBe('building');
    // A node process starting: seconds on a loaded machine.
    await expect.poll(() => build.state.kind, { timeout: 20_000 }).toBe('unavailable');
    expect(build.state).toMatchObject({ message: expect.stringContaining('vite is not installed') });
    const s = await serve(paths, true);
    try {
      // A new router starts its own (stand-in) build: "being built" at first, then why it is not.
      await expect.poll(async () => (await (await fetch(`${s.url}/`)).text()).includes('vite is not installed'), { timeout: 20_000 }).toBe(true);
      expect((await fetch(`${s.url}/`)).status).toBe(503);
    } finally {
      await s.close();
    }
  });

  it('counts a build outdated when a source is newer than its stamp', () => {
    const paths = layout({ built: true, sources: true });
    const build = new ConsoleBuild(paths);
    const old = new Date(Date.now() - 60_000);
    for (const f of [path.join(paths.web, 'index.html'), path.join(paths.web, 'src'), paths.buildScript]) fs.utimesSync(f, old, old);
    fs.utimesSync(path.dirname(paths.buildScript), old, old);
    expect(build.stale()).toBe(false);
    fs.writeFileSync(path.join(paths.web, 'src', 'main.tsx'), 'changed');
    expect(build.stale()).toBe(true);
  });
});
