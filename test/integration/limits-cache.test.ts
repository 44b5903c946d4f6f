import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeaders, gql, postJson, readSse, startServer, type RunningServer } from '../helpers/server.js';
import { storiesModel } from '../helpers/models.js';

const REDIS_URL = 'redis://127.0.0.1:6379';
const LIMIT = 30;
const key2 = { 'content-type': 'application/json', 'x-api-key': 'test-key-2' };

/** One protected request, REST or GraphQL, with the status and headers a limit test looks at. */
async function protectedRequest(url: string, via: 'rest' | 'graphql', headers = authHeaders) {
  const r =
    via === 'rest'
      ? await fetch(`${url}/v1/datasets?limit=1`, { headers })
      : await fetch(`${url}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query: '{ health { status } }' }) });
  const h = (n: string) => r.headers.get(n);
  return {
    status: r.status,
    json: (await r.json()) as any,
    limit: h('x-ratelimit-limit'),
    remaining: h('x-ratelimit-remaining'),
    reset: h('x-ratelimit-reset'),
    retryAfter: h('retry-after'),
  };
}

/** 36 quick requests alternating REST and GraphQL (and servers): 30 pass, 6 are 429 with the contract's headers and body. */
async function expectLimitHolds(urls: string[]) {
  const results = [];
  for (let i = 0; i < LIMIT + 6; i++) {
    results.push(await protectedRequest(urls[i % urls.length]!, i % 4 < 2 ? 'rest' : 'graphql'));
  }
  const ok = results.filter((r) => r.status === 200);
  const limited = results.filter((r) => r.status === 429);
  expect(ok).toHaveLength(LIMIT);
  expect(limited).toHaveLength(6);
  // The first 30 pass, counting down; then every one is refused.
  expect(results.slice(0, LIMIT).map((r) => Number(r.remaining))).toEqual(Array.from({ length: LIMIT }, (_, i) => LIMIT - 1 - i));
  const now = Date.now() / 1000;
  for (const r of results) {
    expect(r.limit).toBe(String(LIMIT));
    expect(Number(r.reset)).toBeGreaterThan(now - 1);
    expect(Number(r.reset)).toBeLessThanOrEqual(Math.ceil(now) + 61);
  }
  for (const [i, r] of results.slice(LIMIT).entries()) {
    expect(r.status).toBe(429);
    expect(r.remaining).toBe('0');
    expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(r.retryAfter)).toBeLessThanOrEqual(60);
    const details = { limit: LIMIT, remaining: 0, reset_at: new Date(Number(r.reset) * 1000).toISOString().replace('.000Z', 'Z'), bucket: 'api_key_per_minute' };
    if ((LIMIT + i) % 4 < 2) {
      expect(r.json).toEqual({ error: { code: 'rate_limited', message: 'Rate limit exceeded', details }, request_id: expect.any(String) });
    } else {
      expect(r.json.errors[0].extensions).toMatchObject({ code: 'rate_limited', details });
      expect(r.json.data ?? null).toBeNull();
    }
  }
}

async function chat(url: string, body: Record<string, unknown>, headers: Record<string, string> = key2) {
  const r = await postJson(`${url}/v1/chat`, body, headers);
  expect(r.status, r.text).toBe(200);
  return r.json;
}

describe.skipIf(!storiesModel.present)(storiesModel.title('rate limits and response cache'), () => {
  const prefix = `test-${randomUUID()}`;
  let memory: RunningServer;
  let a: RunningServer;
  let b: RunningServer;
  let down: RunningServer;
  const redis = new Redis(REDIS_URL, { lazyConnect: true });

  beforeAll(async () => {
    const limits = { RATE_LIMIT_PER_MINUTE: String(LIMIT) };
    const shared = { ...limits, REDIS_URL, REDIS_KEY_PREFIX: prefix };
    [memory, a, b, down] = await Promise.all([
      startServer(limits),
      startServer(shared),
      startServer(shared),
      startServer({ ...limits, REDIS_URL: 'redis://:s3cret-pass@127.0.0.1:6390', REDIS_KEY_PREFIX: prefix }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([memory, a, b, down].map((s) => s?.stop()));
    await redis.connect().catch(() => undefined);
    const keys = await redis.keys(`${prefix}:*`).catch(() => []);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  it('probes are never limited and carry no limit headers', async () => {
    for (let i = 0; i < LIMIT + 10; i++) {
      const r = await fetch(`${memory.url}${['/healthz', '/readyz', '/v1/health'][i % 3]}`);
      expect(r.status).toBe(200);
      expect(r.headers.get('x-ratelimit-limit')).toBeNull();
    }
  });

  it('in memory: REST and GraphQL share one per-key limit of 30 a minute; 429 with Retry-After and details', async () => {
    await expectLimitHolds([memory.url]);
    // The limit is per key: another key still has its whole budget.
    const other = await protectedRequest(memory.url, 'rest', key2);
    expect(other.status).toBe(200);
    expect(other.remaining).toBe(String(LIMIT - 1));
  });

  it('with Redis: two processes enforce one limit together', async () => {
    await expectLimitHolds([a.url, b.url]);
    const h = await (await fetch(`${a.url}/v1/health`)).json();
    expect(h).toMatchObject({ status: 'ok', redis: 'ok' });
  });

  it('Redis unreachable: requests still succeed (fail open), health and logs say so', async () => {
    const greedy = { prompt: 'Once upon a time', temperature: 0, max_new_tokens: 8 };
    const first = await postJson(`${down.url}/v1/chat`, greedy, key2);
    expect(first.status).toBe(200);
    expect(first.res.headers.get('x-ratelimit-remaining')).toBe(String(LIMIT - 1));
    const second = await chat(down.url, greedy);
    expect(second.cache_hit).toBe(false);
    expect((await protectedRequest(down.url, 'graphql')).status).toBe(200);
    const h = await (await fetch(`${down.url}/v1/health`)).json();
    expect(h).toMatchObject({ status: 'degraded', redis: 'unavailable', model_loaded: true });
    expect((await fetch(`${down.url}/readyz`)).status).toBe(200);
    const warnings = down.logs.filter((l) => l.includes('redis unavailable'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('127.0.0.1:6390');
    // REDIS_URL is a secret: its password never reaches the log.
    expect(down.logs.join('\n')).not.toContain('s3cret-pass');
  });

  it('cache: a repeated greedy request is a hit with the same text, a fresh request id and its own latency', async () => {
    const body = { prompt: 'Lily and Ben went to the park', temperature: 0, max_new_tokens: 24 };
    const first = await chat(memory.url, body);
    const second = await chat(memory.url, body);
    expect(first.cache_hit).toBe(false);
    expect(second.cache_hit).toBe(true);
    expect(second.response).toBe(first.response);
    expect(second.completion_tokens).toBe(first.completion_tokens);
    expect(second.request_id).not.toBe(first.request_id);
    expect(typeof second.latency_ms).toBe('number');
    // GraphQL reaches the same cache through the same service.
    const g = await gql(memory.url, 'mutation($input: ChatInput!) { chat(input: $input) { response cacheHit } }', { input: { prompt: body.prompt, temperature: 0, maxNewTokens: 24 } }, key2);
    expect(g.json.data.chat).toEqual({ response: first.response, cacheHit: true });
    // A stream always generates, token by token (no lookup), and gives the same text.
    const res = await fetch(`${memory.url}/v1/chat`, { method: 'POST', headers: key2, body: JSON.stringify({ ...body, stream: true }) });
    const events = await readSse(res);
    const done = events.at(-1)!;
    expect(done.event).toBe('done');
    expect(done.data.cache_hit).toBe(false);
    const tokens = events.filter((e) => e.event === 'token');
    expect(tokens.length).toBeGreaterThan(1);
    expect(tokens.map((e) => e.data.token).join('')).toBe(first.response);
  });

  it('cache: a streamed answer is stored, so the same request without stream is a hit', async () => {
    const body = { prompt: 'The cat sat on the mat', temperature: 0, max_new_tokens: 12 };
    const res = await fetch(`${memory.url}/v1/chat`, { method: 'POST', headers: key2, body: JSON.stringify({ ...body, stream: true }) });
    const streamed = (await readSse(res)).at(-1)!.data;
    const plain = await chat(memory.url, body);
    expect([streamed.cache_hit, plain.cache_hit]).toEqual([false, true]);
    expect(plain.response).toBe(streamed.response);
  });

  it('cache: a different parameter misses, seeded sampling hits, unseeded sampling never does', async () => {
    const body = { prompt: 'The little dog', temperature: 0, max_new_tokens: 16 };
    expect((await chat(memory.url, body)).cache_hit).toBe(false);
    expect((await chat(memory.url, { ...body, max_new_tokens: 17 })).cache_hit).toBe(false);
    expect((await chat(memory.url, { ...body, stop: ['.'] })).cache_hit).toBe(false);
    const seeded = { prompt: 'The little dog', temperature: 0.9, seed: 42, max_new_tokens: 16 };
    const s1 = await chat(memory.url, seeded);
    const s2 = await chat(memory.url, seeded);
    expect([s1.cache_hit, s2.cache_hit]).toEqual([false, true]);
    expect(s2.response).toBe(s1.response);
    const unseeded = { prompt: 'The little dog', temperature: 0.9, max_new_tokens: 16 };
    expect((await chat(memory.url, unseeded)).cache_hit).toBe(false);
    expect((await chat(memory.url, unseeded)).cache_hit).toBe(false);
  });

  it('cache with Redis: a second process answers the first one\'s request from the cache', async () => {
    const body = { prompt: `Tim had a red ball ${randomUUID()}`, temperature: 0, max_new_tokens: 20 };
    const first = await chat(a.url, body);
    const second = await chat(b.url, body);
    expect([first.cache_hit, second.cache_hit]).toEqual([false, true]);
    expect(second.response).toBe(first.response);
    await redis.connect();
    const keys = await redis.keys(`${prefix}:chat:stories260K:*`);
    expect(keys.length).toBeGreaterThanOrEqual(1);
    expect(await redis.ttl(keys[0]!)).toBeGreaterThan(0);
  });
});
