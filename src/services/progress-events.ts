import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import { createPubSub, type PubSub, type PubSubEventTarget } from '@graphql-yoga/subscription';
import { Redis } from 'ioredis';

/** What an event says: which run (or index) changed. Subscribers read it from storage, so every replica agrees. */
export interface ProgressPing {
  id: string;
}

type Topics = Record<string, [id: string, payload: ProgressPing]>;

/**
 * "This batch run / RAG index changed" events: in process memory by default;
 * across every replica and worker through Redis pub/sub
 * (@graphql-yoga/redis-event-target) when `redis` is given (split roles).
 * The channels are `<REDIS_KEY_PREFIX>:batch-eval-progress:<id>` and
 * `<REDIS_KEY_PREFIX>:rag-index-progress:<id>`.
 */
export class ProgressEvents {
  private readonly pubsub: PubSub<Topics>;
  private readonly clients: Redis[] = [];
  private readonly topic: string;
  private readonly ragTopic: string;

  constructor(redis?: { url: string; keyPrefix: string }) {
    this.topic = redis ? `${redis.keyPrefix}:batch-eval-progress` : 'batch-eval-progress';
    this.ragTopic = redis ? `${redis.keyPrefix}:rag-index-progress` : 'rag-index-progress';
    if (redis) {
      const publishClient = new Redis(redis.url);
      const subscribeClient = new Redis(redis.url);
      for (const c of [publishClient, subscribeClient]) {
        // Reconnects on its own; an outage only delays events (the subscription also re-reads the run periodically).
        c.on('error', () => undefined);
        this.clients.push(c);
      }
      const eventTarget = createRedisEventTarget({ publishClient, subscribeClient }) as unknown as PubSubEventTarget<Topics>;
      this.pubsub = createPubSub<Topics>({ eventTarget });
    } else {
      this.pubsub = createPubSub<Topics>();
    }
  }

  batchChanged(id: string): void {
    this.pubsub.publish(this.topic, id, { id });
  }

  /** Events for one run until the iterator is returned. */
  watchBatch(id: string): AsyncIterableIterator<ProgressPing> {
    return this.pubsub.subscribe(this.topic, id) as unknown as AsyncIterableIterator<ProgressPing>;
  }

  ragChanged(id: string): void {
    this.pubsub.publish(this.ragTopic, id, { id });
  }

  /** Events for one index until the iterator is returned. */
  watchRag(id: string): AsyncIterableIterator<ProgressPing> {
    return this.pubsub.subscribe(this.ragTopic, id) as unknown as AsyncIterableIterator<ProgressPing>;
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.clients.map((c) => c.quit()));
  }
}

/** How to follow one thing (a batch run, an index) until it ends. */
export interface Watched<T> {
  /** "It changed" events for it (ProgressEvents.watchBatch / watchRag). */
  events: AsyncIterableIterator<ProgressPing>;
  /** Reads it from storage (throws if it is gone). */
  read(): Promise<T>;
  /** What a subscriber sees change: equal keys are not sent twice. */
  key(value: T): string;
  /** True once it has ended: the last value is sent, then the stream ends. */
  ended(value: T): boolean;
}

/**
 * The thing now, then again each time it changes (an event from whichever
 * process changed it, or at the latest every `recheckMs`, should an event be
 * lost), until it ends or `signal` aborts. Each value is read from storage,
 * so every replica tells the same story.
 */
export async function* watchChanges<T>(w: Watched<T>, signal: AbortSignal, recheckMs: number): AsyncGenerator<T> {
  // Listening starts with the first next(), before the first read: no change falls between.
  let next = w.events.next();
  const stop = new Promise<'stop'>((r) => signal.addEventListener('abort', () => r('stop'), { once: true }));
  try {
    let last = '';
    for (;;) {
      const value = await w.read();
      const key = w.key(value);
      if (key !== last) {
        last = key;
        yield value;
      }
      if (w.ended(value)) return;
      let timer: NodeJS.Timeout | undefined;
      const woke = await Promise.race([next.then(() => 'event' as const), stop, new Promise<'recheck'>((r) => (timer = setTimeout(() => r('recheck'), recheckMs)))]);
      clearTimeout(timer);
      if (woke === 'stop' || signal.aborted) return;
      if (woke === 'event') next = w.events.next();
    }
  } finally {
    void w.events.return?.();
  }
}
