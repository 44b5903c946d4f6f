import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { FINISH_REASONS } from '../engine/types.js';
import { ERROR_CODES } from '../errors.js';

/** Label of requests that matched no route: unknown paths never become label values. */
export const UNMATCHED_ROUTE = 'unmatched';

/** What the metrics read from the model host at scrape time (ModelHost fits it). */
export interface MetricsSource {
  readonly engine?: { readonly load: { waiting: number; running: number } } | undefined;
  readonly loadSeconds?: number | undefined;
}

/** One finished HTTP request, as the metrics middleware saw it. */
export interface HttpObservation {
  /** The route template (`/v1/batch-evals/:id`), or `unmatched`. */
  route: string;
  method: string;
  status: number;
  durationSeconds: number;
  /** `query`, `mutation` or `subscription` for /graphql. */
  operationType?: string;
}

/** What the metrics read from the embedding model at scrape time (EmbeddingHost fits it). */
export interface EmbeddingMetricsSource {
  /** Inputs waiting for the encoder. */
  readonly queueDepth: number;
}

/** Job counts of the queues (src/jobs/queues.ts JobQueues), read at scrape time; null when unreadable. */
export interface QueueMetricsSource {
  counts(): Promise<Record<string, Record<string, number>> | null>;
}

/** The states a queue gauge reports (BullMQ's, with prioritized counted as waiting). */
export const QUEUE_STATES = ['waiting', 'active', 'completed', 'failed', 'delayed'] as const;

/** One finished generation (Engine's GenerationResult fits it). */
export interface GenerationObservation {
  promptTokens: number;
  completionTokens: number;
  timeToFirstTokenMs: number | null;
  interTokenMs: number | null;
  queueMs: number;
  finishReason: string;
}

/** p50/p95/p99 over the recent samples of one figure (null while there are none). */
export interface Percentiles {
  /** Samples the percentiles are computed from (the most recent ones, at most the window). */
  samples: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface RouteFigures {
  route: string;
  method: string;
  total: number;
  byStatusClass: Record<string, number>;
  latencyMs: Percentiles;
}

/** The JSON figures of GET /v1/metrics and the GraphQL `metrics` query, in camelCase. */
export interface MetricsSnapshot {
  uptimeS: number;
  requests: {
    total: number;
    byStatusClass: Record<string, number>;
    latencyMs: Percentiles;
    routes: RouteFigures[];
  };
  errors: { total: number; byCode: Record<string, number> };
  cache: { hits: number; misses: number; hitRate: number | null };
  rateLimit: { rejections: number };
  inference: {
    requests: number;
    byFinishReason: Record<string, number>;
    promptTokens: number;
    completionTokens: number;
    timeToFirstTokenMs: Percentiles;
    interTokenLatencyMs: Percentiles;
    queueWaitMs: Percentiles;
    queueDepth: number;
    runningBatch: number;
  };
  model: { loadSeconds: number | null };
  embeddings: {
    /** Embedding calls answered (REST, GraphQL and the server's own, such as RAG index builds). */
    requests: number;
    inputs: number;
    tokens: number;
    /** Batches the encoder ran (a batch is one or more encoder runs of similar lengths). */
    batches: number;
    /** Inputs per batch, over the recent batches. */
    batchSize: Percentiles;
    queueDepth: number;
  };
  /** How many recent samples each percentile is computed from. */
  percentileWindow: number;
}

const NO_SAMPLES: Percentiles = { samples: 0, p50: null, p95: null, p99: null };

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** Bounded label values: HTTP's usual methods, everything else `OTHER`. */
export function methodLabel(method: string): string {
  const m = method.toUpperCase();
  return KNOWN_METHODS.has(m) ? m : 'OTHER';
}

export function statusClass(status: number): string {
  return status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : 'other';
}

/**
 * The last `capacity` values of one figure, for exact recent percentiles
 * (a histogram's buckets only bound them).
 */
export class Reservoir {
  private readonly values: number[] = [];
  private next = 0;

  constructor(readonly capacity: number) {}

  add(value: number): void {
    if (!Number.isFinite(value)) return;
    if (this.values.length < this.capacity) this.values.push(value);
    else this.values[this.next] = value;
    this.next = (this.next + 1) % this.capacity;
  }

  /** Nearest-rank percentiles, rounded to 0.001. */
  percentiles(): Percentiles {
    const n = this.values.length;
    if (n === 0) return { ...NO_SAMPLES };
    const sorted = [...this.values].sort((a, b) => a - b);
    const at = (p: number) => Math.round(sorted[Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1))]! * 1000) / 1000;
    return { samples: n, p50: at(0.5), p95: at(0.95), p99: at(0.99) };
  }
}

export interface MetricsOptions {
  /** The model host; queue depth, running batch and load time are read from it at scrape time. */
  source?: MetricsSource;
  /** The embedding host; its queue depth is read at scrape time. */
  embeddings?: EmbeddingMetricsSource;
  /** Samples kept per percentile figure (default 1,000). */
  percentileWindow?: number;
  /** Process metrics (CPU, memory, event loop, GC); on by default. */
  processMetrics?: boolean;
}

/**
 * Every metric of the server, declared once, in a registry of its own (not
 * prom-client's global one, so several instances in one process never
 * collide). Created once in main.ts and passed down; the rest of the code
 * calls the typed helpers and never touches prom-client.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly startedAt = Date.now();
  private readonly window: number;

  private readonly httpRequests: Counter<'route' | 'method' | 'status_class' | 'operation_type'>;
  private readonly httpDuration: Histogram<'route' | 'method' | 'status_class' | 'operation_type'>;
  private readonly promptTokens: Counter;
  private readonly completionTokens: Counter;
  private readonly ttft: Histogram;
  private readonly interToken: Histogram;
  private readonly queueWait: Histogram;
  private readonly inferenceRequests: Counter<'finish_reason'>;
  private readonly cacheHits: Counter;
  private readonly cacheMisses: Counter;
  private readonly rateLimitRejections: Counter;
  private readonly errors: Counter<'code'>;
  private readonly embeddingRequests: Counter;
  private readonly embeddingInputs: Counter;
  private readonly embeddingTokens: Counter;
  private readonly embeddingBatchSize: Histogram;
  private readonly jobDuration: Histogram<'queue' | 'outcome'>;
  private readonly jobsStalled: Counter<'queue'>;
  /** Set by main.ts once the queues exist (split roles only). */
  private queueSource: QueueMetricsSource | null = null;

  private readonly latency: Reservoir;
  private readonly routeLatency = new Map<string, Reservoir>();
  private readonly ttftWindow: Reservoir;
  private readonly interTokenWindow: Reservoir;
  private readonly queueWindow: Reservoir;
  private readonly embeddingBatchWindow: Reservoir;

  constructor(opts: MetricsOptions = {}) {
    const registers = [this.registry];
    const source = opts.source;
    const embeddingSource = opts.embeddings;
    this.window = opts.percentileWindow ?? 1000;
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });

    this.httpRequests = new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests answered, by route template, method and status class (GraphQL: route /graphql with operation_type).',
      labelNames: ['route', 'method', 'status_class', 'operation_type'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Time from receiving a request to the end of its response (a stream until its last event).',
      labelNames: ['route', 'method', 'status_class', 'operation_type'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
    this.promptTokens = new Counter({
      name: 'inference_tokens_prompt_total',
      help: 'Prompt tokens the model read (BOS included), every generation (chat, refine steps, judges, batch runs).',
      registers,
    });
    this.completionTokens = new Counter({
      name: 'inference_tokens_completion_total',
      help: 'Tokens the model generated, every generation.',
      registers,
    });
    this.ttft = new Histogram({
      name: 'inference_time_to_first_token_seconds',
      help: 'Time from submitting a generation to its first token, queue wait and prefill included.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.interToken = new Histogram({
      name: 'inference_inter_token_latency_seconds',
      help: 'Mean gap between consecutive tokens of a generation (one observation per generation of two or more tokens).',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    this.queueWait = new Histogram({
      name: 'inference_queue_wait_seconds',
      help: 'Time a generation waited before the scheduler admitted it to the batch.',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.inferenceRequests = new Counter({
      name: 'inference_requests_total',
      help: 'Generations finished, by finish reason (stop, length, cancelled).',
      labelNames: ['finish_reason'],
      registers,
    });
    new Gauge({
      name: 'inference_queue_depth',
      help: 'Generations waiting to join the running batch.',
      registers,
      collect() {
        this.set(source?.engine?.load.waiting ?? 0);
      },
    });
    new Gauge({
      name: 'inference_running_batch',
      help: 'Sequences in the running batch.',
      registers,
      collect() {
        this.set(source?.engine?.load.running ?? 0);
      },
    });
    new Gauge({
      name: 'model_load_seconds',
      help: 'Seconds the model took to import and load at start-up (0 until it is loaded).',
      registers,
      collect() {
        this.set(source?.loadSeconds ?? 0);
      },
    });
    this.cacheHits = new Counter({ name: 'cache_hits_total', help: 'Chat requests answered from the response cache.', registers });
    this.cacheMisses = new Counter({
      name: 'cache_misses_total',
      help: 'Cacheable chat requests the response cache could not answer.',
      registers,
    });
    this.rateLimitRejections = new Counter({
      name: 'rate_limit_rejections_total',
      help: 'Requests refused with 429 rate_limited.',
      registers,
    });
    this.errors = new Counter({
      name: 'errors_total',
      help: "Error responses (REST) and GraphQL errors, by the contract's error code.",
      labelNames: ['code'],
      registers,
    });
    this.embeddingRequests = new Counter({
      name: 'embedding_requests_total',
      help: 'Embedding calls answered: REST, GraphQL, and the server\'s own (RAG).',
      registers,
    });
    this.embeddingInputs = new Counter({ name: 'embedding_inputs_total', help: 'Texts embedded.', registers });
    this.embeddingTokens = new Counter({
      name: 'embedding_tokens_total',
      help: 'Tokens the embedding model read (special tokens included, after truncation).',
      registers,
    });
    this.embeddingBatchSize = new Histogram({
      name: 'embedding_batch_size',
      help: 'Inputs per batch the embedding model ran (inputs of concurrent requests batched together).',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    });
    new Gauge({
      name: 'embedding_queue_depth',
      help: 'Inputs waiting for the embedding model.',
      registers,
      collect() {
        this.set(embeddingSource?.queueDepth ?? 0);
      },
    });
    const self = this;
    new Gauge({
      name: 'job_queue_jobs',
      help: 'Jobs in each queue by state (waiting, active, completed, failed, delayed); split roles only (ROLE=api, worker).',
      labelNames: ['queue', 'state'],
      registers,
      async collect() {
        this.reset();
        const counts = await self.queueSource?.counts().catch(() => null);
        for (const [queue, c] of Object.entries(counts ?? {})) {
          for (const state of QUEUE_STATES) this.set({ queue, state }, c[state] ?? 0);
        }
      },
    });
    this.jobDuration = new Histogram({
      name: 'job_duration_seconds',
      help: 'Time a worker spent on one job, by queue and outcome (completed, failed).',
      labelNames: ['queue', 'outcome'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    this.jobsStalled = new Counter({
      name: 'job_queue_stalled_total',
      help: 'Jobs this worker found stalled (their worker died or hung) and handed back to the queue.',
      labelNames: ['queue'],
      registers,
    });
    for (const code of ERROR_CODES) this.errors.inc({ code }, 0);
    for (const finish_reason of FINISH_REASONS) this.inferenceRequests.inc({ finish_reason }, 0);

    this.latency = new Reservoir(this.window);
    this.ttftWindow = new Reservoir(this.window);
    this.interTokenWindow = new Reservoir(this.window);
    this.queueWindow = new Reservoir(this.window);
    this.embeddingBatchWindow = new Reservoir(this.window);
  }

  /** The queues whose job counts the `job_queue_jobs` gauge reports. */
  watchQueues(source: QueueMetricsSource): void {
    this.queueSource = source;
  }

  /** One job a worker finished (completed) or gave back with an error (failed). */
  observeJob(queue: string, outcome: 'completed' | 'failed', seconds: number): void {
    this.jobDuration.observe({ queue, outcome }, seconds);
  }

  jobStalled(queue: string): void {
    this.jobsStalled.inc({ queue });
  }

  /** One finished HTTP request. */
  observeRequest(o: HttpObservation): void {
    const labels = {
      route: o.route,
      method: methodLabel(o.method),
      status_class: statusClass(o.status),
      ...(o.operationType ? { operation_type: o.operationType } : {}),
    };
    this.httpRequests.inc(labels);
    this.httpDuration.observe(labels, o.durationSeconds);
    const ms = o.durationSeconds * 1000;
    this.latency.add(ms);
    const key = `${labels.method} ${labels.route}`;
    let r = this.routeLatency.get(key);
    if (!r) this.routeLatency.set(key, (r = new Reservoir(this.window)));
    r.add(ms);
  }

  /** One finished generation: tokens, time to first token, inter-token gap, queue wait. */
  observeGeneration(g: GenerationObservation): void {
    this.promptTokens.inc(g.promptTokens);
    this.completionTokens.inc(g.completionTokens);
    this.inferenceRequests.inc({ finish_reason: g.finishReason });
    this.queueWait.observe(g.queueMs / 1000);
    this.queueWindow.add(g.queueMs);
    if (g.timeToFirstTokenMs !== null) {
      this.ttft.observe(g.timeToFirstTokenMs / 1000);
      this.ttftWindow.add(g.timeToFirstTokenMs);
    }
    if (g.interTokenMs !== null) {
      this.interToken.observe(g.interTokenMs / 1000);
      this.interTokenWindow.add(g.interTokenMs);
    }
  }

  /** One embedding call answered: its inputs and the tokens read. */
  embeddingRequest(inputs: number, tokens: number): void {
    this.embeddingRequests.inc();
    this.embeddingInputs.inc(inputs);
    this.embeddingTokens.inc(tokens);
  }

  /** One batch the embedding model ran. */
  embeddingBatch(inputs: number): void {
    this.embeddingBatchSize.observe(inputs);
    this.embeddingBatchWindow.add(inputs);
  }

  cacheHit(): void {
    this.cacheHits.inc();
  }

  cacheMiss(): void {
    this.cacheMisses.inc();
  }

  rateLimited(): void {
    this.rateLimitRejections.inc();
  }

  /** One error answered to a client, by its contract code. */
  error(code: string): void {
    this.errors.inc({ code });
  }

  /** Prometheus text exposition of every metric. */
  prometheus(): Promise<string> {
    return this.registry.metrics();
  }

  /** The registry's exposition content type (`text/plain; version=0.0.4; charset=utf-8`). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The JSON figures: counters read from the registry, percentiles from the recent windows. */
  async snapshot(): Promise<MetricsSnapshot> {
    const [http, errors, finish, prompt, completion, hits, misses, rejected, depth, running, load, eRequests, eInputs, eTokens, eBatches, eDepth] = await Promise.all([
      this.httpRequests.get(),
      this.errors.get(),
      this.inferenceRequests.get(),
      this.promptTokens.get(),
      this.completionTokens.get(),
      this.cacheHits.get(),
      this.cacheMisses.get(),
      this.rateLimitRejections.get(),
      this.gaugeValue('inference_queue_depth'),
      this.gaugeValue('inference_running_batch'),
      this.gaugeValue('model_load_seconds'),
      this.embeddingRequests.get(),
      this.embeddingInputs.get(),
      this.embeddingTokens.get(),
      this.embeddingBatchSize.get(),
      this.gaugeValue('embedding_queue_depth'),
    ]);
    const sum = (m: { values: Array<{ value: number }> }) => m.values.reduce((s, v) => s + v.value, 0);

    const byStatusClass: Record<string, number> = {};
    const routes = new Map<string, RouteFigures>();
    for (const v of http.values) {
      const cls = String(v.labels.status_class);
      byStatusClass[cls] = (byStatusClass[cls] ?? 0) + v.value;
      const route = String(v.labels.route);
      const method = String(v.labels.method);
      const key = `${method} ${route}`;
      let f = routes.get(key);
      if (!f) {
        f = { route, method, total: 0, byStatusClass: {}, latencyMs: this.routeLatency.get(key)?.percentiles() ?? NO_SAMPLES };
        routes.set(key, f);
      }
      f.total += v.value;
      f.byStatusClass[cls] = (f.byStatusClass[cls] ?? 0) + v.value;
    }
    const byCode: Record<string, number> = {};
    for (const v of errors.values) byCode[String(v.labels.code)] = (byCode[String(v.labels.code)] ?? 0) + v.value;
    const byFinishReason: Record<string, number> = {};
    for (const v of finish.values) {
      const reason = String(v.labels.finish_reason);
      byFinishReason[reason] = (byFinishReason[reason] ?? 0) + v.value;
    }
    const cacheHits = sum(hits);
    const cacheMisses = sum(misses);
    return {
      uptimeS: Math.round((Date.now() - this.startedAt) / 100) / 10,
      requests: {
        total: sum(http),
        byStatusClass,
        latencyMs: this.latency.percentiles(),
        routes: [...routes.values()].sort((a, b) => a.route.localeCompare(b.route) || a.method.localeCompare(b.method)),
      },
      errors: { total: sum(errors), byCode },
      cache: {
        hits: cacheHits,
        misses: cacheMisses,
        hitRate: cacheHits + cacheMisses > 0 ? Math.round((cacheHits / (cacheHits + cacheMisses)) * 10_000) / 10_000 : null,
      },
      rateLimit: { rejections: sum(rejected) },
      inference: {
        requests: sum(finish),
        byFinishReason,
        promptTokens: sum(prompt),
        completionTokens: sum(completion),
        timeToFirstTokenMs: this.ttftWindow.percentiles(),
        interTokenLatencyMs: this.interTokenWindow.percentiles(),
        queueWaitMs: this.queueWindow.percentiles(),
        queueDepth: depth,
        runningBatch: running,
      },
      model: { loadSeconds: load > 0 ? Math.round(load * 1000) / 1000 : null },
      embeddings: {
        requests: sum(eRequests),
        inputs: sum(eInputs),
        tokens: sum(eTokens),
        batches: eBatches.values.find((v) => v.metricName === 'embedding_batch_size_count')?.value ?? 0,
        batchSize: this.embeddingBatchWindow.percentiles(),
        queueDepth: eDepth,
      },
      percentileWindow: this.window,
    };
  }

  /** A gauge's value after its collect() ran. */
  private async gaugeValue(name: string): Promise<number> {
    const m = this.registry.getSingleMetric(name);
    if (!m) return 0;
    const data = await m.get();
    return data.values[0]?.value ?? 0;
  }
}
