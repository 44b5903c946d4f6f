import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Log } from '../observability/log.js';
import { cancelChannel, connect, stalledKey, type JobOptions, type QueueConnection } from './connection.js';

/**
 * What a worker does with one job. `last` is true on the job's final
 * attempt: the handler then stores a failed outcome instead of throwing.
 * Throwing hands the job back to BullMQ for a retry with backoff.
 */
export type JobHandler<T> = (data: T, attempt: number, last: boolean, signal: AbortSignal) => Promise<void>;

/** What a worker reports to the metrics (Metrics fits it). */
export interface JobObserver {
  observeJob(queue: string, outcome: 'completed' | 'failed', seconds: number): void;
  jobStalled(queue: string): void;
}

export interface JobWorkerOptions<T> extends JobOptions {
  queue: string;
  concurrency: number;
  /** The run (batch evaluation, index build) a job belongs to: a cancel names it. */
  ownerOf(data: T): string;
  handler: JobHandler<T>;
  /** A job the queue gave up on (its last attempt threw, or it stalled too often): store its outcome. */
  onGaveUp(data: T, err: Error): Promise<void>;
}

/**
 * The consumer side of a queue: BullMQ's Worker with a concurrency that
 * matches the engine's batch, retries with backoff, stalled-job recovery
 * (a killed worker's jobs are taken up by another once their locks lapse),
 * cancellation of one run's active jobs on a Redis pub/sub channel, and a
 * graceful close.
 */
export class JobWorker<T> {
  private readonly worker: Worker<T>;
  private readonly subscriber: Redis;
  private readonly counter: Redis;
  /** Active jobs by owner, so a cancel stops exactly that run's. */
  private readonly active = new Map<string, Set<string>>();

  constructor(
    conn: QueueConnection,
    private readonly opts: JobWorkerOptions<T>,
    private readonly log: Log,
    observer?: JobObserver,
  ) {
    const { queue } = opts;
    this.worker = new Worker<T>(
      queue,
      async (job: Job<T>, _token?: string, signal?: AbortSignal) => {
        const id = job.id!;
        const owner = opts.ownerOf(job.data);
        const set = this.active.get(owner) ?? new Set<string>();
        set.add(id);
        this.active.set(owner, set);
        const started = performance.now();
        let outcome: 'completed' | 'failed' = 'failed';
        try {
          const attempt = job.attemptsMade + 1;
          await opts.handler(job.data, attempt, attempt >= opts.attempts, signal ?? new AbortController().signal);
          outcome = 'completed';
        } finally {
          observer?.observeJob(queue, outcome, (performance.now() - started) / 1000);
          set.delete(id);
          if (set.size === 0) this.active.delete(owner);
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
    // A job that fails for good (stalled too often, or an error on its last attempt) still gets an outcome.
    this.worker.on('failed', (job, err) => {
      if (!job || (job.attemptsMade < opts.attempts && !/stalled/i.test(err.message))) return;
      void opts.onGaveUp(job.data, err).catch((e: unknown) => this.log.error({ err: e, queue, job_id: job.id }, 'storing a given-up job failed'));
    });
    this.counter = connect(conn.redisUrl);
    this.worker.on('stalled', (jobId) => {
      observer?.jobStalled(queue);
      this.log.warn({ queue, job_id: jobId }, 'stalled job taken back (its worker stopped renewing the lock)');
      void this.counter.incr(stalledKey(conn, queue)).catch(() => undefined);
    });
    this.worker.on('error', (err) => this.log.warn({ queue, err: err.message }, 'queue worker: queue error'));
    this.subscriber = connect(conn.redisUrl);
    void this.subscriber.subscribe(cancelChannel(conn, queue)).catch(() => undefined);
    this.subscriber.on('message', (_channel: string, owner: string) => {
      for (const id of this.active.get(owner) ?? []) this.worker.cancelJob(id, 'cancelled');
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
      this.log.warn({ queue: this.opts.queue, grace_ms: graceMs }, 'grace period over: active jobs are left for another worker');
      await this.worker.close(true).catch(() => undefined);
    }
    await this.counter.quit().catch(() => undefined);
  }
}
