/**
 * Child processes of the benchmark (the servers under test, the raw loop,
 * the model builder): spawning, finding a port-0 server's port, readiness,
 * resident-memory sampling, and making sure every child dies with us.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';

const children = new Set<ChildProcess>();
let hooksInstalled = false;

/** Kills every child still running (SIGKILL): used on exit, where nothing async may run. */
function killAllNow(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping child processes\n`);
      killAllNow();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (err) => {
    process.stderr.write(`bench: uncaught exception: ${err.stack ?? String(err)}\n`);
    killAllNow();
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`bench: unhandled rejection: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    killAllNow();
    process.exit(1);
  });
}

/** Spawns a tracked child: it is killed when the benchmark exits for any reason. */
export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions): ChildProcess {
  installHooks();
  const child = spawn(cmd, args, opts);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Stops a child: SIGTERM, then SIGKILL after `graceMs`. Resolves when it has exited. */
export function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => {
      try {
        child.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }, graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export interface ServerHandle {
  name: string;
  child: ChildProcess;
  pid: number;
  port: number;
  url: string;
  /** The last lines of the server's stdout and stderr. */
  logs: string[];
  /** Every stdout line parsed as JSON (pino), newest last; bounded. */
  jsonLogs: Array<Record<string, unknown>>;
  rss: RssMonitor;
  stop(): Promise<void>;
}

const LISTEN_RE = /listening on http:\/\/[^:]+:(\d+)/;
const MAX_LOG_LINES = 400;

/**
 * Starts a server as a user would (`node --import tsx <entry>` with the given
 * environment), finds its port from the "listening on" log line, and waits
 * until GET /readyz answers 200. Everything is bounded by `timeoutMs`.
 */
export async function startServer(opts: {
  name: string;
  cwd: string;
  entry: string;
  env: Record<string, string | undefined>;
  timeoutMs: number;
}): Promise<ServerHandle> {
  const child = spawnTracked(process.execPath, ['--import', 'tsx', opts.entry], {
    cwd: opts.cwd,
    env: opts.env as NodeJS.ProcessEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const jsonLogs: Array<Record<string, unknown>> = [];
  const keep = (line: string) => {
    logs.push(line);
    if (logs.length > MAX_LOG_LINES) logs.shift();
  };
  let exited: string | undefined;
  child.once('exit', (code, sig) => {
    exited = `exited with ${code ?? sig}`;
  });
  const deadline = Date.now() + opts.timeoutMs;
  const failure = (what: string) =>
    new Error(`${opts.name}: ${what}\n--- last log lines ---\n${logs.slice(-40).join('\n')}`);

  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    let found = false;
    const timer = setTimeout(() => reject(failure(`no "listening on" line within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        keep(line);
        if (line.startsWith('{')) {
          try {
            jsonLogs.push(JSON.parse(line) as Record<string, unknown>);
            if (jsonLogs.length > MAX_LOG_LINES) jsonLogs.shift();
          } catch {
            /* not JSON */
          }
        }
        const m = LISTEN_RE.exec(line);
        if (m && !found) {
          found = true;
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) if (line) keep(`[stderr] ${line}`);
    });
    child.once('exit', () => {
      clearTimeout(timer);
      if (!found) reject(failure(exited ?? 'exited'));
    });
  });

  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    if (exited) throw failure(exited);
    if (Date.now() > deadline) {
      await stopChild(child);
      throw failure(`/readyz not 200 within ${opts.timeoutMs} ms`);
    }
    const status = await getStatus(`${url}/readyz`).catch(() => 0);
    if (status === 200) break;
    await sleep(200);
  }
  const rss = new RssMonitor(child.pid!, 200);
  return {
    name: opts.name,
    child,
    pid: child.pid!,
    port,
    url,
    logs,
    jsonLogs,
    rss,
    stop: async () => {
      rss.stop();
      await stopChild(child);
    },
  };
}

function getStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Reads VmRSS and VmHWM (kB) of a process from /proc; undefined where unavailable. */
export function readProcMemory(pid: number): { rssKb: number; hwmKb: number } | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+)\s*kB/.exec(text);
    const hwm = /VmHWM:\s+(\d+)\s*kB/.exec(text);
    if (!rss) return undefined;
    return { rssKb: Number(rss[1]), hwmKb: hwm ? Number(hwm[1]) : Number(rss[1]) };
  } catch {
    return undefined;
  }
}

/**
 * Polls a process's resident memory every `intervalMs` (VmRSS from
 * /proc/<pid>/status). `resetPeak()` starts a new window; `peakKb` is the
 * largest sample since. Reports nothing on systems without /proc.
 */
export class RssMonitor {
  private timer: NodeJS.Timeout;
  peakKb = 0;
  lastKb = 0;
  hwmKb = 0;
  samples = 0;

  constructor(
    readonly pid: number,
    intervalMs: number,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  sample(): number {
    const m = readProcMemory(this.pid);
    if (m) {
      this.lastKb = m.rssKb;
      this.hwmKb = m.hwmKb;
      this.peakKb = Math.max(this.peakKb, m.rssKb);
      this.samples++;
    }
    return this.lastKb;
  }

  resetPeak(): void {
    this.peakKb = 0;
    this.sample();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** Runs a command to completion with a time limit; rejects on a non-zero exit. Output is inherited or captured. */
export function runCommand(
  cmd: string,
  args: string[],
  opts: { cwd: string; timeoutMs: number; env?: NodeJS.ProcessEnv; input?: string; capture?: boolean },
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawnTracked(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', opts.capture ? 'pipe' : 'inherit', opts.capture ? 'pipe' : 'inherit'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')}: no result within ${opts.timeoutMs} ms`));
    }, opts.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`${cmd} ${args.join(' ')} exited with ${code ?? sig}\n${stderr.slice(-4000)}`));
    });
  });
}
