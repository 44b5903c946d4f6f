import { builder } from './builder.js';
import type { MetricsSnapshot, Percentiles, RouteFigures } from '../observability/metrics.js';

interface LabelCount {
  label: string;
  count: number;
}

// REST gives these as {label: count} maps; GraphQL has no map type, so they are lists, sorted by label.
const counts = (record: Record<string, number>): LabelCount[] =>
  Object.entries(record)
    .map(([label, count]) => ({ label, count }))
    .sort((a, b) => a.label.localeCompare(b.label));

const LabelCountRef = builder.objectRef<LabelCount>('LabelCount').implement({
  description: 'A count under one label value (a status class, an error code, a finish reason).',
  fields: (t) => ({
    label: t.exposeString('label', { description: 'The label value (2xx, not_found, stop, …).' }),
    // Float: counters outgrow GraphQL's 32-bit Int on a long-running server.
    count: t.exposeFloat('count', { description: 'How many.' }),
  }),
});

const PercentilesRef = builder.objectRef<Percentiles>('Percentiles').implement({
  description: 'Nearest-rank percentiles over the most recent samples (null while there are none).',
  fields: (t) => ({
    samples: t.exposeInt('samples', { description: 'Samples they are computed from (at most percentileWindow).' }),
    p50: t.exposeFloat('p50', { nullable: true, description: 'Median.' }),
    p95: t.exposeFloat('p95', { nullable: true, description: '95th percentile.' }),
    p99: t.exposeFloat('p99', { nullable: true, description: '99th percentile.' }),
  }),
});

const RouteMetrics = builder.objectRef<RouteFigures>('RouteMetrics').implement({
  description: 'Requests to one route template and method.',
  fields: (t) => ({
    route: t.exposeString('route', { description: 'The route template (`/v1/datasets/:id`), or `unmatched`.' }),
    method: t.exposeString('method', { description: 'The HTTP method (OTHER for unusual ones).' }),
    total: t.exposeFloat('total', { description: 'Requests answered.' }),
    byStatusClass: t.field({ type: [LabelCountRef], description: 'Requests per status class (2xx, 4xx, …).', resolve: (r) => counts(r.byStatusClass) }),
    latencyMs: t.field({ type: PercentilesRef, description: 'Response latency, in milliseconds.', resolve: (r) => r.latencyMs }),
  }),
});

type Requests = MetricsSnapshot['requests'];
const RequestMetrics = builder.objectRef<Requests>('RequestMetrics').implement({
  description: 'HTTP requests, REST and GraphQL.',
  fields: (t) => ({
    total: t.exposeFloat('total', { description: 'Requests answered.' }),
    byStatusClass: t.field({ type: [LabelCountRef], description: 'Requests per status class (2xx, 4xx, …).', resolve: (r) => counts(r.byStatusClass) }),
    latencyMs: t.field({ type: PercentilesRef, description: 'Response latency, in milliseconds.', resolve: (r) => r.latencyMs }),
    routes: t.field({ type: [RouteMetrics], description: 'The same per route and method.', resolve: (r) => r.routes }),
  }),
});

type Errors = MetricsSnapshot['errors'];
const ErrorMetrics = builder.objectRef<Errors>('ErrorMetrics').implement({
  description: 'Error responses (REST) and GraphQL errors.',
  fields: (t) => ({
    total: t.exposeFloat('total', { description: 'Errors in all.' }),
    byCode: t.field({ type: [LabelCountRef], description: "Errors per contract code (invalid_request, not_found, …).", resolve: (e) => counts(e.byCode) }),
  }),
});

type Cache = MetricsSnapshot['cache'];
const CacheMetrics = builder.objectRef<Cache>('CacheMetrics').implement({
  description: 'The chat response cache.',
  fields: (t) => ({
    hits: t.exposeFloat('hits', { description: 'Answers served from the cache.' }),
    misses: t.exposeFloat('misses', { description: 'Cacheable requests that had to generate.' }),
    hitRate: t.exposeFloat('hitRate', { nullable: true, description: 'hits / (hits + misses); null before the first lookup.' }),
  }),
});

type Inference = MetricsSnapshot['inference'];
const InferenceMetrics = builder.objectRef<Inference>('InferenceMetrics').implement({
  description: 'Generation by the engine.',
  fields: (t) => ({
    requests: t.exposeFloat('requests', { description: 'Generations finished (refine steps and judges count each).' }),
    byFinishReason: t.field({ type: [LabelCountRef], description: 'Generations per finish reason (stop, length, cancelled).', resolve: (i) => counts(i.byFinishReason) }),
    promptTokens: t.exposeFloat('promptTokens', { description: 'Prompt tokens read.' }),
    completionTokens: t.exposeFloat('completionTokens', { description: 'Tokens generated.' }),
    timeToFirstTokenMs: t.field({ type: PercentilesRef, description: 'Milliseconds from submission to the first token.', resolve: (i) => i.timeToFirstTokenMs }),
    interTokenLatencyMs: t.field({ type: PercentilesRef, description: 'Mean milliseconds between tokens, per generation.', resolve: (i) => i.interTokenLatencyMs }),
    queueWaitMs: t.field({ type: PercentilesRef, description: 'Milliseconds waiting before prefill.', resolve: (i) => i.queueWaitMs }),
    queueDepth: t.exposeInt('queueDepth', { description: 'Requests waiting to join the running batch now.' }),
    runningBatch: t.exposeInt('runningBatch', { description: 'Sequences in the running batch now.' }),
  }),
});

type Embeddings = MetricsSnapshot['embeddings'];
const EmbeddingMetrics = builder.objectRef<Embeddings>('EmbeddingMetrics').implement({
  description: 'The embedding model and its batching.',
  fields: (t) => ({
    requests: t.exposeFloat('requests', { description: "Embedding calls answered (REST, GraphQL and the server's own, such as RAG)." }),
    inputs: t.exposeFloat('inputs', { description: 'Texts embedded.' }),
    tokens: t.exposeFloat('tokens', { description: 'Tokens read (special tokens included, after truncation).' }),
    batches: t.exposeFloat('batches', { description: 'Batches the model ran; inputs / batches is the mean batch size.' }),
    batchSize: t.field({ type: PercentilesRef, description: 'Inputs per batch, over the recent batches.', resolve: (e) => e.batchSize }),
    queueDepth: t.exposeInt('queueDepth', { description: 'Inputs waiting for the model now.' }),
  }),
});

const MetricsRef = builder.objectRef<MetricsSnapshot>('Metrics').implement({
  description: 'Counters and figures of the server (REST: GET /v1/metrics).',
  fields: (t) => ({
    uptimeS: t.exposeFloat('uptimeS', { description: 'Seconds since the server started.' }),
    requests: t.field({ type: RequestMetrics, description: 'HTTP requests.', resolve: (m) => m.requests }),
    errors: t.field({ type: ErrorMetrics, description: 'Errors by code.', resolve: (m) => m.errors }),
    cache: t.field({ type: CacheMetrics, description: 'The response cache.', resolve: (m) => m.cache }),
    // REST nests the next two (rate_limit.rejections, model.load_seconds); single figures need no object here.
    rateLimitRejections: t.float({ description: 'Requests refused by the rate limit (429).', resolve: (m) => m.rateLimit.rejections }),
    inference: t.field({ type: InferenceMetrics, description: 'Generation.', resolve: (m) => m.inference }),
    modelLoadSeconds: t.float({ nullable: true, description: 'Seconds the model took to load; null until loaded.', resolve: (m) => m.model.loadSeconds }),
    embeddings: t.field({ type: EmbeddingMetrics, description: 'Embeddings.', resolve: (m) => m.embeddings }),
    percentileWindow: t.exposeInt('percentileWindow', { description: 'Most recent samples each percentile is computed from.' }),
  }),
});

builder.queryField('metrics', (t) =>
  t.field({
    type: MetricsRef,
    description: 'Counters and figures of the server (REST: GET /v1/metrics; Prometheus text there with ?format=prometheus).',
    resolve: (_root, _args, { services }) => services.metrics.snapshot(),
  }),
);
