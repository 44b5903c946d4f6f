import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { cancelChannel, connect, countJobs, orNull, withTimeout, type JobOptions, type QueueConnection, type QueueCounts } from './connection.js';

/**
 * Batch evaluation records as BullMQ jobs (ROLE=api enqueues, ROLE=worker
 * consumes, src/jobs/job-worker.ts). One job per record, id
 * `<batchId>.<index>`, so a record is queued at most once per run. Retries
 * are BullMQ's (attempts, exponential backoff); a worker that dies holding
 * jobs loses their locks and another worker takes them up (stalled-job
 * recovery). Cancellation crosses processes on a Redis pub/sub channel.
 */
export const BATCH_QUEUE = 'batch-records';

export interface BatchJobData {
  batchId: string;
  index: number;
  recordId: string;
}

const jobId = (batchId: string, index: number) => `${batchId}.${index}`;

/** The producer side: enqueue a run's records, cancel a run, count jobs. */
export class BatchQueue {
  private readonly queue: Queue<BatchJobData>;
  private readonly client: Redis;

  constructor(
    private readonly conn: QueueConnection,
    private readonly opts: JobOptions,
  ) {
    this.queue = new Queue<BatchJobData>(BATCH_QUEUE, { connection: connect(conn.redisUrl), prefix: conn.prefix });
    // Redis away: enqueue and cancel fail (the caller answers 503/500); counts say 'unavailable'. Never a crash.
    this.queue.on('error', () => undefined);
    this.client = connect(conn.redisUrl);
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
    await withTimeout(timeoutMs, this.client.publish(cancelChannel(this.conn, BATCH_QUEUE), batchId));
    const chunk = 100;
    for (let i = 0; i < indexes.length; i += chunk) {
      await withTimeout(timeoutMs, Promise.all(indexes.slice(i, i + chunk).map((idx) => this.queue.remove(jobId(batchId, idx)).catch(() => 0))));
    }
  }

  /** This queue's job counts; null when Redis does not answer within `timeoutMs`. */
  counts(timeoutMs = 500): Promise<QueueCounts | null> {
    return orNull(timeoutMs, countJobs(this.queue, this.client, this.conn));
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.queue.close(), this.client.quit()]);
  }
}
