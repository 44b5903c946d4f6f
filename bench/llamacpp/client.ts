/**
 * Streaming completion clients for the llama.cpp side-by-side bench: one
 * request to llama-server's POST /completion (token-id prompt) or to our
 * POST /v1/completions (text prompt), timing every streamed event
 * client-side. Both are asked for the same thing (see bench/llamacpp.ts).
 */
import http from 'node:http';
import type { DoubleList } from '../lib/stats.js';

export type ServerKind = 'llamacpp' | 'ours';

export interface Outcome {
  ok: boolean;
  error?: string;
  startMs: number;
  endMs: number;
  ttftMs?: number;
  /** Streamed events that carried a token. */
  events: number;
  promptTokens?: number;
  completionTokens?: number;
  /** The generated text (only kept when asked). */
  text?: string;
  /** Token ids (llama.cpp only, when it returns them). */
  ids?: number[];
  /** The last JSON chunk, for checks (usage, timings). */
  last?: Record<string, unknown>;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/**
 * POSTs `body` (JSON) to `path` and reads `data:` server-sent events until the
 * stream ends. llama.cpp: one event per emitted token, the last with
 * `stop: true`, `tokens_predicted` and `tokens_evaluated`. Ours: OpenAI
 * chunks, a usage chunk, then `[DONE]`. Never throws; settles within `timeoutMs`.
 */
export function streamCompletion(opts: {
  kind: ServerKind;
  agent: http.Agent;
  port: number;
  path: string;
  headers?: Record<string, string>;
  body: Record<string, unknown>;
  timeoutMs: number;
  gaps?: DoubleList;
  keepText?: boolean;
  /** Aborting it ends the request where it stands (error `cut`, its streamed events kept). */
  cut?: AbortSignal;
}): Promise<Outcome> {
  const payload = JSON.stringify(opts.body);
  const startMs = performance.now();
  return new Promise<Outcome>((resolve) => {
    let settled = false;
    let first: number | undefined;
    let prev: number | undefined;
    let events = 0;
    let text = '';
    const ids: number[] = [];
    let last: Record<string, unknown> | undefined;
    let onCut: (() => void) | undefined;
    const finish = (o: Partial<Outcome> & { ok: boolean }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (onCut) opts.cut?.removeEventListener('abort', onCut);
      resolve({
        startMs,
        endMs: performance.now(),
        events,
        ttftMs: first === undefined ? undefined : first - startMs,
        ...(opts.keepText ? { text, ids } : {}),
        last,
        ...o,
      });
    };
    const tokenEvent = (now: number) => {
      events++;
      if (first === undefined) first = now;
      else if (prev !== undefined) opts.gaps?.push(now - prev);
      prev = now;
    };
    const req = http.request(
      {
        agent: opts.agent,
        host: '127.0.0.1',
        port: opts.port,
        method: 'POST',
        path: opts.path,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), accept: 'text/event-stream', ...opts.headers },
      },
      (res) => {
        res.setEncoding('utf8');
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          let body = '';
          res.on('data', (c: string) => (body += body.length < 65536 ? c : ''));
          res.on('end', () => finish({ ok: false, error: `http_${status}`, text: body.slice(0, 500) }));
          res.on('error', () => finish({ ok: false, error: `http_${status}:aborted` }));
          return;
        }
        let buf = '';
        let done = false;
        let usage: Record<string, unknown> | undefined;
        const block = (b: string, now: number) => {
          const data = b
            .split('\n')
            .filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).trim())
            .join('\n');
          if (!data) return;
          if (data === '[DONE]') {
            done = true;
            finish({ ok: true, promptTokens: num(usage?.['prompt_tokens']), completionTokens: num(usage?.['completion_tokens']) });
            return;
          }
          let j: Record<string, unknown>;
          try {
            j = JSON.parse(data) as Record<string, unknown>;
          } catch {
            return;
          }
          last = j;
          if (j['error']) {
            done = true;
            const e = j['error'] as { code?: unknown; type?: unknown; message?: unknown };
            finish({ ok: false, error: `sse:${String(e.code ?? e.type ?? 'unknown')}` });
            return;
          }
          if (opts.kind === 'llamacpp') {
            const content = typeof j['content'] === 'string' ? (j['content'] as string) : '';
            const toks = Array.isArray(j['tokens']) ? (j['tokens'] as number[]) : [];
            if (j['stop'] === true) {
              done = true;
              if (content) {
                tokenEvent(now);
                text += content;
              }
              ids.push(...toks);
              finish({ ok: true, promptTokens: num(j['tokens_evaluated']), completionTokens: num(j['tokens_predicted']) });
              return;
            }
            tokenEvent(now);
            text += content;
            ids.push(...toks);
          } else {
            if (j['usage']) usage = j['usage'] as Record<string, unknown>;
            const choice = (j['choices'] as Array<{ text?: string }> | undefined)?.[0];
            if (choice?.text) {
              tokenEvent(now);
              text += choice.text;
            }
          }
        };
        res.on('data', (chunk: string) => {
          const now = performance.now();
          buf += chunk;
          let sep: number;
          while ((sep = buf.indexOf('\n\n')) >= 0) {
            const b = buf.slice(0, sep);
            buf = buf.slice(sep + 2);
            block(b, now);
          }
        });
        res.on('end', () => {
          if (buf.trim()) block(buf, performance.now());
          if (!done) finish({ ok: false, error: 'incomplete' });
        });
        res.on('error', () => finish({ ok: false, error: 'net:response_aborted' }));
      },
    );
    const timer = setTimeout(() => {
      finish({ ok: false, error: 'timeout' });
      req.destroy();
    }, opts.timeoutMs);
    onCut = () => {
      finish({ ok: false, error: 'cut' });
      req.destroy();
    };
    if (opts.cut?.aborted) onCut();
    else opts.cut?.addEventListener('abort', onCut, { once: true });
    req.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, error: `net:${err.code ?? 'error'}` }));
    req.end(payload);
  });
}

/** A plain JSON POST (non-streaming): status and parsed body. */
export function postJson(port: number, path: string, body: unknown, headers: Record<string, string> = {}, timeoutMs = 120_000): Promise<{ status: number; json: unknown }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path, timeout: timeoutMs, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) });
          } catch {
            resolve({ status: res.statusCode ?? 0, json: text });
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`POST ${path}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}
