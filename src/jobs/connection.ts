import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';

/** Where the job queues live: one Redis, BullMQ's keys under `prefix`. */
export interface QueueConnection {
  redisUrl: string;
  /** BullMQ's key prefix (REDIS_KEY_PREFIX + ':bull'), so deployments sharing a Redis never meet. */
  prefix: string;
}

export interface JobOptions {
  attempts: number;
  backoffMs: number;
  lockMs: number;
}

// A type alias (not an interface), so it fits Record<string, number>.
export type QueueCounts = {
  waiting: number;
  active: number;
  completed: number;
  failed: number;
  delayed: number;
  /** Jobs taken back from a worker that stopped renewing its lock (killed, hung), since the queue began; every worker counts into it. */
  stalled: number;
};

/** `p`, or an error once `ms` pass (BullMQ's connections otherwise wait for Redis forever). */
export async function withTimeout<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`redis did not answer within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * BullMQ wants connections that retry forever (`maxRetriesPerRequest: null`).
 * Errors are logged by whoever owns the queue or worker; an 'error' event with
 * no listener would end the process.
 */
export function connect(url: string): Redis {
  const c = new Redis(url, { maxRetriesPerRequest: null });
  c.on('error', () => undefined);
  return c;
}

/** The pub/sub channel on which a queue's cancellations reach every worker. */
export const cancelChannel = (c: QueueConnection, queue: string) => `${c.prefix}:${queue}:cancel`;
/** The counter of a queue's stalled jobs, bumped by whichever worker sees one. */
export const stalledKey = (c: QueueConnection, queue: string) => `${c.prefix}:${queue}:stalled-total`;

/** A queue's job counts (prioritized and waiting-for-children counted as waiting) and its stalled total. */
export async function countJobs(queue: Queue, client: Redis, conn: QueueConnection): Promise<QueueCounts> {
  const [c, stalled] = await Promise.all([
    queue.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized', 'waiting-children'),
    client.get(stalledKey(conn, queue.name)),
  ]);
  return {
    waiting: (c.waiting ?? 0) + (c.prioritized ?? 0) + (c['waiting-children'] ?? 0),
    active: c.active ?? 0,
    completed: c.completed ?? 0,
    failed: c.failed ?? 0,
    delayed: c.delayed ?? 0,
    stalled: Number(stalled ?? 0),
  };
}

/** Resolves to `p`'s value, or null once `ms` pass or if it fails. */
export async function orNull<T>(ms: number, p: Promise<T>): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((r) => (timer = setTimeout(() => r(null), ms)));
  try {
    return await Promise.race([p.catch(() => null), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
