import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { AppError } from '../errors.js';
import type { SharedRedis } from './redis.js';

const WINDOW_SECONDS = 60;

/** The outcome of one request against its key's budget. */
export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** When the window ends, Unix epoch seconds. */
  resetAt: number;
  /** Seconds until a rejected caller may try again (at least 1). */
  retryAfterS: number;
}

export interface RateLimiterOptions {
  /** Requests per key per minute; 0 turns limiting off. */
  perMinute: number;
  /** With Redis, every process sharing it enforces one limit together (keys `<prefix>:rl:<key id>`). */
  redis?: SharedRedis | null;
  /** Called on every rejection (the metrics hook). */
  onReject?: (keyId: string) => void;
}

/**
 * Per-API-key request limits, `perMinute` requests per 60 s window, shared
 * by REST and GraphQL (each surface calls `consume` once per HTTP request;
 * a GraphQL operation counts once per generating field it holds, at least once).
 * In memory by default; in Redis when configured. Redis failing fails OPEN:
 * while it is unreachable each process limits on its own, in memory, and
 * the outage is logged and reported by health (see SharedRedis).
 */
export class RateLimiter {
  readonly limit: number;
  private readonly memory: RateLimiterMemory | undefined;
  private readonly shared: RateLimiterRedis | undefined;

  constructor(private readonly opts: RateLimiterOptions) {
    this.limit = opts.perMinute;
    if (this.limit <= 0) return;
    this.memory = new RateLimiterMemory({ points: this.limit, duration: WINDOW_SECONDS });
    if (opts.redis) {
      this.shared = new RateLimiterRedis({
        storeClient: opts.redis.client,
        // rate-limiter-flexible appends `:<key id>`.
        keyPrefix: opts.redis.key('rl'),
        points: this.limit,
        duration: WINDOW_SECONDS,
        rejectIfRedisNotReady: true,
      });
    }
  }

  get enabled(): boolean {
    return this.limit > 0;
  }

  /**
   * Counts one request for `keyId` (never the raw key), or `points` of them
   * (a GraphQL operation with several generating fields); null when limiting is off.
   */
  async consume(keyId: string, points = 1): Promise<RateLimitDecision | null> {
    if (!this.memory) return null;
    const res = await this.attempt(keyId, points);
    const allowed = res.consumedPoints <= this.limit;
    const ms = Math.max(0, res.msBeforeNext);
    const decision: RateLimitDecision = {
      allowed,
      limit: this.limit,
      remaining: allowed ? Math.max(0, res.remainingPoints) : 0,
      resetAt: Math.ceil((Date.now() + ms) / 1000),
      retryAfterS: Math.max(1, Math.ceil(ms / 1000)),
    };
    if (!allowed) this.opts.onReject?.(keyId);
    return decision;
  }

  /** The limiter's answer, allowed or not, as a RateLimiterRes. */
  private async attempt(keyId: string, points: number): Promise<RateLimiterRes> {
    const redis = this.opts.redis;
    if (this.shared && redis) {
      await redis.settled();
      if (redis.state === 'ok') {
        try {
          return await consumeOrRejection(this.shared, keyId, points);
        } catch (err) {
          redis.down(err);
        }
      }
    }
    return consumeOrRejection(this.memory!, keyId, points);
  }
}

/** rate-limiter-flexible rejects with a RateLimiterRes when over the limit, with an Error when the store fails. */
async function consumeOrRejection(limiter: RateLimiterAbstract, key: string, points: number): Promise<RateLimiterRes> {
  try {
    return await limiter.consume(key, points);
  } catch (rej) {
    if (rej instanceof RateLimiterRes) return rej;
    throw rej;
  }
}

/** The X-RateLimit-* headers of a decision, plus Retry-After when it rejects. */
export function rateLimitHeaders(d: RateLimitDecision): Record<string, string> {
  return {
    'X-RateLimit-Limit': String(d.limit),
    'X-RateLimit-Remaining': String(d.remaining),
    'X-RateLimit-Reset': String(d.resetAt),
    ...(d.allowed ? {} : { 'Retry-After': String(d.retryAfterS) }),
  };
}

/** The contract's 429 for a rejected decision. */
export function rateLimitedError(d: RateLimitDecision): AppError {
  return new AppError('rate_limited', 'Rate limit exceeded', {
    limit: d.limit,
    remaining: 0,
    reset_at: new Date(d.resetAt * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    bucket: 'api_key_per_minute',
  });
}
