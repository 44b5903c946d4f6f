import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storiesModel } from '../helpers/models.js';
import { canRunPrivateRedis, startPrivateRedis, type PrivateRedis } from '../helpers/private-services.js';
import { API_KEY, postJson, startServer, type RunningServer } from '../helpers/server.js';

/**
 * Fault drill (issue 15): the Redis that holds rate limits and the response
 * cache is SIGKILLed under a running server, then started again, empty, on
 * the same port. While it is away requests are still answered (fail open:
 * limits per process, in memory; the cache misses); once it is back, limits
 * and the cache live in Redis again. A private redis-server: the machine's
 * shared one is never killed. (test/integration/redis-outage.test.ts covers
 * the same fallback at unit level through a proxy; limits-cache.test.ts a
 * Redis that is unreachable from the start.)
 */
const LIMIT = 5;
const PREFIX = 'drill';
const key1 = { 'content-type': 'application/json', 'x-api-key': API_KEY };
const key2 = { 'content-type': 'application/json', 'x-api-key': 'test-key-2' };
const greedy = { prompt: 'Once upon a time', temperature: 0, max_new_tokens: 8 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One cheap protected request: its status and remaining budget. */
async function list(url: string, headers: Record<string, string>) {
  const r = await fetch(`${url}/v1/datasets?limit=1`, { headers });
  await r.arrayBuffer();
  return { status: r.status, remaining: r.headers.get('x-ratelimit-remaining') };
}

async function chat(url: string, headers: Record<string, string>) {
  const r = await postJson(`${url}/v1/chat`, greedy, headers);
  return { status: r.status, cacheHit: r.json?.cache_hit as boolean | undefined, text: r.text };
}

async function health(url: string): Promise<any> {
  return (await fetch(`${url}/v1/health`)).json();
}

const noRedis = canRunPrivateRedis() ? '' : ' (skipped: no redis-server on PATH)';

describe.skipIf(!storiesModel.present || !canRunPrivateRedis())(storiesModel.title('fault drill: Redis killed and restarted') + noRedis, () => {
  let redis: PrivateRedis;
  let server: RunningServer;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    server = await startServer({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: PREFIX, RATE_LIMIT_PER_MINUTE: String(LIMIT) });
  });
  afterAll(async () => {
    await server?.stop();
    await redis?.destroy();
  });

  /** The keys the server wrote in the private Redis now. */
  async function keys(): Promise<string[]> {
    const c = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await c.connect();
      return (await c.keys(`${PREFIX}:*`)).sort();
    } finally {
      c.disconnect();
    }
  }

  it('fails open while Redis is away (answers, per-process limits, cache misses), then limits and cache live in Redis again', async () => {
    // Up: the cache answers the second greedy request; the limit counts in Redis.
    expect(await chat(server.url, key1)).toMatchObject({ status: 200, cacheHit: false });
    expect(await chat(server.url, key1)).toMatchObject({ status: 200, cacheHit: true });
    expect((await list(server.url, key1)).remaining).toBe(String(LIMIT - 3));
    await list(server.url, key1);
    await list(server.url, key1);
    expect((await list(server.url, key1)).status).toBe(429);
    expect((await keys()).map((k) => k.split(':')[1])).toEqual(['chat', 'rl']);

    await redis.kill();
    // Answered at once, nothing queued behind the dead connection: key 1, over its limit in
    // Redis, starts a fresh count in this process; the cache misses (the answer is generated).
    const during = await chat(server.url, key1);
    expect(during, during.text).toMatchObject({ status: 200, cacheHit: false });
    expect(await list(server.url, key1)).toEqual({ status: 200, remaining: String(LIMIT - 2) });
    // The per-process limit still holds: key 2's budget runs out after LIMIT requests.
    const key2Statuses = [];
    for (let i = 0; i < LIMIT + 1; i++) key2Statuses.push((await list(server.url, key2)).status);
    expect(key2Statuses).toEqual([...Array<number>(LIMIT).fill(200), 429]);
    expect(await health(server.url)).toMatchObject({ status: 'degraded', redis: 'unavailable' });
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);

    // Back, empty, on the same port: the server reconnects by itself (at most every 2 s).
    await redis.start();
    const deadline = Date.now() + 15_000;
    while ((await health(server.url)).redis !== 'ok') {
      if (Date.now() > deadline) throw new Error('the server did not reconnect to Redis');
      await sleep(100);
    }
    // Limits are Redis's again: a fresh shared count (the restarted Redis kept nothing), enforced.
    const back = [];
    for (let i = 0; i < LIMIT + 1; i++) back.push(await list(server.url, key2));
    expect(back.map((r) => r.status)).toEqual([...Array<number>(LIMIT).fill(200), 429]);
    expect(back.slice(0, LIMIT).map((r) => r.remaining)).toEqual(Array.from({ length: LIMIT }, (_, i) => String(LIMIT - 1 - i)));
    // And the cache: the restarted Redis has no answer, so the first request generates and stores it, the next is a hit.
    expect((await keys()).map((k) => k.split(':')[1])).toEqual(['rl']);
    expect(await chat(server.url, key1)).toMatchObject({ status: 200, cacheHit: false });
    expect(await chat(server.url, key1)).toMatchObject({ status: 200, cacheHit: true });
    expect((await keys()).map((k) => k.split(':')[1])).toEqual(['chat', 'rl', 'rl']);

    // One warning for the outage, one line for the return; the process never stopped.
    const messages = server.logs.map((l) => (l.startsWith('{') ? JSON.parse(l).msg : l));
    expect(messages.filter((m) => typeof m === 'string' && m.startsWith('redis unavailable'))).toHaveLength(1);
    expect(messages.filter((m) => m === 'redis reachable again')).toHaveLength(1);
    expect(server.proc.exitCode).toBeNull();
  });
});
