import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GOLDEN } from '../helpers/golden.js';
import { authHeaders, postJson, readSse, startServer, type RunningServer } from '../helpers/server.js';
import { storiesModel } from '../helpers/models.js';


describe.skipIf(!storiesModel.present)(storiesModel.title('REST chat with stories260K'), () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await server?.stop();
  });
  const chat = (body: unknown, headers?: Record<string, string>) => postJson(`${server.url}/v1/chat`, body, headers);

  it.each(GOLDEN)('greedy %j reproduces the reference output', async (prompt, reference) => {
    const { status, json } = await chat({ prompt, temperature: 0, max_new_tokens: 120 });
    expect(status).toBe(200);
    expect(prompt + json.response).toContain(reference.slice(0, 20));
    expect((prompt + json.response).startsWith(reference)).toBe(true);
  });

  it('answers with every contract field, consistent with each other', async () => {
    const { status, json, res } = await chat({ prompt: 'Once upon a time', temperature: 0, max_new_tokens: 20 });
    expect(status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe(json.request_id);
    expect(Number(res.headers.get('x-latency-ms'))).toBeGreaterThanOrEqual(0);
    // BOS + the prompt's pieces, as the reference tokenizer counts them.
    expect(json.prompt_tokens).toBe(5);
    expect(json.completion_tokens).toBe(20);
    expect(json.finish_reason).toBe('length');
    expect(json.total_tokens).toBe(json.prompt_tokens + json.completion_tokens);
    expect(json.context_window).toBe(512);
    expect(json.context_used_pct).toBeCloseTo((100 * 25) / 512, 4);
    expect(json.estimated_attention_ops).toBe(25 * 25);
    expect(json.output_to_input_ratio).toBe(4);
    expect(json).toMatchObject({
      model: 'stories260K',
      cache_hit: false,
      model_type: 'decoder-only',
      attention_masking: 'causal',
      attention_heads: 8,
      hidden_size: 64,
      refined: false,
      original_response: null,
      critique: null,
      refine_steps_used: 0,
    });
    expect(typeof json.latency_ms).toBe('number');
    expect(typeof json.time_to_first_token_ms).toBe('number');
  });

  it('the /chat alias answers like /v1/chat', async () => {
    const a = await postJson(`${server.url}/chat`, { prompt: 'Lily', temperature: 0, max_new_tokens: 10 });
    const b = await chat({ prompt: 'Lily', temperature: 0, max_new_tokens: 10 });
    expect(a.status).toBe(200);
    expect(a.json.response).toBe(b.json.response);
  });

  it('a story ending stops with finish_reason stop', async () => {
    const { json } = await chat({ prompt: 'Once upon a time', temperature: 0, max_new_tokens: 1024 });
    expect(json.finish_reason).toBe('stop');
    expect(json.completion_tokens).toBeLessThan(1024);
  });

  it('same seed gives the same text; different seeds differ', async () => {
    const body = { prompt: 'Once upon a time', temperature: 1, top_p: 1, max_new_tokens: 40 };
    const a = await chat({ ...body, seed: 1234 });
    const b = await chat({ ...body, seed: 1234 });
    const c = await chat({ ...body, seed: 999 });
    expect(a.json.response).toBe(b.json.response);
    expect(a.json.seed).toBe(1234);
    expect(c.json.response).not.toBe(a.json.response);
  });

  it('an unseeded sampled answer reports the seed that reproduces it', async () => {
    const body = { prompt: 'One day', temperature: 0.9, max_new_tokens: 30 };
    const a = await chat(body);
    const b = await chat({ ...body, seed: a.json.seed });
    expect(b.json.response).toBe(a.json.response);
  });

  it('a greedy answer reports seed null: nothing was sampled, whatever seed was sent', async () => {
    const greedy = await chat({ prompt: 'Once upon a time', temperature: 0, max_new_tokens: 8 });
    expect(greedy.json.seed).toBeNull();
    const seededGreedy = await chat({ prompt: 'Once upon a time', temperature: 0, max_new_tokens: 8, seed: 5 });
    expect(seededGreedy.json.seed).toBeNull();
    expect(seededGreedy.json.response).toBe(greedy.json.response);
    // Refine mode samples its critique unless critique_temperature is 0 too.
    const refine = await chat({ prompt: 'Once upon a time', temperature: 0, max_new_tokens: 8, mode: 'refine', critique_temperature: 0.5 });
    expect(typeof refine.json.seed).toBe(refine.json.refined ? 'number' : 'object');
  });

  it('messages in place of prompt: the conversation goes through the chat format (plain for stories260K)', async () => {
    const viaMessages = await chat({ messages: [{ role: 'user', content: 'Once upon a time' }], temperature: 0, max_new_tokens: 12 });
    expect(viaMessages.status).toBe(200);
    const viaPrompt = await chat({ prompt: 'User: Once upon a time\nAssistant:', temperature: 0, max_new_tokens: 12 });
    expect(viaMessages.json.response).toBe(viaPrompt.json.response);
    expect(viaMessages.json.prompt_tokens).toBe(viaPrompt.json.prompt_tokens);
    const both = await chat({ prompt: 'x', messages: [{ role: 'user', content: 'y' }] });
    expect(both.status).toBe(400);
    expect(both.json.error.details.field).toBe('prompt');
    const badRole = await chat({ messages: [{ role: 'tool', content: 'y' }] });
    expect(badRole.json.error.details.field).toBe('messages.0.role');
  });

  it('eight concurrent greedy requests equal one alone', async () => {
    const body = { prompt: 'One day, a big bear', temperature: 0, max_new_tokens: 60 };
    const alone = await chat(body);
    const many = await Promise.all(Array.from({ length: 8 }, () => chat(body)));
    for (const r of many) {
      expect(r.status).toBe(200);
      expect(r.json.response).toBe(alone.json.response);
    }
  });

  it('stop strings cut the response and finish with stop', async () => {
    const { json } = await chat({ prompt: 'Once upon a time', temperature: 0, max_new_tokens: 100, stop: ['Lily'] });
    expect(json.response).toBe(', there was a little girl named ');
    expect(json.finish_reason).toBe('stop');
  });

  it('max_new_tokens is cut at the context window', async () => {
    const prompt = 'Once upon a time there was a big dog. '.repeat(40);
    const { json, status } = await chat({ prompt, temperature: 0, max_new_tokens: 1024, repetition_penalty: 1.3 });
    expect(status).toBe(200);
    expect(json.total_tokens).toBeLessThanOrEqual(512);
    if (json.finish_reason === 'length') expect(json.total_tokens).toBe(512);
  });

  it('a prompt that leaves no room is invalid_request with the counts', async () => {
    const { status, json } = await chat({ prompt: 'dog '.repeat(600), temperature: 0 });
    expect(status).toBe(400);
    expect(json.error.code).toBe('invalid_request');
    expect(json.error.details.context_window).toBe(512);
    expect(json.error.details.prompt_tokens).toBeGreaterThanOrEqual(512);
  });

  it('refine mode critiques and rewrites with the model', async () => {
    const { status, json } = await chat({ prompt: 'Once upon a time', mode: 'refine', refine_steps: 1, temperature: 0, max_new_tokens: 30 });
    expect(status).toBe(200);
    expect(json.refined).toBe(true);
    expect(json.refine_steps_used).toBe(1);
    expect(typeof json.original_response).toBe('string');
    expect(typeof json.critique).toBe('string');
    expect(json.original_response.length).toBeGreaterThan(0);
    expect(json.refine_usage.prompt_tokens).toBeGreaterThan(json.prompt_tokens);
  });

  it('streams tokens as server-sent events whose text equals the non-streamed answer', async () => {
    const body = { prompt: 'Lily went to', temperature: 0.8, seed: 77, max_new_tokens: 50 };
    const plain = await chat(body);
    const res = await fetch(`${server.url}/v1/chat`, { method: 'POST', headers: authHeaders, body: JSON.stringify({ ...body, stream: true }) });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const events = await readSse(res);
    const tokens = events.filter((e) => e.event === 'token');
    const done = events.at(-1)!;
    expect(done.event).toBe('done');
    expect(tokens.length).toBeGreaterThan(1);
    expect(tokens.map((t) => t.data.token).join('')).toBe(plain.json.response);
    expect(done.data.response).toBe(plain.json.response);
    expect(done.data.completion_tokens).toBe(plain.json.completion_tokens);
  });

  it('a client that disconnects mid-stream does not break the server', async () => {
    const controller = new AbortController();
    const res = await fetch(`${server.url}/v1/chat`, {
      method: 'POST',
      headers: authHeaders,
      body: JSON.stringify({ prompt: 'Once', temperature: 0, max_new_tokens: 400, stream: true }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    const after = await chat({ prompt: 'Once upon a time', temperature: 0, max_new_tokens: 5 });
    expect(after.status).toBe(200);
  });
});
