import { FlowProducer, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { cancelChannel, connect, countJobs, orNull, withTimeout, type JobOptions, type QueueConnection, type QueueCounts } from './connection.js';

/**
 * RAG index builds as BullMQ jobs. A build is one flow: a parent `finish`
 * job (calibrate fusion, mark the index ready) whose children are groups of
 * documents (chunk, embed, store). BullMQ runs the parent once every child
 * has ended, on whichever worker. Job ids carry the index and its build
 * (`epoch`: the build's start time in ms), so a build is queued at most once
 * and a rebuild's jobs never meet the last one's.
 */
export const RAG_QUEUE = 'rag-builds';

export type RagJobData =
  | { kind: 'documents'; indexId: string; epoch: number; documents: number[] }
  | { kind: 'finish'; indexId: string; epoch: number };

const finishId = (indexId: string, epoch: number) => `${indexId}.${epoch}.finish`;

/** The producer side: enqueue a build, cancel one, count jobs. */
export class RagQueue {
  private readonly queue: Queue<RagJobData>;
  private readonly flows: FlowProducer;
  private readonly client: Redis;

  constructor(
    private readonly conn: QueueConnection,
    private readonly opts: JobOptions,
  ) {
    this.queue = new Queue<RagJobData>(RAG_QUEUE, { connection: connect(conn.redisUrl), prefix: conn.prefix });
    this.queue.on('error', () => undefined);
    this.flows = new FlowProducer({ connection: connect(conn.redisUrl), prefix: conn.prefix });
    this.flows.on('error', () => undefined);
    this.client = connect(conn.redisUrl);
  }

  /** Queues a build: its groups of documents, then its finish. Throws when Redis does not take it within `timeoutMs`. */
  async enqueue(indexId: string, epoch: number, groups: number[][], timeoutMs = 10_000): Promise<void> {
    const retry = {
      attempts: this.opts.attempts,
      backoff: { type: 'exponential', delay: this.opts.backoffMs },
      removeOnComplete: { count: 1000 },
      removeOnFail: { count: 1000 },
    };
    await withTimeout(timeoutMs, this.flows.add({
      name: 'finish',
      queueName: RAG_QUEUE,
      data: { kind: 'finish', indexId, epoch } satisfies RagJobData,
      opts: { ...retry, jobId: finishId(indexId, epoch) },
      children: groups.map((documents, g) => ({
        name: 'documents',
        queueName: RAG_QUEUE,
        data: { kind: 'documents', indexId, epoch, documents } satisfies RagJobData,
        // A group that fails for good has stored its documents as failed; the build still finishes.
        opts: { ...retry, jobId: `${indexId}.${epoch}.${g}`, ignoreDependencyOnFailure: true },
      })),
    }));
  }

  /** True if this build is in the queue (waiting, running, or done and still remembered). */
  async has(indexId: string, epoch: number, timeoutMs = 5000): Promise<boolean> {
    const state = await withTimeout(timeoutMs, this.queue.getJobState(finishId(indexId, epoch)));
    return state !== 'unknown';
  }

  /**
   * Stops a build: active jobs are told to stop, the build's waiting jobs
   * are removed when none of them is locked (otherwise they find the build
   * gone and end at once).
   */
  async cancel(indexId: string, epoch: number | null, timeoutMs = 5000): Promise<void> {
    await withTimeout(timeoutMs, this.client.publish(cancelChannel(this.conn, RAG_QUEUE), indexId));
    if (epoch !== null) await withTimeout(timeoutMs, this.queue.remove(finishId(indexId, epoch), { removeChildren: true }).catch(() => 0));
  }

  counts(timeoutMs = 500): Promise<QueueCounts | null> {
    return orNull(timeoutMs, countJobs(this.queue, this.client, this.conn));
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.queue.close(), this.flows.close(), this.client.quit()]);
  }
}
