import { ContextOverflowError, GenerationCancelledError } from '../engine/errors.js';
import { AppError, invalidRequest, notFound, serviceUnavailable } from '../errors.js';
import type { Log } from '../observability/log.js';
import { cursorCodec, itemCursor, itemPosition, keysetPage } from '../storage/cursor.js';
import { BATCH_STATUSES, type BatchItem, type BatchParams, type BatchRun, type BatchStatus, type FailureReason, type Storage } from '../storage/types.js';
import type { RequestContext } from './context.js';
import type { EvalRecordData } from './datasets/validate.js';
import { isExpected, publicError } from './errors.js';
import type { BatchListQuery, StartBatchRequest } from './evaluation-schema.js';
import { toScoreRecords, type Scorer } from './evaluation.js';
import { newId } from './ids.js';
import type { ModelHost } from './model-host.js';
import { ProgressEvents, watchChanges } from './progress-events.js';
import { StoragePause } from './storage-pause.js';
import type { Page, PageQuery } from './paging.js';
import { samplingParams, type SamplingFields } from './sampling.js';
import { DEFAULT_CRITERION, passRule, type Criterion } from './scoring/criteria.js';
import { mean, percentile, scoreDistribution, summarizeScores, wilsonInterval } from './scoring/stats.js';

const MAX_ATTEMPTS = 3;
/** Records and items are read from storage this many at a time. */
const PAGE = 200;

/** What a batch run does not take from its request: it samples plainly, with no stop strings. */
const BATCH_SAMPLING: Omit<SamplingFields, 'max_new_tokens' | 'temperature'> = { top_p: 1, top_k: 0, repetition_penalty: 1, stop: [] };

/** Where records go in queue mode (src/jobs/batch-queue.ts BatchQueue). */
export interface BatchDispatch {
  enqueue(batchId: string, records: Array<{ index: number; recordId: string }>): Promise<void>;
  cancel(batchId: string, indexes: number[]): Promise<void>;
}

/** Batch runs, newest first: (created_at desc, id desc), like datasets. */
export const batchRunCursor = cursorCodec({ createdAt: 'time', id: 'id' });
/** A run's position in that order: where a page that ends with it continues. */
export const batchRunPosition = (r: { createdAt: string; id: string }) => ({ createdAt: r.createdAt, id: r.id });

export interface BatchSummary {
  meanScores: Record<string, number | null>;
  totalItems: number;
  failedItems: number;
  passRate: number | null;
  passRateCi95Lower: number | null;
  passRateCi95Upper: number | null;
  latencyP50Ms: number | null;
  latencyP95Ms: number | null;
  totalInputTokens: number;
  totalOutputTokens: number;
}

export interface Distribution {
  criterion: string;
  buckets: Record<string, number>;
  summary: { count: number; mean: number | null; min: number | null; max: number | null; p50: number | null };
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

/**
 * Batch evaluations: every record of an eval set through the shared engine
 * (bounded concurrency, so records batch with each other and with live
 * traffic), scored, persisted as each finishes; resumable after a restart.
 */
export class BatchEvalService {
  private readonly active = new Map<string, AbortController>();
  private stopping = false;
  /** Runs wait out a storage outage (database restarting, data directory read-only) instead of failing records. */
  private readonly storagePause: StoragePause;

  constructor(
    private readonly storage: Storage,
    private readonly host: ModelHost,
    private readonly scorer: Scorer,
    private readonly log: Log,
    /** Set when records go through the job queue (ROLE=api): runs are enqueued, not run here. */
    private readonly dispatch: BatchDispatch | null = null,
    /** "This run changed" events, for the batchEvalProgress subscription (across replicas with Redis). */
    private readonly events: ProgressEvents = new ProgressEvents(),
  ) {
    this.storagePause = new StoragePause(log, 'batch evaluations');
  }

  /** A storage call of a run, tried again while storage is unavailable (until `signal` aborts). */
  private durable<T>(call: () => Promise<T>, signal: AbortSignal): Promise<T> {
    return this.storagePause.run(call, signal);
  }

  /** Stores one record's result and tells subscribers. */
  private async putItem(item: BatchItem): Promise<void> {
    await this.storage.batches.putItem(item);
    this.events.batchChanged(item.batchId);
  }

  private async updateRun(id: string, patch: Parameters<Storage['batches']['update']>[1], onlyIfStatus?: readonly BatchStatus[]): Promise<BatchRun | null> {
    const run = await this.storage.batches.update(id, patch, onlyIfStatus);
    this.events.batchChanged(id);
    return run;
  }

  /**
   * The run now, then again each time it changes (an event from whichever
   * process changed it, or at the latest every `recheckMs`), until it ends
   * or `signal` aborts. Each value is read from storage.
   */
  watch(id: string, signal: AbortSignal, recheckMs = 2000): AsyncGenerator<BatchRun> {
    return watchChanges(
      {
        events: this.events.watchBatch(id),
        read: () => this.get(id),
        key: (run) => `${run.status}:${run.completed}:${run.failed}`,
        ended: (run) => run.status !== 'queued' && run.status !== 'running',
      },
      signal,
      recheckMs,
    );
  }

  async start(req: StartBatchRequest, ctx: RequestContext): Promise<BatchRun> {
    const dataset = await this.storage.datasets.get(req.dataset_id);
    if (!dataset) throw notFound(`dataset ${req.dataset_id} not found`, { dataset_id: req.dataset_id });
    if (dataset.type !== 'eval_set') throw invalidRequest('dataset_id must name an eval_set dataset', { field: 'dataset_id' });
    if (req.model !== undefined && req.model !== this.host.modelName) {
      throw invalidRequest(`model ${req.model} is not served here; this server serves ${this.host.modelName}`, { field: 'model' });
    }
    const now = new Date().toISOString();
    const params: BatchParams = {
      model: this.host.modelName,
      concurrency: req.concurrency,
      max_new_tokens: req.max_new_tokens,
      temperature: req.temperature,
      seed: req.seed,
      judge: req.judge,
    };
    const run: BatchRun = {
      id: newId('be'),
      datasetId: dataset.id,
      status: 'queued',
      criteria: req.criteria,
      params,
      total: dataset.recordCount,
      completed: 0,
      failed: 0,
      keyId: ctx.keyId,
      error: null,
      createdAt: now,
      startedAt: null,
      updatedAt: now,
      completedAt: null,
    };
    await this.storage.batches.create(run);
    if (this.dispatch) await this.enqueue(run);
    else this.launch(run);
    return run;
  }

  async get(id: string): Promise<BatchRun> {
    const run = await this.storage.batches.get(id);
    if (!run) throw notFound(`batch evaluation ${id} not found`, { batch_eval_id: id });
    return run;
  }

  /**
   * Runs, newest first, a page at a time, optionally of one status or
   * dataset. Paged in memory over the stored runs (one row each, no items):
   * runs are few next to their records.
   */
  async list({ status, dataset_id: datasetId, limit, cursor }: BatchListQuery): Promise<Page<BatchRun>> {
    const after = cursor === undefined ? null : batchRunCursor.decode(cursor);
    const newestFirst = (a: { createdAt: string; id: string }, b: { createdAt: string; id: string }) =>
      a.createdAt === b.createdAt ? (a.id < b.id ? 1 : a.id > b.id ? -1 : 0) : a.createdAt < b.createdAt ? 1 : -1;
    const runs = (await this.storage.batches.listByStatus(status ? [status] : [...BATCH_STATUSES]))
      .filter((r) => datasetId === undefined || r.datasetId === datasetId)
      .filter((r) => after === null || newestFirst(r, after) > 0)
      .sort(newestFirst);
    return keysetPage(runs.slice(0, limit + 1), limit, (r) => r, batchRunCursor, batchRunPosition);
  }

  async cancel(id: string): Promise<BatchRun> {
    const run = await this.get(id);
    if (run.status !== 'queued' && run.status !== 'running') {
      throw new AppError('conflict', `batch evaluation ${id} is already ${run.status}`, { status: run.status });
    }
    const now = new Date().toISOString();
    // Only a run still queued or running is cancelled: one that a worker finished meanwhile keeps its result.
    const cancelled = await this.updateRun(id, { status: 'cancelled', completedAt: now, updatedAt: now }, ['queued', 'running']);
    if (!cancelled) {
      const current = await this.get(id);
      throw new AppError('conflict', `batch evaluation ${id} is already ${current.status}`, { status: current.status });
    }
    this.active.get(id)?.abort();
    // Workers see the status and drop the run's jobs; waiting ones are removed, active ones stopped.
    if (this.dispatch) {
      await this.dispatch.cancel(id, Array.from({ length: run.total }, (_, i) => i)).catch((err: unknown) => {
        // The run is cancelled in storage all the same: workers skip its jobs when they take them.
        this.log.warn({ err, batch_eval_id: id }, 'removing cancelled batch evaluation jobs failed');
      });
    }
    return cancelled;
  }

  /** Resumes runs a crash or restart left queued or running. Called once at start-up. */
  async resumeAll(): Promise<number> {
    // Queued runs live in the queue: nothing to resume in this process.
    if (this.dispatch) return 0;
    const runs = await this.storage.batches.listByStatus(['queued', 'running']);
    for (const run of runs) {
      this.log.info({ batch_eval_id: run.id, completed: run.completed, total: run.total }, 'resuming batch evaluation');
      this.launch(run);
    }
    return runs.length;
  }

  /** Stops taking new records; runs stay `running` in storage and resume at the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const c of this.active.values()) c.abort();
  }

  async summary(id: string): Promise<{ run: BatchRun; summary: BatchSummary }> {
    const run = await this.get(id);
    const items = await this.allItems(id);
    const ok = items.filter((i) => i.status === 'succeeded');
    const meanScores: Record<string, number | null> = {};
    for (const c of run.criteria) {
      meanScores[c] = mean(ok.flatMap((i) => i.scores.filter((s) => s.criterion === c && s.score !== null).map((s) => s.score!)));
    }
    const passed = items.filter((i) => i.passed === true).length;
    const ci = wilsonInterval(passed, items.length);
    const latencies = ok.map((i) => i.latencyMs).filter((x): x is number => x !== null);
    return {
      run,
      summary: {
        meanScores,
        totalItems: items.length,
        failedItems: items.length - ok.length,
        passRate: items.length > 0 ? passed / items.length : null,
        passRateCi95Lower: ci?.lower ?? null,
        passRateCi95Upper: ci?.upper ?? null,
        latencyP50Ms: percentile(latencies, 50),
        latencyP95Ms: percentile(latencies, 95),
        totalInputTokens: items.reduce((s, i) => s + (i.promptTokens ?? 0), 0),
        totalOutputTokens: items.reduce((s, i) => s + (i.completionTokens ?? 0), 0),
      },
    };
  }

  async distribution(id: string, criterion: string = DEFAULT_CRITERION): Promise<Distribution> {
    const run = await this.get(id);
    if (!run.criteria.includes(criterion)) {
      throw invalidRequest(`criterion must be one of this run's criteria: ${run.criteria.join(', ')}`, { field: 'criterion' });
    }
    const scores = (await this.allItems(id)).flatMap((i) => i.scores.filter((s) => s.criterion === criterion).map((s) => s.score));
    const summary = summarizeScores(scores);
    return { criterion, buckets: scoreDistribution(scores), summary };
  }

  /** Records that did not pass, in dataset order, a page at a time; `count` is all of them. */
  async failures(id: string, { limit, cursor }: PageQuery): Promise<Page<BatchItem> & { count: number }> {
    const run = await this.get(id);
    const after = cursor === undefined ? -1 : itemCursor.decode(cursor).index;
    const rows = await this.storage.batches.items(id, { afterIndex: after, limit: limit + 1, notPassedOnly: true });
    const page = keysetPage(rows, limit, (i) => i, itemCursor, itemPosition);
    const count = (await this.allItems(run.id)).filter((i) => i.passed !== true).length;
    return { ...page, count };
  }

  /** Every stored item, in index order, read page by page. */
  async *streamItems(id: string, notPassedOnly: boolean): AsyncGenerator<BatchItem> {
    await this.get(id);
    let after = -1;
    for (;;) {
      const page = await this.storage.batches.items(id, { afterIndex: after, limit: PAGE, notPassedOnly });
      for (const item of page) yield item;
      if (page.length < PAGE) return;
      after = page.at(-1)!.index;
    }
  }

  private async allItems(id: string): Promise<BatchItem[]> {
    const out: BatchItem[] = [];
    for await (const i of this.streamItems(id, false)) out.push(i);
    return out;
  }

  /**
   * Queue mode: the run is `running` (started) before its records are
   * enqueued, so a worker never has to move it out of `queued` (which could
   * race with a cancel), then one job per record.
   */
  private async enqueue(run: BatchRun): Promise<void> {
    const now = new Date().toISOString();
    await this.updateRun(run.id, { status: 'running', startedAt: now, updatedAt: now });
    const records: Array<{ index: number; recordId: string }> = [];
    let after = -1;
    for (;;) {
      const page = await this.storage.datasets.records(run.datasetId, after, PAGE);
      for (const r of page) records.push({ index: r.index, recordId: r.recordId });
      if (page.length < PAGE) break;
      after = page.at(-1)!.index;
    }
    try {
      await this.dispatch!.enqueue(run.id, records);
    } catch (err) {
      // Redis away: the run cannot start; jobs already queued find it failed and do nothing.
      const end = new Date().toISOString();
      await this.updateRun(run.id, { status: 'failed', error: 'job queue unavailable', completedAt: end, updatedAt: end });
      this.log.error({ err, batch_eval_id: run.id }, 'enqueueing batch evaluation records failed');
      throw serviceUnavailable('Job queue unavailable: the batch evaluation could not be started', { batch_eval_id: run.id });
    }
    // An empty dataset has no record whose result would end the run.
    if (records.length === 0) await this.finishIfDone(run.id);
  }

  private launch(run: BatchRun): void {
    if (this.active.has(run.id) || this.stopping) return;
    const controller = new AbortController();
    this.active.set(run.id, controller);
    void this.execute(run, controller.signal)
      .catch(async (err: unknown) => {
        // Stopped (shutdown) or cancelled while waiting: the run stays as stored, resumed at the next start.
        if (this.stopping || controller.signal.aborted) return;
        this.log.error({ err, batch_eval_id: run.id }, 'batch evaluation failed');
        const now = new Date().toISOString();
        const current = await this.storage.batches.get(run.id);
        if (current && (current.status === 'running' || current.status === 'queued')) {
          await this.updateRun(run.id, {
            status: 'failed',
            error: err instanceof Error ? err.message : String(err),
            completedAt: now,
            updatedAt: now,
          }, ['queued', 'running']);
        }
      })
      // Marking it failed needs storage too; if that fails the run stays `running` and resumes at the next start.
      .catch((err: unknown) => this.log.error({ err, batch_eval_id: run.id }, 'recording a failed batch evaluation failed'))
      .finally(() => this.active.delete(run.id));
  }

  private async execute(run: BatchRun, signal: AbortSignal): Promise<void> {
    // Wait for the model: a run started (or resumed) while it loads begins once it is ready.
    while (this.host.state === 'loading' && !signal.aborted) await sleep(200, signal);
    if (signal.aborted) return;
    if (this.host.state === 'failed') throw new Error(`model failed to load: ${this.host.reason ?? 'unknown'}`);
    const now = new Date().toISOString();
    await this.durable(() => this.updateRun(run.id, { status: 'running', startedAt: run.startedAt ?? now, updatedAt: now }), signal);
    const done = await this.durable(() => this.storage.batches.doneIndexes(run.id), signal);
    const { concurrency } = run.params;

    let after = -1;
    const inFlight = new Set<Promise<void>>();
    for (;;) {
      const records = await this.durable(() => this.storage.datasets.records(run.datasetId, after, PAGE), signal);
      if (records.length === 0) break;
      for (const r of records) {
        if (signal.aborted) break;
        if (done.has(r.index)) continue;
        const p = this.processRecord(run, r.index, r.recordId, r.data as unknown as EvalRecordData, signal).finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= concurrency) await Promise.race(inFlight);
      }
      if (signal.aborted) break;
      after = records.at(-1)!.index;
    }
    await Promise.all(inFlight);
    if (signal.aborted) return;
    const final = await this.durable(() => this.storage.batches.get(run.id), signal);
    if (!final || final.status !== 'running') return;
    // `completed` counts records answered and scored, `failed` those that could not be.
    const status: BatchStatus = final.failed === 0 ? 'completed' : final.completed > 0 ? 'completed_with_failures' : 'failed';
    const end = new Date().toISOString();
    await this.durable(
      () => this.updateRun(run.id, { status, completedAt: end, updatedAt: end, error: status === 'failed' ? 'every record failed' : null }, ['running']),
      signal,
    );
  }

  /**
   * One record: generate (retrying transient failures), score, apply the
   * pass rule, store. Storing waits out a storage outage without generating
   * again: the upsert by (run, index) makes a store retried after a commit
   * whose answer was lost still one result.
   */
  private async processRecord(run: BatchRun, index: number, recordId: string, rec: EvalRecordData, signal: AbortSignal): Promise<void> {
    let attempts = 0;
    let lastError: unknown;
    while (attempts < MAX_ATTEMPTS && !signal.aborted) {
      attempts++;
      let item: BatchItem | null;
      try {
        item = await this.attemptRecord(run, index, recordId, rec, signal, attempts);
      } catch (err) {
        if (err instanceof GenerationCancelledError) return;
        lastError = err;
        // A prompt that cannot fit is not transient: no retry.
        if (err instanceof ContextOverflowError) break;
        if (attempts < MAX_ATTEMPTS) await sleep(200 * 2 ** (attempts - 1), signal);
        continue;
      }
      if (item !== null) await this.durable(() => this.putItem(item), signal);
      return;
    }
    if (signal.aborted) return;
    await this.durable(() => this.putItem(failedItem(run.id, index, recordId, attempts, lastError)), signal);
  }

  /**
   * One record as a queued job (ROLE=worker): one attempt; a transient error
   * is thrown back to the queue for a retry unless this is the last attempt,
   * which stores a failed result. The write is idempotent per (run, index),
   * so a record taken up again after a worker died still ends with one result.
   */
  async processQueuedRecord(job: { batchId: string; index: number; recordId: string }, attempt: number, last: boolean, signal: AbortSignal): Promise<void> {
    // Storage calls wait out an outage here too: a retry would spend one of the job's attempts on it.
    const run = await this.durable(() => this.storage.batches.get(job.batchId), signal);
    if (!run || (run.status !== 'queued' && run.status !== 'running')) return;
    const [record] = await this.durable(() => this.storage.datasets.records(run.datasetId, job.index - 1, 1), signal);
    if (!record || record.index !== job.index) throw new Error(`record ${job.index} of dataset ${run.datasetId} not found`);
    // Wait for the model, like the in-process path.
    while (this.host.state === 'loading' && !signal.aborted) await sleep(200, signal);
    if (signal.aborted) return;
    let item: BatchItem | null;
    try {
      item = await this.attemptRecord(run, job.index, job.recordId, record.data as unknown as EvalRecordData, signal, attempt);
    } catch (err) {
      if (err instanceof GenerationCancelledError || signal.aborted) return;
      if (!last && !(err instanceof ContextOverflowError)) throw err;
      item = failedItem(run.id, job.index, job.recordId, attempt, err);
    }
    if (item === null) return;
    const stored = item;
    await this.durable(() => this.putItem(stored), signal);
    await this.durable(() => this.finishIfDone(run.id), signal);
  }

  /** A queued record the queue gave up on (stalled too often): a failed result unless one is stored. */
  async giveUpQueuedRecord(job: { batchId: string; index: number; recordId: string }, err: Error): Promise<void> {
    const run = await this.storage.batches.get(job.batchId);
    if (!run || (run.status !== 'queued' && run.status !== 'running')) return;
    const [existing] = await this.storage.batches.items(job.batchId, { afterIndex: job.index - 1, limit: 1 });
    if (existing?.index === job.index) return;
    await this.putItem(failedItem(run.id, job.index, job.recordId, 0, err));
    await this.finishIfDone(run.id);
  }

  /** Once every record has a result, the run's final status (whichever worker stores the last one). */
  private async finishIfDone(id: string): Promise<void> {
    const run = await this.storage.batches.get(id);
    if (!run || run.status !== 'running' || run.completed + run.failed < run.total) return;
    const status: BatchStatus = run.failed === 0 ? 'completed' : run.completed > 0 ? 'completed_with_failures' : 'failed';
    const end = new Date().toISOString();
    // Only while still running: a cancel stored meanwhile by another process stands.
    await this.updateRun(id, { status, completedAt: end, updatedAt: end, error: status === 'failed' ? 'every record failed' : null }, ['running']);
  }

  /** Generates, scores and applies the pass rule; the item to store, or null when cancelled. Throws on failure. */
  private async attemptRecord(run: BatchRun, index: number, recordId: string, rec: EvalRecordData, signal: AbortSignal, attempts: number): Promise<BatchItem | null> {
    const p = run.params;
    const engine = this.host.require();
    const started = performance.now();
    const g = await engine.generate(rec.input.prompt, samplingParams({ ...BATCH_SAMPLING, ...p }, p.seed + index), { signal });
    if (g.finishReason === 'cancelled') return null;
    const latencyMs = Math.round(performance.now() - started);
    const scores = await this.scorer.score({
      prompt: rec.input.prompt,
      response: g.text,
      reference: rec.reference?.answer ?? null,
      finishReason: g.finishReason === 'stop' ? 'stop' : 'length',
      criteria: run.criteria as Criterion[],
      judge: p.judge,
      seed: p.seed,
      signal,
    });
    if (signal.aborted) return null;
    const rule = passRule(scores, rec.expected);
    const slow = rec.expected.max_latency_ms !== undefined && latencyMs > rec.expected.max_latency_ms;
    const reason: FailureReason | null = slow
      ? 'latency_exceeded'
      : rule.pass
        ? null
        : rule.failures.some((f) => f.reason === 'below_threshold')
          ? 'below_threshold'
          : 'unscored';
    return {
      batchId: run.id,
      index,
      recordId,
      status: 'succeeded',
      response: g.text,
      promptTokens: g.promptTokens,
      completionTokens: g.completionTokens,
      latencyMs,
      scores: toScoreRecords(scores),
      passed: reason === null,
      attempts,
      reason,
      message: reason === 'latency_exceeded' ? `${latencyMs} ms > ${rec.expected.max_latency_ms} ms; ${rule.rationale}` : reason ? rule.rationale : null,
      createdAt: new Date().toISOString(),
    };
  }
}

/** The stored result of a record that could not be answered. */
function failedItem(batchId: string, index: number, recordId: string, attempts: number, err: unknown): BatchItem {
  const overflow = err instanceof ContextOverflowError;
  return {
    batchId,
    index,
    recordId,
    status: 'failed',
    response: null,
    promptTokens: null,
    completionTokens: null,
    latencyMs: null,
    scores: [],
    passed: false,
    attempts,
    reason: overflow ? 'context_overflow' : 'generation_error',
    message: isExpected(err) ? publicError(err).message : 'generation failed',
    createdAt: new Date().toISOString(),
  };
}
