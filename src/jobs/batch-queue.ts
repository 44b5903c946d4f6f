import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { Log } from '../observability/log.js';

/**
 * Batch evaluation records as BullMQ jobs (ROLE=api enqueues, ROLE=worker
 * consumes). One job per record, id `<batchId>.<index>`, so a record is
 * queued at most once per run. Retries are BullMQ's (attempts, exponential
 * backoff); a worker that dies holding jobs loses their locks and another
 * worker takes them up (stalled-job recovery). Cancellation crosses
 * processes on a Redis pub/sub channel.
 */
export const BATCH_QUEUE = 'batch-records';

export interface BatchJobData {
  batchId: string;
  index: number;
  recordId: string;
}

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
};

/** `p`, or an error once `ms` pass (BullMQ's connections otherwise wait for Redis forever). */
async function withTimeout<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`redis did not answer within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const jobId = (batchId: string, index: number) => `${batchId}.${index}`;
const cancelChannel = (c: QueueConnection) => `${c.prefix}:${BATCH_QUEUE}:cancel`;
/**
 * BullMQ wants connections that retry forever (`maxRetriesPerRequest: null`).
 * Errors are logged by whoever owns the queue or worker; an 'error' event with
 * no listener would end the process.
 */
const connect = (url: string) => {
  const c = new Redis(url, { maxRetriesPerRequest: null });
  c.on('error', () => undefined);
  return c;
};

/** The producer side: enqueue a run's records, cancel a run, count jobs. */
export class BatchQueue {
  private readonly queue: Queue<BatchJobData>;
  private readonly publisher: Redis;

  constructor(
    private readonly conn: QueueConnection,
    private readonly opts: JobOptions,
  ) {
    this.queue = new Queue<BatchJobData>(BATCH_QUEUE, { connection: connect(conn.redisUrl), prefix: conn.prefix });
    // Redis away: enqueue and cancel fail (the caller answers 503/500); counts say 'unavailable'. Never a crash.
    this.queue.on('error', () => undefined);
    this.publisher = connect(conn.redisUrl);
  }

  /** Adds one job per record; throws when Redis does not take them within `timeoutMs` per chunk. */
  async enqueue(batchId: string, records: Array<{ index: number; recordId: string }>, timeoutMs = 5000): Promise<void> {
    const chunk = 500;
    for (let i = 0; i < records.length; i += chunk) {
      await withTimeout(timeoutMs, this.queue.addBulk(
        records.slice(i, i + chunk).map((r) => ({
          name: 'record',
          data: { batchId, index: r.index, recordId: r.recordId },
          opts: {
            jobId: jobId(batchId, r.index),
            attempts: this.opts.attempts,
            backoff: { type: 'exponential', delay: this.opts.backoffMs },
            removeOnComplete: { count: 1000 },
            removeOnFail: { count: 1000 },
          },
        })),
      ));
    }
  }

  /** Removes the run's waiting jobs and tells every worker to stop its active ones. */
  async cancel(batchId: string, indexes: number[], timeoutMs = 5000): Promise<void> {
    await withTimeout(timeoutMs, this.publisher.publish(cancelChannel(this.conn), batchId));
    const chunk = 100;
    for (let i = 0; i < indexes.length; i += chunk) {
      await withTimeout(timeoutMs, Promise.all(indexes.slice(i, i + chunk).map((idx) => this.queue.remove(jobId(batchId, idx)).catch(() => 0))));
    }
  }

  /**
   * Job counts by queue, for /v1/health and the metrics; null when Redis does
   * not answer within `timeoutMs` (BullMQ's connections wait for Redis forever).
   */
  async counts(timeoutMs = 500): Promise<Record<string, QueueCounts> | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((r) => (timer = setTimeout(() => r(null), timeoutMs)));
    const counts = this.batchCounts().catch(() => null);
    const c = await Promise.race([counts, timeout]);
    clearTimeout(timer);
    return c === null ? null : { [BATCH_QUEUE]: c };
  }

  private async batchCounts(): Promise<QueueCounts> {
    const c = await this.queue.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized');
    return {
      waiting: (c.waiting ?? 0) + (c.prioritized ?? 0),
      active: c.active ?? 0,
      completed: c.completed ?? 0,
      failed: c.failed ?? 0,
      delayed: c.delayed ?? 0,
    };
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.queue.close(), this.publisher.quit()]);
  }
}

/**
 * What a worker does with one record. `last` is true on the job's final
 * attempt: the handler then stores a failed result instead of throwing.
 * Throwing hands the job back to BullMQ for a retry with backoff.
 */
export type RecordHandler = (data: BatchJobData, attempt: number, last: boolean, signal: AbortSignal) => Promise<void>;

/** What a worker reports to the metrics (Metrics fits it). */
export interface JobObserver {
  observeJob(queue: string, outcome: 'completed' | 'failed', seconds: number): void;
  jobStalled(queue: string): void;
}

/** The consumer side: concurrency matching the engine's batch, cancel on the pub/sub channel. */
export class BatchWorker {
  private readonly worker: Worker<BatchJobData>;
  private readonly subscriber: Redis;
  /** Active jobs by run, so a cancel stops exactly that run's. */
  private readonly active = new Map<string, Set<string>>();

  constructor(
    conn: QueueConnection,
    opts: JobOptions & { concurrency: number },
    handler: RecordHandler,
    onGaveUp: (data: BatchJobData, err: Error) => Promise<void>,
    private readonly log: Log,
    observer?: JobObserver,
  ) {
    this.worker = new Worker<BatchJobData>(
      BATCH_QUEUE,
      async (job: Job<BatchJobData>, _token?: string, signal?: AbortSignal) => {
        const id = job.id!;
        const set = this.active.get(job.data.batchId) ?? new Set<string>();
        set.add(id);
        this.active.set(job.data.batchId, set);
        const started = performance.now();
        let outcome: 'completed' | 'failed' = 'failed';
        try {
          const attempt = job.attemptsMade + 1;
          await handler(job.data, attempt, attempt >= opts.attempts, signal ?? new AbortController().signal);
          outcome = 'completed';
        } finally {
          observer?.observeJob(BATCH_QUEUE, outcome, (performance.now() - started) / 1000);
          set.delete(id);
          if (set.size === 0) this.active.delete(job.data.batchId);
        }
      },
      {
        connection: connect(conn.redisUrl),
        prefix: conn.prefix,
        concurrency: opts.concurrency,
        lockDuration: opts.lockMs,
        stalledInterval: opts.lockMs,
        // A job whose worker died is taken up again this many times before it fails for good.
        maxStalledCount: 5,
      },
    );
    // A job that fails for good (stalled too often, or an error on its last attempt) still gets a result.
    this.worker.on('failed', (job, err) => {
      if (!job || job.attemptsMade < opts.attempts && !/stalled/i.test(err.message)) return;
      void onGaveUp(job.data, err).catch((e: unknown) => this.log.error({ err: e, job_id: job.id }, 'storing a given-up record failed'));
    });
    this.worker.on('stalled', () => observer?.jobStalled(BATCH_QUEUE));
    this.worker.on('error', (err) => this.log.warn({ err: err.message }, 'batch worker: queue error'));
    this.subscriber = connect(conn.redisUrl);
    void this.subscriber.subscribe(cancelChannel(conn));
    this.subscriber.on('message', (_channel: string, batchId: string) => {
      for (const id of this.active.get(batchId) ?? []) this.worker.cancelJob(id, 'batch evaluation cancelled');
    });
  }

  /** Stops taking jobs; waits up to `graceMs` for active ones, then leaves them to another worker. */
  async close(graceMs: number): Promise<void> {
    await this.subscriber.quit().catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const graceful = this.worker.close().then(() => true);
    const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), graceMs)));
    const finished = await Promise.race([graceful, timeout]);
    clearTimeout(timer);
    if (!finished) {
      this.log.warn({ grace_ms: graceMs }, 'grace period over: active jobs are left for another worker');
      await this.worker.close(true).catch(() => undefined);
    }
  }
}
