import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';
import os from 'node:os';

export const REPO = path.resolve(import.meta.dirname, '../..');
export const STORIES = path.resolve(REPO, '../shared/models/stories260K/stories260K.bin');
export const hasStories = fs.existsSync(STORIES);
export const API_KEY = 'test-key-1';
/** Shared across test files so the checkpoint is imported once per run. */
export const MODEL_CACHE = path.join(os.tmpdir(), 'inference-server-test-cache');

export interface RunningServer {
  url: string;
  proc: ChildProcess;
  logs: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts the real server (src/main.ts) on port 0 and waits until it listens (and, by default, is ready). */
export async function startServer(env: Record<string, string> = {}, opts: { waitReady?: boolean } = {}): Promise<RunningServer> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: REPO,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      PORT: '0',
      HOST: '127.0.0.1',
      API_KEYS: `${API_KEY},test-key-2`,
      MODEL_PATH: STORIES,
      MODEL_CACHE_DIR: MODEL_CACHE,
      // A fresh SQLite store per server unless the test names one (to restart on the same data).
      DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'server-data-')),
      ORT_INTRA_OP_THREADS: '1',
      // Tests never reach the hub: the embedding model comes from EMBEDDING_MODEL_PATH or the decoder.
      HF_HUB_OFFLINE: '1',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const url = await listeningUrl(proc, logs);
  const server: RunningServer = {
    url,
    proc,
    logs,
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve(proc.exitCode);
        proc.once('exit', (code) => resolve(code));
        proc.kill(signal);
      }),
  };
  if (opts.waitReady !== false) await waitReady(url, logs);
  return server;
}

/**
 * Collects a starting server's output into `logs` (stdout line by line,
 * stderr as it comes) and resolves with its URL once it logs where it
 * listens; rejects if it exits first or says nothing within 60 s.
 */
export function listeningUrl(proc: ChildProcess, logs: string[], what = 'server'): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${what} did not start:\n${logs.join('\n')}`)), 60_000);
    proc.stdout!.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        logs.push(line);
        const m = /listening on http:\/\/[^:]+:(\d+)/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(`http://127.0.0.1:${m[1]}`);
        }
      }
    });
    proc.stderr!.on('data', (c: Buffer) => logs.push(c.toString()));
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}:\n${logs.join('\n')}`));
    });
  });
}

export async function waitReady(url: string, logs: string[] = [], timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await fetch(`${url}/readyz`).catch(() => undefined);
    if (r?.status === 200) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`server not ready:\n${logs.join('\n')}`);
}

export const authHeaders = { 'content-type': 'application/json', 'x-api-key': API_KEY };

export async function postJson(url: string, body: unknown, headers: Record<string, string> = authHeaders) {
  const res = await fetch(url, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { res, status: res.status, json, text };
}

export async function gql(url: string, query: string, variables?: unknown, headers: Record<string, string> = authHeaders) {
  return postJson(`${url}/graphql`, { query, variables }, headers);
}

/** Reads a server-sent-events response into its events. */
export async function readSse(res: Response): Promise<Array<{ event: string; data: any }>> {
  const text = await res.text();
  const events: Array<{ event: string; data: any }> = [];
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue;
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
    }
    const raw = data.join('\n');
    if (data.length) events.push({ event, data: raw ? JSON.parse(raw) : null });
  }
  return events;
}
