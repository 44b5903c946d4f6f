import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Router, type Request, type Response } from 'express';
import { jsonBody } from '../http/json.js';
import { invalidRequest, notFound } from '../errors.js';
import type { OutputConstraint } from '../engine/response-format.js';
import { asyncHandler } from '../rest/middleware.js';
import { quantizationJson } from '../rest/health-routes.js';
import type { CompletionEvent, CompletionResult, CompletionService, NamedLogprob } from '../services/completions.js';
import type { EmbeddingHost } from '../services/embeddings/host.js';
import type { ModelHost } from '../services/model-host.js';
import { listModels, type ServedModel } from '../services/models.js';
import { parseInput } from '../services/validation.js';
import { ResponseFormatSchema, toOutputConstraint } from '../services/response-format-schema.js';
import { ChatCompletionSchema, CompletionSchema, type ChatCompletionRequest, type CompletionRequestBody } from './schemas.js';

/**
 * The OpenAI-compatible surface (contract section 8): chat completions,
 * legacy completions and models (the chat model, then the embedding model
 * POST /v1/embeddings serves), in OpenAI's shapes field for field, over
 * the same completion service, engine, limits, cache and metrics as the
 * contract's routes. Errors on these paths are shaped by rest/middleware's
 * errorHandler in OpenAI's form (openai/errors.ts).
 */

const id = (prefix: string) => `${prefix}-${randomBytes(12).toString('hex')}`;
const now = () => Math.floor(Date.now() / 1000);

/**
 * The model names a request may use: the served model's name, its hub id or
 * its directory's name, and `default`; anything else is 404 model_not_found.
 */
function checkModel(host: ModelHost, requested: string | undefined): void {
  if (requested === undefined || requested === '' || acceptedNames(host).has(requested)) return;
  throw notFound(`The model \`${requested}\` does not exist; this server serves ${host.modelName}`, { field: 'model', model: requested });
}

function acceptedNames(host: ModelHost): Set<string> {
  const names = new Set([host.modelName, 'default']);
  const source = host.engine?.info.source;
  if (source) {
    // A hub model's source is its id (HuggingFaceTB/SmolLM2-135M-Instruct), what OpenAI-style clients send as is.
    if (!path.isAbsolute(source)) names.add(source);
    names.add(path.basename(source));
  }
  return names;
}

const usageJson = (u: CompletionResult['usage']) => ({
  prompt_tokens: u.promptTokens,
  completion_tokens: u.completionTokens,
  total_tokens: u.totalTokens,
});

const bytes = (s: string) => [...Buffer.from(s, 'utf8')];

/** Chat completions' logprobs entry for one token. */
const chatLogprob = (lp: NamedLogprob) => ({
  token: lp.token,
  logprob: lp.logprob,
  bytes: bytes(lp.token),
  top_logprobs: lp.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: bytes(t.token) })),
});

/** Legacy completions' logprobs object for a run of tokens, with offsets from `offset` in the choice's text. */
function legacyLogprobs(lps: NamedLogprob[], offset: number) {
  const text_offset: number[] = [];
  let at = offset;
  for (const lp of lps) {
    text_offset.push(at);
    at += lp.token.length;
  }
  return {
    tokens: lps.map((lp) => lp.token),
    token_logprobs: lps.map((lp) => lp.logprob),
    top_logprobs: lps.map((lp) => Object.fromEntries(lp.top.map((t) => [t.token, t.logprob]))),
    text_offset,
  };
}

/** Server-sent events as OpenAI streams them: `data: {json}` lines, then `data: [DONE]`. */
class OpenAiStream {
  private opened = false;
  constructor(private readonly res: Response) {}
  send(data: unknown): void {
    if (!this.opened) {
      this.opened = true;
      this.res.status(200);
      this.res.setHeader('content-type', 'text/event-stream; charset=utf-8');
      this.res.setHeader('cache-control', 'no-cache, no-transform');
      this.res.setHeader('connection', 'keep-alive');
      this.res.setHeader('x-accel-buffering', 'no');
      this.res.flushHeaders();
    }
    if (!this.res.writableEnded && !this.res.destroyed) this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }
  done(): void {
    if (this.res.writableEnded || this.res.destroyed) return;
    this.res.write('data: [DONE]\n\n');
    this.res.end();
  }
}

const fingerprint = (host: ModelHost) => `fp_${host.engine?.info.fingerprint ?? 'loading'}`;

export function openAiRouter(completions: CompletionService, host: ModelHost, embeddings: EmbeddingHost, maxBodyBytes: number): Router {
  const router = Router();
  const json = jsonBody(maxBodyBytes);

  router.post(
    '/v1/chat/completions',
    json,
    asyncHandler(async (req, res) => {
      const body = parseInput(ChatCompletionSchema, req.body);
      checkModel(host, body.model);
      const request = {
        input: { kind: 'chat' as const, messages: body.messages },
        n: body.n,
        sampling: samplingOf(body, body.max_completion_tokens ?? body.max_tokens ?? 1024),
        seed: body.seed,
        logprobs: body.logprobs ? (body.top_logprobs ?? 0) : undefined,
        format: formatOf(body),
      };
      const meta = { id: id('chatcmpl'), created: now(), model: host.modelName, system_fingerprint: fingerprint(host) };
      if (!body.stream) {
        const r = await completions.complete(request, req.ctx);
        res.json({
          ...meta,
          object: 'chat.completion',
          model: r.model,
          choices: r.choices.map((c) => ({
            index: c.index,
            message: { role: 'assistant', content: c.text, refusal: null },
            logprobs: c.logprobs ? { content: c.logprobs.map(chatLogprob), refusal: null } : null,
            finish_reason: c.finishReason,
          })),
          usage: usageJson(r.usage),
        });
        return;
      }
      const stream = new OpenAiStream(res);
      const includeUsage = body.stream_options?.include_usage === true;
      const chunk = (choices: unknown[]) => ({ ...meta, object: 'chat.completion.chunk', choices, ...(includeUsage ? { usage: null } : {}) });
      const started = new Set<number>();
      const onEvent = (e: CompletionEvent) => {
        // The role comes first, in a chunk of its own, as OpenAI sends it.
        if (!started.has(e.index)) {
          started.add(e.index);
          stream.send(chunk([{ index: e.index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]));
        }
        if (e.finishReason) {
          stream.send(chunk([{ index: e.index, delta: {}, logprobs: null, finish_reason: e.finishReason }]));
        } else if (e.text || e.logprob) {
          stream.send(chunk([{ index: e.index, delta: { content: e.text }, logprobs: e.logprob ? { content: [chatLogprob(e.logprob)], refusal: null } : null, finish_reason: null }]));
        }
      };
      const r = await completions.complete(request, req.ctx, onEvent);
      if (includeUsage) stream.send({ ...meta, object: 'chat.completion.chunk', choices: [], usage: usageJson(r.usage) });
      stream.done();
    }),
  );

  router.post(
    '/v1/completions',
    json,
    asyncHandler(async (req, res) => {
      const body = parseInput(CompletionSchema, req.body);
      checkModel(host, body.model);
      const request = {
        input: { kind: 'text' as const, prompts: body.prompt, echo: body.echo },
        n: body.n,
        sampling: samplingOf(body, body.max_tokens),
        seed: body.seed,
        logprobs: body.logprobs ?? undefined,
        format: formatOf(body),
      };
      const meta = { id: id('cmpl'), created: now(), model: host.modelName, system_fingerprint: fingerprint(host) };
      if (!body.stream) {
        const r = await completions.complete(request, req.ctx);
        res.json({
          ...meta,
          object: 'text_completion',
          model: r.model,
          choices: r.choices.map((c) => ({
            index: c.index,
            text: c.text,
            logprobs: c.logprobs ? legacyLogprobs(c.logprobs, 0) : null,
            finish_reason: c.finishReason,
          })),
          usage: usageJson(r.usage),
        });
        return;
      }
      const stream = new OpenAiStream(res);
      const includeUsage = body.stream_options?.include_usage === true;
      const offsets = new Map<number, number>();
      const chunk = (choice: unknown) => ({ ...meta, object: 'text_completion', choices: [choice], ...(includeUsage ? { usage: null } : {}) });
      const onEvent = (e: CompletionEvent) => {
        if (e.finishReason) {
          stream.send(chunk({ index: e.index, text: '', logprobs: null, finish_reason: e.finishReason }));
          return;
        }
        if (!e.text && !e.logprob) return;
        const at = offsets.get(e.index) ?? 0;
        offsets.set(e.index, at + e.text.length);
        stream.send(chunk({ index: e.index, text: e.text, logprobs: e.logprob ? legacyLogprobs([e.logprob], at) : null, finish_reason: null }));
      };
      const r = await completions.complete(request, req.ctx, onEvent);
      if (includeUsage) stream.send({ ...meta, object: 'text_completion', choices: [], usage: usageJson(r.usage) });
      stream.done();
    }),
  );

  // OpenAI's Model object; context_window (and an embedding model's dimensions) are extras, as vLLM adds max_model_len.
  const modelJson = (m: ServedModel) => ({
    id: m.id,
    object: 'model',
    created: m.created ?? now(),
    owned_by: m.ownedBy,
    context_window: m.contextWindow,
    ...(m.kind === 'embedding' ? { dimensions: m.dimensions } : {}),
    // An extra: how the weights are quantized (null: fp32).
    quantization: quantizationJson(m.quantization),
  });
  router.get('/v1/models', (_req: Request, res: Response) => {
    res.json({ object: 'list', data: listModels(host, embeddings).map(modelJson) });
  });
  router.get(
    '/v1/models/:id',
    asyncHandler(async (req, res) => {
      const requested = String(req.params.id);
      const listed = listModels(host, embeddings);
      const chat = listed[0]!;
      const embedding = listed.find((m) => m.kind === 'embedding');
      // The chat model first: names both answer to (`default`, the decoder's own name) are the chat model's.
      if (acceptedNames(host).has(requested)) res.json(modelJson(chat));
      else if (embedding && embeddings.answersTo(requested)) res.json(modelJson(embedding));
      else throw notFound(`The model \`${requested}\` does not exist`, { field: 'model', model: requested });
    }),
  );
  return router;
}

/**
 * The request's output constraint: response_format (chat completions), or
 * one of vLLM's guided_json / guided_choice / guided_regex, validated by
 * the same schema as response_format; more than one is refused.
 */
function formatOf(body: ChatCompletionRequest | CompletionRequestBody): OutputConstraint | undefined {
  const given: Array<[string, unknown]> = [];
  if ('response_format' in body && body.response_format && body.response_format.type !== 'text') given.push(['response_format', body.response_format]);
  if (body.guided_json !== null && body.guided_json !== undefined) given.push(['guided_json', { type: 'json_schema', json_schema: { schema: body.guided_json } }]);
  if (body.guided_choice) given.push(['guided_choice', { type: 'choice', choices: body.guided_choice }]);
  if (body.guided_regex !== null && body.guided_regex !== undefined) given.push(['guided_regex', { type: 'regex', pattern: body.guided_regex }]);
  if (given.length > 1) throw invalidRequest(`give at most one of ${given.map(([k]) => k).join(', ')}`, { field: given[1]![0] });
  const [field, raw] = given[0] ?? [];
  if (!field) return undefined;
  return toOutputConstraint(parseInput(ResponseFormatSchema, raw, () => field));
}

/** OpenAI's sampling fields as the completion service's (their defaults: temperature 1, top_p 1). */
function samplingOf(body: ChatCompletionRequest | CompletionRequestBody, maxTokens: number) {
  return {
    max_new_tokens: maxTokens,
    temperature: body.temperature,
    top_p: body.top_p,
    top_k: body.top_k,
    repetition_penalty: body.repetition_penalty,
    stop: body.stop,
    presence_penalty: body.presence_penalty,
    frequency_penalty: body.frequency_penalty,
    logit_bias: body.logit_bias,
    min_p: body.min_p,
    min_tokens: body.min_tokens,
    ignore_eos: body.ignore_eos,
  };
}
