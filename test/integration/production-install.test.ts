/**
 * Does what the Dockerfile does, without Docker's daemon: in a clean copy of
 * the repository (the files git tracks, as they are on disk), the TypeScript
 * compiled to dist/ (tsconfig.build.json, as `npm run build`), a production
 * install (`npm ci --omit=dev`, with the repository's .npmrc), then the
 * compiled entry point started with plain node (no tsx) must answer /readyz.
 * Slow (the production install compiles the native addons: 1-3 minutes).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storiesModel } from '../helpers/models.js';
import { listeningUrl, MODEL_CACHE, REPO, STORIES, waitReady } from '../helpers/server.js';

const INSTALL_TIMEOUT_MS = 6 * 60_000;
const execFileAsync = promisify(execFile);

/** Runs a command to completion; a failure's message carries its output (tsc prints its errors on stdout). */
async function run(cmd: string, args: string[], cwd: string, timeout = 120_000): Promise<void> {
  // Not execFileSync: a blocked event loop for minutes makes vitest's worker miss its own RPC deadlines.
  try {
    await execFileAsync(cmd, args, { cwd, timeout, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${(e.stderr ?? '').slice(-4000)}`);
  }
}

describe.skipIf(!storiesModel.present)(storiesModel.title('production install: compiled build, production dependencies, node dist/main.js'), () => {
  let dir: string;
  let proc: ChildProcess | undefined;
  const logs: string[] = [];
  let url: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'production-install-'));
    // The clean copy: what git tracks or would (node_modules, dist/, data/ and caches are ignored, so never copied).
    const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO, encoding: 'utf8' }).split('\0').filter(Boolean);
    for (const f of files) {
      const from = path.join(REPO, f);
      // Deleted in the work tree and not yet committed, or not a plain file (a node_modules symlink in a second work tree).
      if (!fs.existsSync(from) || !fs.lstatSync(from).isFile()) continue;
      fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      fs.copyFileSync(from, path.join(dir, f));
    }
    // The build stage (`npm run build` in the copy): its node_modules lent from the repository for the compiler and types only.
    fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
    try {
      await run(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], dir);
      // The web console, built in the build stage as the Dockerfile does (Vite is a dev dependency).
      await run(process.execPath, ['scripts/build-console.mjs', '--force'], dir);
    } finally {
      fs.unlinkSync(path.join(dir, 'node_modules'));
    }
    // The runtime stage: production dependencies only, exactly as the lock file pins them.
    await run('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund'], dir, INSTALL_TIMEOUT_MS);

    proc = spawn(process.execPath, ['dist/main.js'], {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        NODE_ENV: 'production',
        PORT: '0',
        HOST: '127.0.0.1',
        API_KEY: 'prod-key',
        MODEL_PATH: STORIES,
        MODEL_CACHE_DIR: MODEL_CACHE,
        DATA_DIR: path.join(dir, 'data'),
        ORT_INTRA_OP_THREADS: '1',
        HF_HUB_OFFLINE: '1',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    url = await listeningUrl(proc, logs, 'compiled server');
    await waitReady(url, logs);
  }, INSTALL_TIMEOUT_MS + 3 * 60_000);

  afterAll(async () => {
    if (proc && proc.exitCode === null) {
      const exited = new Promise((resolve) => proc!.once('exit', resolve));
      proc.kill('SIGKILL');
      await exited;
    }
    // Not rmSync: removing the installed node_modules takes tens of seconds on a loaded disk, and a blocked
    // event loop makes vitest's worker miss its RPC deadline ("Timeout calling onTaskUpdate").
    if (dir) await fs.promises.rm(dir, { recursive: true, force: true });
  });

  it('installs production dependencies only', () => {
    expect(fs.existsSync(path.join(dir, 'dist/main.js'))).toBe(true);
    for (const dev of ['typescript', 'tsx', 'esbuild', 'vitest', 'playwright-core', 'openai', 'vite', 'preact']) expect(fs.existsSync(path.join(dir, 'node_modules', dev)), dev).toBe(false);
    expect(fs.existsSync(path.join(dir, 'node_modules/better-sqlite3'))).toBe(true);
  });

  it('answers /readyz and /healthz, with the version from package.json', async () => {
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const health = (await (await fetch(`${url}/v1/health`)).json()) as { status: string; version: string; model_loaded: boolean };
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string };
    expect(health).toMatchObject({ status: 'ok', model_loaded: true, version: pkg.version });
  });

  it('serves what it reads from packages at run time: GraphiQL assets and constrained decoding (xgrammar)', async () => {
    const page = await fetch(`${url}/graphql`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    const css = /href="(\/graphql\/assets\/[^"]+\.css)"/.exec(await page.text());
    expect(css).not.toBeNull();
    expect((await fetch(`${url}${css![1]}`)).status).toBe(200);

    const res = await fetch(`${url}/v1/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'prod-key' },
      body: JSON.stringify({ prompt: 'Once', max_new_tokens: 16, response_format: { type: 'choice', choices: ['positive', 'negative'] } }),
    });
    const body = (await res.json()) as { response?: string };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(['positive', 'negative']).toContain(body.response);
  });

  it('serves the web console built in the build stage (the prepare script skipped the production install: no Vite)', async () => {
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('cache-control')).toBe('no-cache');
    const js = /src="(\/assets\/[^"]+\.js)"/.exec(await page.text());
    expect(js).not.toBeNull();
    const asset = await fetch(`${url}${js![1]}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
  });

  it('drains and exits 0 on SIGTERM', async () => {
    const exited = new Promise<number | null>((resolve) => proc!.once('exit', (code) => resolve(code)));
    proc!.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
