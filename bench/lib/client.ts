/**
 * The load generator: closed-loop HTTP streaming clients against
 * POST /v1/chat with `stream: true` (the contract's server-sent events), or
 * POST /v1/chat/completions (OpenAI's `data:` chunks), timing every token
 * event client-side.
 */
import http from 'node:http';
import type { Prompt } from './prompts.js';
import { DoubleList, round, summarize } from './stats.js';

export interface SamplingProfile {
  maxNewTokens: number;
  temperature: number;
  topP: number;
  topK: number;
}

/** One request as the client saw it. */
export interface RequestOutcome {
  ok: boolean;
  /** Error key: `http_<status>:<code>`, `sse:<code>`, `net:<code>`, `timeout`, `incomplete`. */
  error?: string;
  startMs: number;
  endMs: number;
  /** Client-side time to the first token event, from sending the request. */
  ttftMs?: number;
  tokenEvents: number;
  promptTokens?: number;
  completionTokens?: number;
  serverTtftMs?: number;
}

/**
 * Sends one streaming chat request and reads its server-sent events. Token
 * event arrival times go to `gaps` (the gaps between consecutive events).
 * Never throws; always settles within `timeoutMs`.
 */
export function streamChat(opts: {
  agent: http.Agent;
  port: number;
  apiKey: string;
  body: Record<string, unknown>;
  timeoutMs: number;
  gaps?: DoubleList;
  /** `contract` (default): POST /v1/chat; `openai`: POST /v1/chat/completions. */
  api?: StreamApi;
}): Promise<RequestOutcome> {
  const openai = opts.api === 'openai';
  const payload = JSON.stringify(opts.body);
  const startMs = performance.now();
  return new Promise<RequestOutcome>((resolve) => {
    let settled = false;
    let firstTokenAt: number | undefined;
    let lastTokenAt: number | undefined;
    let tokenEvents = 0;
    const finish = (o: Partial<RequestOutcome> & { ok: boolean }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({
        startMs,
        endMs: performance.now(),
        tokenEvents,
        ttftMs: firstTokenAt === undefined ? undefined : firstTokenAt - startMs,
        ...o,
      });
    };
    const req = http.request(
      {
        agent: opts.agent,
        host: '127.0.0.1',
        port: opts.port,
        method: 'POST',
        path: openai ? '/v1/chat/completions' : '/v1/chat',
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
          'x-api-key': opts.apiKey,
          accept: 'text/event-stream',
        },
      },
      (res) => {
        res.setEncoding('utf8');
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          let text = '';
          res.on('data', (c: string) => (text += c.length < 65536 ? c : ''));
          res.on('end', () => {
            let code = 'unknown';
            try {
              const error = (JSON.parse(text) as { error?: { code?: string | null; type?: string } }).error;
              code = String(error?.code ?? error?.type ?? 'unknown');
            } catch {
              /* not JSON */
            }
            finish({ ok: false, error: `http_${status}:${code}` });
          });
          res.on('error', () => finish({ ok: false, error: `http_${status}:aborted` }));
          return;
        }
        let buf = '';
        let done = false;
        const token = (now: number) => {
          tokenEvents++;
          if (firstTokenAt === undefined) firstTokenAt = now;
          else if (lastTokenAt !== undefined) opts.gaps?.push(now - lastTokenAt);
          lastTokenAt = now;
        };
        // OpenAI chunks: content deltas are the token events; usage comes in a last chunk, then [DONE].
        let usage: Record<string, unknown> | undefined;
        const openAiBlock = (block: string, now: number) => {
          const data = block.startsWith('data:') ? block.slice(5).trim() : '';
          if (data === '[DONE]') {
            done = true;
            finish(
              usage
                ? { ok: true, promptTokens: num(usage['prompt_tokens']), completionTokens: num(usage['completion_tokens']) }
                : { ok: false, error: 'incomplete' },
            );
            return;
          }
          let parsed: { choices?: Array<{ delta?: { content?: string } }>; usage?: Record<string, unknown> | null; error?: { code?: string; type?: string } };
          try {
            parsed = JSON.parse(data) as typeof parsed;
          } catch {
            return;
          }
          if (parsed.error) {
            done = true;
            finish({ ok: false, error: `sse:${parsed.error.code ?? parsed.error.type ?? 'unknown'}` });
            return;
          }
          if (parsed.usage) usage = parsed.usage;
          if (parsed.choices?.[0]?.delta?.content) token(now);
        };
        res.on('data', (chunk: string) => {
          const now = performance.now();
          buf += chunk;
          let sep: number;
          while ((sep = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, sep);
            buf = buf.slice(sep + 2);
            if (openai) {
              openAiBlock(block, now);
              continue;
            }
            // Only the event name is needed for token events; data is parsed for done/error.
            const nl = block.indexOf('\n');
            const first = nl >= 0 ? block.slice(0, nl) : block;
            const event = first.startsWith('event:') ? first.slice(6).trim() : 'message';
            if (event === 'token') {
              token(now);
              continue;
            }
            const data = block
              .split('\n')
              .filter((l) => l.startsWith('data:'))
              .map((l) => l.slice(5).trimStart())
              .join('\n');
            let parsed: Record<string, unknown> | undefined;
            try {
              parsed = JSON.parse(data) as Record<string, unknown>;
            } catch {
              parsed = undefined;
            }
            if (event === 'done') {
              done = true;
              finish({
                ok: true,
                promptTokens: num(parsed?.['prompt_tokens']),
                completionTokens: num(parsed?.['completion_tokens']),
                serverTtftMs: num(parsed?.['time_to_first_token_ms']),
              });
            } else if (event === 'error') {
              const code = (parsed?.['error'] as { code?: string } | undefined)?.code ?? 'unknown';
              done = true;
              finish({ ok: false, error: `sse:${code}` });
            }
          }
        });
        res.on('end', () => {
          if (!done) finish({ ok: false, error: 'incomplete' });
        });
        res.on('error', () => finish({ ok: false, error: 'net:response_aborted' }));
      },
    );
    const timer = setTimeout(() => {
      finish({ ok: false, error: 'timeout' });
      req.destroy();
    }, opts.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, error: `net:${err.code ?? 'error'}` }));
    req.end(payload);
  });
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** Which streaming API a client speaks. */
export type StreamApi = 'contract' | 'openai';

/**
 * What each request sends: `prompt` (POST /v1/chat with the prompt text, the
 * benchmark's own profile), `messages` (POST /v1/chat with the prompt as one
 * user message, read through the chat template), `chat-completions` (POST
 * /v1/chat/completions with that same message). The sampling fields are the
 * same in all three, so the same seed gives the same tokens.
 */
export type RequestShape = 'prompt' | 'messages' | 'chat-completions';

/** The request body of `shape` for a prompt and a profile. */
export function requestBody(shape: RequestShape, text: string, profile: SamplingProfile, seed: number): Record<string, unknown> {
  const sampling = { temperature: profile.temperature, top_p: profile.topP, top_k: profile.topK, repetition_penalty: 1, seed, stream: true };
  const messages = [{ role: 'user', content: text }];
  switch (shape) {
    case 'prompt':
      return { prompt: text, max_new_tokens: profile.maxNewTokens, ...sampling };
    case 'messages':
      return { messages, max_new_tokens: profile.maxNewTokens, ...sampling };
    case 'chat-completions':
      return { messages, max_tokens: profile.maxNewTokens, ...sampling, stream_options: { include_usage: true } };
  }
}

export interface LoadOptions {
  port: number;
  apiKey: string;
  concurrency: number;
  /** Stop starting requests after this many seconds (closed loop)... */
  durationS?: number;
  /** ...or after this many requests in total. */
  requests?: number;
  prompts: Prompt[];
  profile: SamplingProfile;
  /** Seeds are seedBase + request number: distinct for every request. */
  seedBase: number;
  requestTimeoutMs: number;
  /** Called once a second with the elapsed seconds (soak sampling). */
  onSecond?: (elapsedS: number) => void;
  /** What each request sends (default `prompt`: POST /v1/chat with the prompt text). */
  shape?: RequestShape;
}

export interface LoadResult {
  concurrency: number;
  wall_s: number;
  requests_ok: number;
  requests_failed: number;
  errors: Record<string, number>;
  completion_tokens: number;
  tok_s: number;
  req_s: number;
  ttft_ms: { p50: number; p95: number; mean: number };
  server_ttft_ms: { p50: number; p95: number };
  e2e_ms: { p50: number; p95: number; mean: number };
  itl_ms: { mean: number; p95: number; samples: number };
  prompt_tokens: { min: number; max: number; mean: number };
  completion_tokens_per_request: { min: number; max: number; mean: number };
  /** Requests where the tokenizer of the bench and the server disagree on prompt_tokens. */
  prompt_token_mismatches: number;
}

/**
 * Closed loop: `concurrency` workers, each sending its next request as soon
 * as the previous one finished, until the duration is over or the request
 * count is reached. Requests in flight at the deadline complete and count;
 * throughput is over the whole wall time. Bounded: no request outlives its
 * timeout, so the run ends by itself.
 */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  if (o.durationS === undefined && o.requests === undefined) throw new Error('runLoad needs a duration or a request count');
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
  const gaps = new DoubleList();
  const outcomes: RequestOutcome[] = [];
  const startedAt = performance.now();
  const deadline = o.durationS === undefined ? Infinity : startedAt + o.durationS * 1000;
  let next = 0;
  let mismatches = 0;
  let ticker: NodeJS.Timeout | undefined;
  if (o.onSecond) {
    const cb = o.onSecond;
    ticker = setInterval(() => cb((performance.now() - startedAt) / 1000), 1000);
  }
  const worker = async () => {
    for (;;) {
      if (performance.now() >= deadline) return;
      if (o.requests !== undefined && next >= o.requests) return;
      const k = next++;
      const prompt = o.prompts[k % o.prompts.length]!;
      const shape = o.shape ?? 'prompt';
      const outcome = await streamChat({
        agent,
        port: o.port,
        apiKey: o.apiKey,
        timeoutMs: o.requestTimeoutMs,
        gaps,
        api: shape === 'chat-completions' ? 'openai' : 'contract',
        body: requestBody(shape, prompt.text, o.profile, (o.seedBase + k) % 4294967296),
      });
      // A conversation reads more tokens than its text (the template's framing): only plain prompts are checked.
      if (shape === 'prompt' && outcome.ok && outcome.promptTokens !== undefined && outcome.promptTokens !== prompt.tokens) mismatches++;
      outcomes.push(outcome);
      // A server that fails at once would otherwise be hammered in a tight loop.
      if (!outcome.ok) await new Promise((r) => setTimeout(r, 10));
    }
  };
  try {
    await Promise.all(Array.from({ length: o.concurrency }, worker));
  } finally {
    if (ticker) clearInterval(ticker);
    agent.destroy();
  }
  const wallS = (performance.now() - startedAt) / 1000;
  const ok = outcomes.filter((x) => x.ok);
  const errors: Record<string, number> = {};
  for (const x of outcomes) if (!x.ok) errors[x.error ?? 'unknown'] = (errors[x.error ?? 'unknown'] ?? 0) + 1;
  const completion = ok.reduce((s, x) => s + (x.completionTokens ?? x.tokenEvents), 0);
  const ttft = summarize(ok.filter((x) => x.ttftMs !== undefined).map((x) => x.ttftMs!));
  const sttft = summarize(ok.filter((x) => x.serverTtftMs !== undefined).map((x) => x.serverTtftMs!));
  const e2e = summarize(ok.map((x) => x.endMs - x.startMs));
  const itl = summarize(gaps.toArray());
  const pt = summarize(ok.filter((x) => x.promptTokens !== undefined).map((x) => x.promptTokens!));
  const ct = summarize(ok.map((x) => x.completionTokens ?? x.tokenEvents));
  return {
    concurrency: o.concurrency,
    wall_s: round(wallS, 3),
    requests_ok: ok.length,
    requests_failed: outcomes.length - ok.length,
    errors,
    completion_tokens: completion,
    tok_s: round(completion / wallS, 1),
    req_s: round(ok.length / wallS, 3),
    ttft_ms: { p50: round(ttft.p50), p95: round(ttft.p95), mean: round(ttft.mean) },
    server_ttft_ms: { p50: round(sttft.p50), p95: round(sttft.p95) },
    e2e_ms: { p50: round(e2e.p50), p95: round(e2e.p95), mean: round(e2e.mean) },
    itl_ms: { mean: round(itl.mean, 3), p95: round(itl.p95, 3), samples: itl.count },
    prompt_tokens: { min: pt.min, max: pt.max, mean: round(pt.mean, 1) },
    completion_tokens_per_request: { min: ct.min, max: ct.max, mean: round(ct.mean, 1) },
    prompt_token_mismatches: mismatches,
  };
}
