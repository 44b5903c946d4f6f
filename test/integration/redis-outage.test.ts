import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { ChatCache } from '../../src/services/chat-cache.js';
import { ChatRequestSchema } from '../../src/services/chat-schema.js';
import type { ChatResult } from '../../src/services/chat.js';
import { RateLimiter } from '../../src/services/rate-limit.js';
import { SharedRedis } from '../../src/services/redis.js';

/** A TCP proxy to the real Redis that a test can cut and restore, to stage an outage. */
function proxy(port: number) {
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  return {
    up: () =>
      new Promise<void>((resolve) => {
        server = net.createServer((client) => {
          const upstream = net.connect(6379, '127.0.0.1');
          for (const s of [client, upstream]) {
            sockets.add(s);
            s.on('close', () => sockets.delete(s));
            s.on('error', () => undefined);
          }
          client.pipe(upstream).pipe(client);
        });
        server.listen(port, '127.0.0.1', () => resolve());
      }),
    down: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server?.close(() => resolve());
      }),
  };
}

const until = async (cond: () => boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  expect(cond()).toBe(true);
};

describe('Redis outage: fail open, log once, recover', () => {
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const p = proxy(port);
  const logs: Array<[string, string]> = [];
  const log = { info: (_: object, m: string) => logs.push(['info', m]), warn: (_: object, m: string) => logs.push(['warn', m]) };
  let redis: SharedRedis | undefined;
  afterAll(async () => {
    await redis?.close();
    await p.down();
  });

  it('limits fall back to memory and the cache misses while Redis is away, then both use Redis again', async () => {
    await p.up();
    const prefix = `test-${randomUUID()}`;
    redis = new SharedRedis(`redis://127.0.0.1:${port}`, log, prefix);
    const limiter = new RateLimiter({ perMinute: 5, redis });
    const cache = new ChatCache({ ttlSeconds: 60, maxEntries: 10, redis });
    const req = ChatRequestSchema.parse({ prompt: 'hi', temperature: 0 });
    const key = cache.keyFor('m', req)!;
    const result = { response: 'there', requestId: 'r', latencyMs: 1, cacheHit: false, timeToFirstTokenMs: 1, interTokenLatencyMs: 1 } as ChatResult;

    expect((await limiter.consume('k1'))!.remaining).toBe(4);
    await cache.set('m', result, key);
    expect((await cache.get('m', key))?.response).toBe('there');
    expect(redis.state).toBe('ok');

    await p.down();
    await until(() => redis!.state === 'unavailable');
    // Served from the per-process fallback: a fresh count, never an error.
    for (let i = 0; i < 3; i++) expect((await limiter.consume('k1'))!.allowed).toBe(true);
    expect(await cache.get('m', key)).toBeUndefined();
    expect(logs.filter(([level]) => level === 'warn')).toHaveLength(1);

    await p.up();
    await until(() => redis!.state === 'ok');
    expect(logs.at(-1)).toEqual(['info', 'redis reachable again']);
    // Back on the shared counter (1 used before the outage) and the shared cache.
    expect((await limiter.consume('k1'))!.remaining).toBe(3);
    expect((await cache.get('m', key))?.response).toBe('there');
    await redis.client.del(`${prefix}:rl:k1`, `${prefix}:chat:m:${key}`);
  });
});
