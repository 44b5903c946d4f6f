/**
 * The web console (web/, built by Vite into web/dist) served at `/`.
 *
 * The page and its assets need no key (the API calls the page makes carry
 * it), so this router is mounted before requireApiKey. index.html is
 * `no-cache` (always revalidated, so a new build shows at once); the
 * assets have content hashes in their names and are cached for a year
 * (`immutable`). A Content-Security-Policy keeps the page on this origin:
 * no script, style, font, image or request goes anywhere else.
 *
 * In a checkout with the console's sources, a missing or outdated build is
 * started here (scripts/build-console.mjs, in a child process, when Vite is
 * installed) while the server starts; until it is there `/` answers 503
 * with a page that says what is happening and how to build it. The server
 * never fails for want of the console.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Router, type Response } from 'express';
import { notFound } from '../errors.js';
import type { Log } from '../observability/log.js';

/** The repository (or image) root: src/console/ in a checkout, dist/console/ when compiled. */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface ConsolePaths {
  /** web/: the console's sources (absent in the image). */
  web: string;
  /** web/dist: the built console. */
  dist: string;
  /** scripts/build-console.mjs (absent in the image). */
  buildScript: string;
}

export const CONSOLE_PATHS: ConsolePaths = {
  web: path.join(ROOT, 'web'),
  dist: path.join(ROOT, 'web', 'dist'),
  buildScript: path.join(ROOT, 'scripts', 'build-console.mjs'),
};

/** Everything on the page comes from this server; API calls go to it alone. */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  // uPlot and Preact set element styles; no style sheet comes from elsewhere.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** A hashed asset's name as Vite writes it: no path, no leading dot. */
const ASSET_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,200}$/;

function newestMtime(p: string): number {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const name of fs.readdirSync(p)) {
    if (name === 'dist' || name.startsWith('.') || name === 'node_modules' || name === 'graphql-env.d.ts') continue;
    newest = Math.max(newest, newestMtime(path.join(p, name)));
  }
  return newest;
}

type BuildState = { kind: 'idle' } | { kind: 'building' } | { kind: 'failed'; message: string } | { kind: 'unavailable'; message: string };

/** Builds the console in a child process when its sources are newer than its build (or it has none). */
export class ConsoleBuild {
  state: BuildState = { kind: 'idle' };

  constructor(
    readonly paths: ConsolePaths,
    private readonly log?: Log,
  ) {}

  get index(): string {
    return path.join(this.paths.dist, 'index.html');
  }

  get built(): boolean {
    return fs.existsSync(this.index);
  }

  /** Whether the sources are here to build from (a checkout; not the image). */
  get buildable(): boolean {
    return fs.existsSync(this.paths.buildScript) && fs.existsSync(path.join(this.paths.web, 'index.html'));
  }

  /** The build's sources changed since it was made (file times; the script compares contents before it builds). */
  stale(): boolean {
    const stamp = newestMtime(path.join(this.paths.dist, '.sources'));
    if (stamp === 0) return true;
    const sources = Math.max(
      newestMtime(path.join(this.paths.web, 'index.html')),
      newestMtime(path.join(this.paths.web, 'vite.config.ts')),
      newestMtime(path.join(this.paths.web, 'src')),
      newestMtime(path.join(this.paths.web, '..', 'schema.graphql')),
      newestMtime(path.join(this.paths.web, '..', 'package-lock.json')),
    );
    return sources > stamp;
  }

  /** Starts a build when there is none, or an outdated one, and the sources are here. Never throws. */
  start(): void {
    if (this.state.kind === 'building') return;
    if (!this.buildable) {
      if (!this.built) this.state = { kind: 'unavailable', message: 'the console was not built and its sources are not here' };
      return;
    }
    if (this.built && !this.stale()) return;
    this.state = { kind: 'building' };
    const output: string[] = [];
    let child;
    try {
      child = spawn(process.execPath, [this.paths.buildScript], { cwd: path.dirname(this.paths.web), stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      this.state = { kind: 'failed', message: err instanceof Error ? err.message : String(err) };
      return;
    }
    const keep = (chunk: Buffer) => {
      output.push(chunk.toString());
      if (output.length > 200) output.shift();
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    this.log?.info({ console: 'build' }, 'web console: building it (scripts/build-console.mjs)');
    child.on('error', (err) => {
      this.state = { kind: 'failed', message: err.message };
    });
    child.on('close', (code) => {
      const text = output.join('').trim();
      if (code === 0 && this.built) {
        this.state = { kind: 'idle' };
        this.log?.info({ console: 'build', output: text.slice(-500) }, 'web console: ready');
      } else if (code === 0) {
        // The script had nothing it could build with (no Vite: a production install).
        this.state = { kind: 'unavailable', message: text.replace(/^build-console: /gm, '') || 'the console could not be built here' };
        this.log?.warn({ console: 'build', output: text.slice(-500) }, 'web console: not built');
      } else {
        this.state = { kind: 'failed', message: text.slice(-2000) || `build exited with ${code}` };
        this.log?.warn({ console: 'build', code, output: text.slice(-2000) }, 'web console: build failed');
      }
    });
  }
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The 503 page while the console is missing: what is happening, and how to get it. */
function missingPage(state: BuildState): string {
  const building = state.kind === 'building';
  const detail =
    state.kind === 'failed' || state.kind === 'unavailable' ? `<p>Why: <code>${escapeHtml(state.message).slice(0, 2000)}</code></p>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
${building ? '<meta http-equiv="refresh" content="3">' : ''}<link rel="icon" href="data:,">
<title>Web console ${building ? 'being built' : 'not built'}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem}code{background:#eee;padding:0 .2em}</style></head>
<body><main><h1>${building ? 'The web console is being built' : 'The web console is not built'}</h1>
${
  building
    ? '<p>This takes a few seconds; the page reloads itself.</p>'
    : `<p>This server has no built console to serve. In a checkout, <code>npm ci</code> builds it (with the dev dependencies), or run <code>npm run build:console</code>, then reload; the Docker image has it built in.</p>${detail}`
}
<p>The API does not need it: GraphiQL is at <a href="/graphql">/graphql</a>, REST under <code>/v1/</code>.</p></main></body></html>
`;
}

function pageHeaders(res: Response): void {
  res.setHeader('content-security-policy', CONSOLE_CSP);
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('referrer-policy', 'no-referrer');
  res.setHeader('x-frame-options', 'DENY');
}

/** `/` and `/assets/:file`: the console, public like the probes. Starts a build if it is missing or outdated. */
export function consoleRouter(opts: { log?: Log; paths?: ConsolePaths; build?: boolean } = {}): Router {
  const build = new ConsoleBuild(opts.paths ?? CONSOLE_PATHS, opts.log);
  if (opts.build !== false) build.start();
  const router = Router();
  router.get('/', (_req, res, next) => {
    pageHeaders(res);
    if (!build.built) {
      res.status(503).setHeader('cache-control', 'no-store');
      res.type('html').send(missingPage(build.state));
      return;
    }
    res.sendFile(build.index, { headers: { 'cache-control': 'no-cache' }, lastModified: true, etag: false }, (err) => {
      if (err && !res.headersSent) next(err);
    });
  });
  // One route template keeps the metrics' route label bounded; only plain names reach the disk, under assets/.
  router.get('/assets/:file', (req, res, next) => {
    const file = String(req.params.file);
    if (!ASSET_NAME.test(file)) return next(notFound(`No console asset ${req.path}`));
    res.setHeader('x-content-type-options', 'nosniff');
    res.sendFile(file, { root: path.join(build.paths.dist, 'assets'), maxAge: '365d', immutable: true, dotfiles: 'deny' }, (err) => {
      if (!err) return;
      if (!res.headersSent) next((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as { status?: number }).status === 404 ? notFound(`No console asset ${req.path}`) : err);
    });
  });
  return router;
}
