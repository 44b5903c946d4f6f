/**
 * The `naive` baseline server: what a straightforward port of the original
 * service does. POST /v1/chat answers each request with ONE transformers.js
 * `generate()` call at a time (a simple mutex; no batching, no KV tricks),
 * streaming tokens through transformers.js's TextStreamer as server-sent
 * events in the real server's format (`token` events, then one `done` event
 * with the response object, or an `error` event), so the same client
 * measures both.
 *
 *   MODEL_DIR=<transformers.js model dir> PORT=0 HOST=127.0.0.1 API_KEY=k tsx bench/naive-server.ts
 *
 * Honest baseline notes: sampling is transformers.js's own (temperature and
 * top_k; it has no top_p and no seed, so `seed` is accepted and ignored).
 * Not for production: no body limit beyond 1 MB, no cancellation.
 */
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import {
  AutoModelForCausalLM,
  AutoTokenizer,
  env,
  TextStreamer,
  type PreTrainedModel,
  type PreTrainedTokenizer,
  type Tensor,
} from '@huggingface/transformers';

const PORT = Number(process.env.PORT ?? 8001);
const HOST = process.env.HOST ?? '127.0.0.1';
const MODEL_DIR = process.env.MODEL_DIR ?? process.env.MODEL_PATH;
const API_KEY = process.env.API_KEY ?? 'dev-local-key';
if (!MODEL_DIR) {
  process.stderr.write('naive-server: set MODEL_DIR to a transformers.js model directory\n');
  process.exit(1);
}

const log = (msg: string, extra: Record<string, unknown> = {}) =>
  process.stdout.write(JSON.stringify({ time: Date.now(), msg, ...extra }) + '\n');

let model: PreTrainedModel | undefined;
let tokenizer: PreTrainedTokenizer | undefined;
let loadError: string | undefined;

/** One generate() at a time. */
let tail: Promise<void> = Promise.resolve();
function exclusive<T>(fn: () => Promise<T>): Promise<T> {
  const run = tail.then(fn);
  tail = run.then(
    () => undefined,
    () => undefined,
  );
  return run;
}

/** A TextStreamer that reports, after each generated token, the text it released for it. */
class TokenStreamer extends TextStreamer {
  private pending = '';
  private index = 0;
  private seenPrompt = false;

  constructor(tok: PreTrainedTokenizer, private readonly onToken: (text: string, index: number) => void) {
    super(tok, {
      skip_prompt: true,
      skip_special_tokens: true,
      callback_function: (text: string) => {
        this.pending += text;
      },
    });
  }

  override put(value: bigint[][]): void {
    super.put(value);
    if (!this.seenPrompt) {
      this.seenPrompt = true;
      return;
    }
    this.onToken(this.pending, this.index++);
    this.pending = '';
  }

  /** The text still buffered at the end (TextStreamer releases it in end()). */
  finish(): string {
    super.end();
    const rest = this.pending;
    this.pending = '';
    return rest;
  }
}

interface ChatBody {
  prompt?: unknown;
  max_new_tokens?: unknown;
  temperature?: unknown;
  top_p?: unknown;
  top_k?: unknown;
  stream?: unknown;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, requestId: string): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-request-id': requestId });
  res.end(text);
}

const errorBody = (code: string, message: string, requestId: string) => ({ error: { code, message, details: null }, request_id: requestId });

async function chat(req: http.IncomingMessage, res: http.ServerResponse, requestId: string): Promise<void> {
  const key = req.headers['x-api-key'] ?? req.headers.authorization?.replace(/^Bearer\s+/i, '');
  if (key !== API_KEY) return sendJson(res, 401, errorBody('unauthorized', 'missing or invalid API key', requestId), requestId);
  if (!model || !tokenizer) return sendJson(res, 503, errorBody('model_not_loaded', loadError ?? 'model loading', requestId), requestId);
  let raw = '';
  for await (const c of req) {
    raw += (c as Buffer).toString('utf8');
    if (raw.length > 1 << 20) return sendJson(res, 413, errorBody('payload_too_large', 'body too large', requestId), requestId);
  }
  let body: ChatBody;
  try {
    body = JSON.parse(raw) as ChatBody;
  } catch {
    return sendJson(res, 400, errorBody('invalid_request', 'body is not JSON', requestId), requestId);
  }
  if (typeof body.prompt !== 'string' || !body.prompt.trim()) {
    return sendJson(res, 400, errorBody('invalid_request', 'prompt is required', requestId), requestId);
  }
  const prompt = body.prompt;
  const maxNew = typeof body.max_new_tokens === 'number' ? body.max_new_tokens : 160;
  const temperature = typeof body.temperature === 'number' ? body.temperature : 0.2;
  const topK = typeof body.top_k === 'number' ? body.top_k : 0;
  const stream = body.stream === true;
  const m = model;
  const tok = tokenizer;

  const started = performance.now();
  let firstTokenAt: number | undefined;
  let opened = false;
  const open = () => {
    if (opened) return;
    opened = true;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-request-id': requestId });
  };
  const send = (event: string, data: unknown) => {
    if (!res.writableEnded) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  try {
    const result = await exclusive(async () => {
      const inputs = tok(prompt) as { input_ids: Tensor; attention_mask: Tensor };
      const promptTokens = inputs.input_ids.dims.at(-1)!;
      let text = '';
      const streamer = new TokenStreamer(tok, (piece, index) => {
        firstTokenAt ??= performance.now();
        text += piece;
        if (stream) {
          open();
          send('token', { token: piece, index, request_id: requestId });
        }
      });
      const out = (await m.generate({
        ...inputs,
        max_new_tokens: maxNew,
        do_sample: temperature > 0,
        temperature: temperature > 0 ? temperature : 1,
        top_k: topK,
        streamer,
      })) as Tensor;
      const rest = streamer.finish();
      text += rest;
      const completionTokens = out.dims.at(-1)! - promptTokens;
      return { text, promptTokens, completionTokens };
    });
    const latencyMs = Math.round(performance.now() - started);
    const response = {
      response: result.text,
      latency_ms: latencyMs,
      prompt_tokens: result.promptTokens,
      completion_tokens: result.completionTokens,
      total_tokens: result.promptTokens + result.completionTokens,
      model: 'naive-baseline',
      request_id: requestId,
      finish_reason: result.completionTokens >= maxNew ? 'length' : 'stop',
      time_to_first_token_ms: firstTokenAt === undefined ? null : Math.round(firstTokenAt - started),
    };
    if (!stream) return sendJson(res, 200, response, requestId);
    open();
    send('done', response);
    res.end();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log('generate failed', { request_id: requestId, err: message });
    if (!opened) return sendJson(res, 500, errorBody('internal_error', message, requestId), requestId);
    send('error', errorBody('internal_error', message, requestId));
    res.end();
  }
}

const server = http.createServer((req, res) => {
  const requestId = randomUUID();
  const url = req.url ?? '/';
  if (req.method === 'GET' && url === '/healthz') return sendJson(res, 200, { status: 'ok' }, requestId);
  if (req.method === 'GET' && url === '/readyz') {
    return sendJson(res, model ? 200 : 503, { status: model ? 'ready' : 'loading' }, requestId);
  }
  if (req.method === 'POST' && (url === '/v1/chat' || url === '/chat')) {
    chat(req, res, requestId).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, errorBody('internal_error', String(err), requestId), requestId);
      else res.end();
    });
    return;
  }
  sendJson(res, 404, errorBody('not_found', 'not found', requestId), requestId);
});

server.listen(PORT, HOST, () => {
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : PORT;
  log(`listening on http://${HOST}:${port}`, { port });
});

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    server.close();
    void model?.dispose().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
    if (!model) process.exit(0);
  });
}

try {
  env.allowLocalModels = true;
  env.allowRemoteModels = false;
  const started = performance.now();
  tokenizer = await AutoTokenizer.from_pretrained(MODEL_DIR, { local_files_only: true });
  model = await AutoModelForCausalLM.from_pretrained(MODEL_DIR, { dtype: 'fp32', local_files_only: true });
  log('model ready', { model: { source: MODEL_DIR }, load_seconds: (performance.now() - started) / 1000 });
} catch (err) {
  loadError = err instanceof Error ? err.message : String(err);
  log('model load failed', { err: loadError });
}
