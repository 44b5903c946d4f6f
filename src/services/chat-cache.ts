import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { ChatRequest } from './chat-schema.js';
import type { ChatResult } from './chat.js';
import type { SharedRedis } from './redis.js';

/** What a cache entry keeps: the answer, without what belongs to one request (id, timings, hit flag). */
export type CachedChat = Omit<ChatResult, 'requestId' | 'latencyMs' | 'cacheHit' | 'timeToFirstTokenMs' | 'interTokenLatencyMs'>;

export interface ChatCacheOptions {
  /** Entry lifetime; 0 turns the cache off. */
  ttlSeconds: number;
  /** Most entries kept in memory (least recently used go first). */
  maxEntries: number;
  /** With Redis, entries live there, shared by every process on it (keys `<prefix>:chat:<model>:<sha256>`). */
  redis?: SharedRedis | null;
  /** Called on every lookup of a cacheable request (the metrics hook). */
  onLookup?: (hit: boolean) => void;
}

/**
 * A request whose answer is fully determined by its parameters: greedy
 * (temperature 0; in refine mode the critique greedy too) or explicitly
 * seeded. Unseeded sampling is never cached.
 */
export function isDeterministic(req: ChatRequest): boolean {
  if (req.seed !== undefined) return true;
  return req.temperature === 0 && (req.mode === 'single' || req.critique_temperature === 0);
}

/**
 * SHA-256 over the model and the validated request without the fields that
 * cannot change the answer (only `stream`, how it is delivered). Derived
 * from the request rather than listed, so a new parameter is part of the
 * key from the start and can never make two different requests collide.
 */
export function chatCacheKey(model: string, req: ChatRequest): string {
  const { stream: _delivery, ...output } = req;
  return requestKey(model, output);
}

/** SHA-256 over the model and a request's output-deciding fields, as canonical JSON. */
export function requestKey(model: string, fields: object): string {
  return createHash('sha256').update(canonicalJson([model, fields])).digest('hex');
}

/** JSON with object keys sorted, so equal requests hash equally whatever their key order. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** What the cache keeps apart: contract chat answers and OpenAI-style completions. */
export type CacheKind = 'chat' | 'completion';

interface Store {
  get(kind: CacheKind, model: string, key: string): Promise<unknown>;
  set(kind: CacheKind, model: string, key: string, value: unknown): Promise<void>;
}

class MemoryStore implements Store {
  private readonly lru: LRUCache<string, object>;
  constructor(ttlSeconds: number, maxEntries: number) {
    this.lru = new LRUCache({ max: maxEntries, ttl: ttlSeconds * 1000 });
  }
  async get(kind: CacheKind, model: string, key: string) {
    return this.lru.get(`${kind}:${model}:${key}`);
  }
  async set(kind: CacheKind, model: string, key: string, value: unknown) {
    this.lru.set(`${kind}:${model}:${key}`, value as object);
  }
}

/** Redis failures are misses (logged once per outage by SharedRedis); serving goes on. */
class RedisStore implements Store {
  constructor(
    private readonly redis: SharedRedis,
    private readonly ttlSeconds: number,
  ) {}
  async get(kind: CacheKind, model: string, key: string) {
    await this.redis.settled();
    if (this.redis.state !== 'ok') return undefined;
    try {
      const raw = await this.redis.client.get(this.redis.key(kind, model, key));
      return raw === null ? undefined : (JSON.parse(raw) as unknown);
    } catch (err) {
      this.redis.down(err);
      return undefined;
    }
  }
  async set(kind: CacheKind, model: string, key: string, value: unknown) {
    if (this.redis.state !== 'ok') return;
    try {
      await this.redis.client.set(this.redis.key(kind, model, key), JSON.stringify(value), 'EX', this.ttlSeconds);
    } catch (err) {
      this.redis.down(err);
    }
  }
}

/**
 * The response cache for deterministic chat requests: lru-cache in memory,
 * or Redis (SET with EX, JSON values) when configured. Only successful
 * answers are stored; errors and cancellations never reach it.
 */
export class ChatCache {
  private readonly store: Store;

  constructor(private readonly opts: ChatCacheOptions) {
    this.store = opts.redis
      ? new RedisStore(opts.redis, opts.ttlSeconds)
      : new MemoryStore(opts.ttlSeconds, opts.maxEntries);
  }

  /** The cache key of a cacheable request, or undefined when its answer may not be cached. */
  keyFor(model: string, req: ChatRequest): string | undefined {
    return isDeterministic(req) ? chatCacheKey(model, req) : undefined;
  }

  async get(model: string, key: string): Promise<CachedChat | undefined> {
    return this.lookup<CachedChat>('chat', model, key);
  }

  async set(model: string, result: ChatResult, key: string): Promise<void> {
    const { requestId: _r, latencyMs: _l, cacheHit: _c, timeToFirstTokenMs: _t, interTokenLatencyMs: _i, ...entry } = result;
    await this.store.set('chat', model, key, entry);
  }

  /** A stored answer of this kind (counted as a hit or a miss). */
  async lookup<T>(kind: CacheKind, model: string, key: string): Promise<T | undefined> {
    const hit = (await this.store.get(kind, model, key)) as T | undefined;
    this.opts.onLookup?.(hit !== undefined);
    return hit;
  }

  /** Stores an answer of this kind (a JSON value). */
  async save(kind: CacheKind, model: string, key: string, value: unknown): Promise<void> {
    await this.store.set(kind, model, key, value);
  }
}
