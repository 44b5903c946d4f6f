import { BATCH_QUEUE, BatchQueue } from './batch-queue.js';
import type { JobOptions, QueueConnection, QueueCounts } from './connection.js';
import { RAG_QUEUE, RagQueue } from './rag-queue.js';

/** Every job queue of a split deployment (ROLE=api or worker): producers, and their counts for /v1/health and /metrics. */
export class JobQueues {
  readonly batch: BatchQueue;
  readonly rag: RagQueue;

  constructor(conn: QueueConnection, opts: JobOptions) {
    this.batch = new BatchQueue(conn, opts);
    this.rag = new RagQueue(conn, opts);
  }

  /** Counts by queue; null when Redis does not answer within `timeoutMs`. */
  async counts(timeoutMs = 500): Promise<Record<string, QueueCounts> | null> {
    const [batch, rag] = await Promise.all([this.batch.counts(timeoutMs), this.rag.counts(timeoutMs)]);
    if (batch === null || rag === null) return null;
    return { [BATCH_QUEUE]: batch, [RAG_QUEUE]: rag };
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.batch.close(), this.rag.close()]);
  }
}
