import { Redis } from 'ioredis';
import type { Log } from '../observability/log.js';

export type RedisState = 'connecting' | 'ok' | 'unavailable';

export type RedisLog = Pick<Log, 'info' | 'warn'>;

/** host:port of a Redis URL: what may be logged (the URL itself may hold a password). */
export function redisTarget(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '6379'}`;
  } catch {
    return '[unparseable url]';
  }
}

/**
 * The one Redis connection that rate limits and the response cache share,
 * and what health reports about it. Commands never queue while Redis is
 * away (`enableOfflineQueue: false`): they fail at once and the callers
 * fall back (fail open), so an outage costs no request latency. An outage
 * is logged once, when it starts, and once more when Redis is back.
 */
export class SharedRedis {
  readonly client: Redis;
  private stateValue: RedisState = 'connecting';
  private closing = false;
  private probe: NodeJS.Timeout | undefined;
  private readonly target: string;
  private readonly firstReady: Promise<void>;

  /**
   * @param keyPrefix prefix of every key this server writes (REDIS_KEY_PREFIX),
   *   so several deployments can share one Redis; see `key`.
   */
  constructor(
    url: string,
    private readonly log: RedisLog,
    private readonly keyPrefix: string,
  ) {
    this.target = redisTarget(url);
    this.client = new Redis(url, {
      enableOfflineQueue: false,
      connectTimeout: 1000,
      commandTimeout: 1000,
      maxRetriesPerRequest: 0,
      // Keep trying to reconnect, at most every 2 s.
      retryStrategy: (times) => Math.min(times * 200, 2000),
    });
    this.firstReady = new Promise((resolve) => {
      this.client.once('ready', () => resolve());
      this.client.once('error', () => resolve());
    });
    this.client.on('ready', () => this.up());
    this.client.on('error', (err: Error) => this.down(err));
    this.client.on('close', () => {
      if (this.stateValue === 'ok') this.down(new Error('connection closed'));
    });
  }

  /** The Redis key for a use and its parts: `<prefix>:<part>:<part>…`. The only place keys are named. */
  key(...parts: string[]): string {
    return [this.keyPrefix, ...parts].join(':');
  }

  get state(): RedisState {
    return this.stateValue;
  }

  /** Waits (at most `timeoutMs`) for the first connection attempt to succeed or fail. */
  async settled(timeoutMs = 1000): Promise<void> {
    if (this.stateValue !== 'connecting') return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.firstReady, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }

  /** A command failed or the connection dropped: warn once per outage. */
  down(err: unknown): void {
    if (this.closing) return;
    if (this.stateValue !== 'unavailable') {
      this.log.warn(
        { redis: this.target, err: err instanceof Error ? err.message : String(err) },
        'redis unavailable: serving without it (rate limits per process, response cache misses) until it is back',
      );
    }
    this.stateValue = 'unavailable';
    // A hung server times commands out without dropping the connection, so no 'ready' event
    // would say it is back: ping it until it answers.
    this.probe ??= setInterval(() => {
      if (this.client.status !== 'ready') return;
      this.client.ping().then(
        () => this.up(),
        () => undefined,
      );
    }, 2000).unref();
  }

  private up(): void {
    clearInterval(this.probe);
    this.probe = undefined;
    if (this.stateValue === 'unavailable') this.log.info({ redis: this.target }, 'redis reachable again');
    this.stateValue = 'ok';
  }

  /** Closes the connection (at shutdown). */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.probe);
    try {
      await Promise.race([this.client.quit(), new Promise((r) => setTimeout(r, 500).unref())]);
    } catch {
      // Already gone.
    }
    this.client.disconnect();
  }
}
