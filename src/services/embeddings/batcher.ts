import { EngineOverloadedError, GenerationCancelledError, InputTooLongError } from '../../engine/errors.js';
import type { PoolingModel } from '../../engine/encoder.js';
import { planRuns, takeCount } from './batch-plan.js';
import type { EmbedOptions, EmbedResult, Embedder, EmbeddingInfo } from './types.js';

export interface BatcherLimits {
  /** Most inputs in one batch (one or more encoder runs). */
  maxBatchSize: number;
  /**
   * How long a batch that is not full may wait for more inputs, counted from
   * its first input, when the encoder is idle and the last batch served more
   * than one caller (clients are sending concurrently). A lone client's
   * request runs at once; while the encoder runs, new inputs queue anyway
   * and the next batch starts as soon as it is done.
   */
  maxWaitMs: number;
  /** Most inputs waiting; a request that would pass it is refused at once (503). */
  maxWaiting: number;
  /** Most padded tokens in one batch (default: 16,384, or the model's maximum if larger). */
  maxBatchTokens?: number;
}

/** What the batcher reports, for metrics. */
export interface EmbeddingObserver {
  /** One embed() call answered: its inputs and the tokens they were read as. */
  embeddingRequest(inputs: number, tokens: number): void;
  /** One batch run: its inputs, the encoder runs it took, and the padded tokens those runs read. */
  embeddingBatch(inputs: number, runs: number, paddedTokens: number): void;
}

/** A run's fixed cost, in tokens' worth, when planning runs (see planRuns). */
const RUN_OVERHEAD_TOKENS = 16;
const DEFAULT_MAX_BATCH_TOKENS = 16_384;

interface Job {
  readonly vectors: Float32Array[];
  readonly tokens: number[];
  readonly normalize: boolean;
  remaining: number;
  settled: boolean;
  resolve(r: EmbedResult): void;
  reject(e: unknown): void;
  cleanup(): void;
}

interface Item {
  readonly job: Job;
  readonly index: number;
  readonly ids: number[];
}

/** L2-normalises in place (a zero vector stays zero), as sentence-transformers' Normalize does. */
export function l2Normalize(v: Float32Array): Float32Array {
  let ss = 0;
  for (let i = 0; i < v.length; i++) ss += v[i]! * v[i]!;
  const norm = Math.sqrt(ss);
  if (norm > 0) for (let i = 0; i < v.length; i++) v[i] = v[i]! / norm;
  return v;
}

/**
 * Dynamic batching in front of a pooling model, as text-embeddings-inference
 * does it: every caller's inputs (tokenized once, on submission) join one
 * queue; a batch takes inputs from its head within a size and a padded-token
 * budget, is split into runs of similar lengths, and each input's vector goes
 * back to its caller. The queue is bounded (503 at once beyond it) and a
 * caller that goes away has its waiting inputs dropped.
 */
export class BatchingEmbedder implements Embedder {
  private readonly queue: Item[] = [];
  private readonly maxBatchTokens: number;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  /** Callers served by the last batch: more than one means concurrent clients, worth waiting for. */
  private lastBatchCallers = 0;
  private idle: Promise<void> = Promise.resolve();
  private markIdle: () => void = () => {};

  constructor(
    private readonly model: PoolingModel,
    readonly info: EmbeddingInfo,
    private readonly limits: BatcherLimits,
    private readonly observer?: EmbeddingObserver,
  ) {
    this.maxBatchTokens = Math.max(limits.maxBatchTokens ?? DEFAULT_MAX_BATCH_TOKENS, model.maxTokens);
  }

  /** Inputs waiting for the encoder. */
  get queueDepth(): number {
    return this.queue.length;
  }

  countTokens(text: string): number {
    return this.model.tokenize(text).length;
  }

  embed(texts: readonly string[], opts: EmbedOptions = {}): Promise<EmbedResult> {
    if (opts.signal?.aborted) return Promise.reject(new GenerationCancelledError());
    if (texts.length === 0) return Promise.resolve({ vectors: [], tokens: [] });
    // An empty queue always takes a request, so one larger than the whole limit is not refused forever.
    if (this.queue.length > 0 && this.queue.length + texts.length > this.limits.maxWaiting) {
      return Promise.reject(new EngineOverloadedError(this.limits.maxWaiting, 'inputs'));
    }
    const max = this.model.maxTokens;
    const ids: number[][] = [];
    for (let i = 0; i < texts.length; i++) {
      const full = this.model.tokenize(texts[i]!);
      if (full.length <= max) ids.push(full);
      else if (opts.truncate) ids.push(this.model.tokenize(texts[i]!, max));
      else return Promise.reject(new InputTooLongError(i, full.length, max));
    }
    return new Promise<EmbedResult>((resolve, reject) => {
      const signal = opts.signal;
      const onAbort = () => {
        if (job.settled) return;
        // Its inputs leave the queue; any in a running batch finish and are dropped.
        for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i]!.job === job) this.queue.splice(i, 1);
        job.settled = true;
        job.cleanup();
        reject(new GenerationCancelledError());
      };
      const job: Job = {
        vectors: new Array<Float32Array>(texts.length),
        tokens: ids.map((t) => t.length),
        normalize: opts.normalize ?? true,
        remaining: texts.length,
        settled: false,
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      ids.forEach((t, index) => this.queue.push({ job, index, ids: t }));
      this.kick();
    });
  }

  /** Waits for the batch in progress, then releases the model; queued callers are refused. */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    for (const item of this.queue.splice(0)) this.fail(item.job, new GenerationCancelledError());
    await this.idle;
    await this.model.close();
  }

  /**
   * Starts a batch now when one is full, when waiting is off, or when the
   * last batch had a single caller (waiting would only delay a lone client);
   * else within maxWaitMs of the first input.
   */
  private kick(): void {
    if (this.running) return;
    if (this.queue.length >= this.limits.maxBatchSize || this.limits.maxWaitMs <= 0 || this.lastBatchCallers <= 1) {
      clearTimeout(this.timer);
      this.timer = undefined;
      void this.loop();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.loop();
      }, this.limits.maxWaitMs);
    }
  }

  private async loop(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.idle = new Promise((r) => (this.markIdle = r));
    try {
      while (this.queue.length > 0) {
        const n = takeCount(
          this.queue.map((item) => item.ids.length),
          { maxBatchSize: this.limits.maxBatchSize, maxBatchTokens: this.maxBatchTokens },
        );
        const batch = this.queue.splice(0, n);
        this.lastBatchCallers = new Set(batch.map((item) => item.job)).size;
        const runs = planRuns(batch.map((item) => item.ids.length), RUN_OVERHEAD_TOKENS);
        let padded = 0;
        for (const run of runs) {
          const items = run.map((k) => batch[k]!);
          padded += items.length * Math.max(...items.map((item) => item.ids.length));
          try {
            const vectors = await this.model.embed(items.map((item) => item.ids));
            items.forEach((item, k) => this.deliver(item, vectors[k]!));
          } catch (err) {
            for (const item of items) this.fail(item.job, err);
          }
        }
        this.observer?.embeddingBatch(batch.length, runs.length, padded);
        // ONNX Runtime held the event loop during the run: let the requests that came meanwhile in.
        await new Promise<void>((r) => setImmediate(r));
      }
    } finally {
      this.running = false;
      this.markIdle();
    }
  }

  private deliver(item: Item, vector: Float32Array): void {
    const job = item.job;
    if (job.settled) return;
    job.vectors[item.index] = job.normalize ? l2Normalize(vector) : vector;
    if (--job.remaining > 0) return;
    job.settled = true;
    job.cleanup();
    this.observer?.embeddingRequest(job.vectors.length, job.tokens.reduce((a, b) => a + b, 0));
    job.resolve({ vectors: job.vectors, tokens: job.tokens });
  }

  private fail(job: Job, err: unknown): void {
    if (job.settled) return;
    job.settled = true;
    job.cleanup();
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i]!.job === job) this.queue.splice(i, 1);
    job.reject(err);
  }
}
