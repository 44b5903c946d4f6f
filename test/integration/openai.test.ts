import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GOLDEN } from '../helpers/golden.js';
import { storiesModel } from '../helpers/models.js';
import { API_KEY, authHeaders, postJson, startServer, type RunningServer } from '../helpers/server.js';

// The official `openai` package is the client: what works here works for any code written against OpenAI.
describe.skipIf(!storiesModel.present)(storiesModel.title('OpenAI-compatible API (the official SDK) with stories260K'), () => {
  let server: RunningServer;
  let client: OpenAI;
  beforeAll(async () => {
    server = await startServer({ RATE_LIMIT_PER_MINUTE: '0' });
    client = new OpenAI({ apiKey: API_KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
  });
  afterAll(async () => {
    await server?.stop();
  });

  const [goldenPrompt, goldenText] = GOLDEN[0]!;

  it('legacy completions, greedy, reproduce the reference output with OpenAI shapes and usage', async () => {
    const r = await client.completions.create({ model: 'stories260K', prompt: goldenPrompt, max_tokens: 60, temperature: 0 });
    expect(r.object).toBe('text_completion');
    expect(r.id).toMatch(/^cmpl-/);
    expect(r.system_fingerprint).toMatch(/^fp_[0-9a-f]{12}$/);
    expect(goldenText.startsWith(goldenPrompt + r.choices[0]!.text) || (goldenPrompt + r.choices[0]!.text).startsWith(goldenText)).toBe(true);
    expect(r.usage).toEqual({ prompt_tokens: 5, completion_tokens: r.usage!.completion_tokens, total_tokens: 5 + r.usage!.completion_tokens });
    expect(r.choices[0]!.finish_reason).toMatch(/^(stop|length)$/);
  });

  it('chat completions: streamed text equals the non-streamed greedy text; usage equals the token counts', async () => {
    const messages = [{ role: 'user' as const, content: 'Once upon a time' }];
    const full = await client.chat.completions.create({ model: 'stories260K', messages, max_tokens: 40, temperature: 0 });
    expect(full.object).toBe('chat.completion');
    expect(full.id).toMatch(/^chatcmpl-/);
    expect(full.choices[0]!.message.role).toBe('assistant');
    const stream = await client.chat.completions.create({
      model: 'stories260K',
      messages,
      max_tokens: 40,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let role: string | undefined;
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk');
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        role ??= c.delta.role ?? undefined;
        text += c.delta.content ?? '';
        finish = c.finish_reason ?? finish;
      }
    }
    expect(role).toBe('assistant');
    expect(text).toBe(full.choices[0]!.message.content);
    expect(finish).toBe(full.choices[0]!.finish_reason);
    expect(usage).toEqual(full.usage);
  });

  it('n: 3 gives three choices, each its own seed; the same seed reproduces them', async () => {
    const body = { model: 'stories260K', messages: [{ role: 'user' as const, content: 'One day' }], max_tokens: 20, temperature: 1, n: 3, seed: 11 };
    const a = await client.chat.completions.create(body);
    const b = await client.chat.completions.create(body);
    expect(a.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(new Set(a.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
    expect(b.choices.map((c) => c.message.content)).toEqual(a.choices.map((c) => c.message.content));
    expect(a.usage!.completion_tokens).toBeGreaterThanOrEqual(3);
  });

  it('logprobs: at temperature 0 the chosen token is the most probable of top_logprobs, which are sorted and sum to at most 1', async () => {
    const r = await client.chat.completions.create({
      model: 'stories260K',
      messages: [{ role: 'user', content: 'Once upon a time' }],
      max_tokens: 12,
      temperature: 0,
      logprobs: true,
      top_logprobs: 5,
    });
    const content = r.choices[0]!.logprobs!.content!;
    expect(content.length).toBe(r.usage!.completion_tokens - (r.choices[0]!.finish_reason === 'stop' ? 1 : 0));
    for (const t of content) {
      expect(Number.isFinite(t.logprob)).toBe(true);
      expect(t.top_logprobs).toHaveLength(5);
      expect(t.top_logprobs[0]!.token).toBe(t.token);
      expect(t.top_logprobs[0]!.logprob).toBe(t.logprob);
      for (let i = 1; i < 5; i++) expect(t.top_logprobs[i - 1]!.logprob).toBeGreaterThanOrEqual(t.top_logprobs[i]!.logprob);
      expect(t.top_logprobs.reduce((s, x) => s + Math.exp(x.logprob), 0)).toBeLessThanOrEqual(1 + 1e-9);
    }
  });

  it('stop strings end the text before them', async () => {
    const r = await client.completions.create({ model: 'stories260K', prompt: goldenPrompt, max_tokens: 60, temperature: 0, stop: ['Lily'] });
    expect(r.choices[0]!.text).toBe(', there was a little girl named ');
    expect(r.choices[0]!.finish_reason).toBe('stop');
  });

  it('completions with an array prompt: one choice per prompt; echo puts the prompt back', async () => {
    const r = await client.completions.create({ model: 'default', prompt: GOLDEN.map(([p]) => p), max_tokens: 8, temperature: 0, echo: true });
    expect(r.choices).toHaveLength(GOLDEN.length);
    r.choices.forEach((c, i) => expect(c.text.startsWith(GOLDEN[i]![0])).toBe(true));
    expect(goldenText.startsWith(r.choices[0]!.text)).toBe(true);
  });

  it('models.list and models.retrieve name the served model with its context window; others are NotFoundError', async () => {
    const list = await client.models.list();
    const ids = list.data.map((m) => m.id);
    expect(ids).toContain('stories260K');
    const m = await client.models.retrieve('stories260K');
    expect(m).toMatchObject({ id: 'stories260K', object: 'model', owned_by: expect.any(String) });
    expect((m as unknown as { context_window: number }).context_window).toBe(512);
    await expect(client.models.retrieve('gpt-4o')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const e = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);
    expect((e as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
  });

  it('embeddings.create: the embedding model /v1/models lists second; base64 (the SDK default) and float agree', async () => {
    const deadline = Date.now() + 60_000;
    let listed = (await client.models.list()).data;
    while (listed.length < 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      listed = (await client.models.list()).data;
    }
    // No encoder on this machine: the decoder's final hidden states, mean-pooled.
    expect(listed.map((m) => m.id)).toEqual(['stories260K', 'stories260K:mean-pool']);
    expect(listed[1]).toMatchObject({ object: 'model', owned_by: 'inference-server', dimensions: 64, context_window: 512 });
    expect(await client.models.retrieve('stories260K:mean-pool')).toMatchObject({ id: 'stories260K:mean-pool', dimensions: 64 });
    const input = ['Once upon a time', 'Lily had a red ball.'];
    const r = await client.embeddings.create({ model: 'stories260K:mean-pool', input });
    expect(r.object).toBe('list');
    expect(r.model).toBe('stories260K:mean-pool');
    expect(r.data.map((d) => [d.object, d.index, d.embedding.length])).toEqual([
      ['embedding', 0, 64],
      ['embedding', 1, 64],
    ]);
    expect(r.usage.prompt_tokens).toBeGreaterThan(0);
    expect(r.usage.total_tokens).toBe(r.usage.prompt_tokens);
    const floats = await client.embeddings.create({ model: 'stories260K:mean-pool', input, encoding_format: 'float' });
    expect(floats.data.map((d) => d.embedding)).toEqual(r.data.map((d) => d.embedding));
    const e = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'x' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('the response cache answers a repeated greedy request (cache_hits, cache_hit in the request log); metrics and logs name route templates', async () => {
    const body = { model: 'stories260K', messages: [{ role: 'user' as const, content: 'A cached question about a cat' }], max_tokens: 12, temperature: 0 };
    const metrics = async () => (await fetch(`${server.url}/v1/metrics`, { headers: authHeaders })).json() as Promise<any>;
    const before = (await metrics()).cache;
    const first = await client.chat.completions.create(body).withResponse();
    const second = await client.chat.completions.create(body).withResponse();
    expect(second.data.choices).toEqual(first.data.choices);
    expect(second.data.usage).toEqual(first.data.usage);
    const m = await metrics();
    expect(m.cache.hits - before.hits).toBe(1);
    expect(m.cache.misses - before.misses).toBe(1);
    const logged = (id: string | null) =>
      server.logs.map((l) => { try { return JSON.parse(l); } catch { return undefined; } }).find((l) => l?.msg === 'request' && l.request_id === id);
    await new Promise((r) => setTimeout(r, 50));
    expect(logged(first.response.headers.get('x-request-id'))).toMatchObject({ route: '/v1/chat/completions', status: 200, cache_hit: false });
    expect(logged(second.response.headers.get('x-request-id'))).toMatchObject({ route: '/v1/chat/completions', status: 200, cache_hit: true });
    // Route templates, never raw paths: GET /v1/models/stories260K counts under /v1/models/:id.
    const routes = (m.requests.routes as Array<{ route: string; method: string; total: number }>).map((r) => `${r.method} ${r.route}`);
    for (const r of ['POST /v1/chat/completions', 'POST /v1/completions', 'GET /v1/models', 'GET /v1/models/:id', 'POST /v1/embeddings']) expect(routes).toContain(r);
    expect(routes.some((r) => r.includes('stories260K'))).toBe(false);
  });

  it('errors come in OpenAI shape with the classes the SDK raises', async () => {
    const bad = await client.chat.completions.create({ model: 'stories260K', messages: [] }).catch((x: unknown) => x);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('messages');
    const tool = await client.chat.completions
      .create({ model: 'stories260K', messages: [{ role: 'tool', content: 'x', tool_call_id: 'a' }] })
      .catch((x: unknown) => x);
    expect(tool).toBeInstanceOf(OpenAI.BadRequestError);
    expect((tool as Error).message).toMatch(/tool/);
    const image = await client.chat.completions
      .create({ model: 'stories260K', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x/y.png' } }] }] })
      .catch((x: unknown) => x);
    expect(image).toBeInstanceOf(OpenAI.BadRequestError);
    const json = await client.chat.completions
      .create({
        model: 'stories260K',
        messages: [{ role: 'user', content: 'hi' }],
        response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', format: 'email' } } },
      })
      .catch((x: unknown) => x);
    expect(json).toBeInstanceOf(OpenAI.BadRequestError);
    expect((json as Error).message).toMatch(/"format"/);
    const nokey = new OpenAI({ apiKey: 'wrong', baseURL: `${server.url}/v1`, maxRetries: 0 });
    const auth = await nokey.models.list().catch((x: unknown) => x);
    expect(auth).toBeInstanceOf(OpenAI.AuthenticationError);
    // The raw shape, and the request id on every answer.
    const raw = await postJson(`${server.url}/v1/chat/completions`, { messages: 'hi' }, authHeaders);
    expect(raw.status).toBe(400);
    expect(raw.json).toEqual({ error: { message: expect.any(String), type: 'invalid_request_error', param: 'messages', code: null } });
    expect(raw.res.headers.get('x-request-id')).toBeTruthy();
  });
});

describe.skipIf(!storiesModel.present)(storiesModel.title('OpenAI-compatible API: rate limits'), () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({ RATE_LIMIT_PER_MINUTE: '2' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('429 is a RateLimitError with retry-after, counted against the same budget as the contract routes', async () => {
    const client = new OpenAI({ apiKey: API_KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
    await client.models.list();
    await postJson(`${server.url}/v1/chat`, { prompt: 'hi', max_new_tokens: 1 });
    const e = await client.models.list().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.RateLimitError);
    expect((e as InstanceType<typeof OpenAI.RateLimitError>).headers?.get('retry-after')).toMatch(/^\d+$/);
  });
});
