import { builder } from './builder.js';
import type { MetricsSnapshot, Percentiles, RouteFigures } from '../observability/metrics.js';

interface LabelCount {
  label: string;
  count: number;
}

const counts = (record: Record<string, number>): LabelCount[] =>
  Object.entries(record)
    .map(([label, count]) => ({ label, count }))
    .sort((a, b) => a.label.localeCompare(b.label));

const LabelCountRef = builder.objectRef<LabelCount>('LabelCount').implement({
  description: 'A count under one label value (a status class, an error code, a finish reason).',
  fields: (t) => ({
    label: t.exposeString('label'),
    // Float: counters outgrow GraphQL's 32-bit Int on a long-running server.
    count: t.exposeFloat('count'),
  }),
});

const PercentilesRef = builder.objectRef<Percentiles>('Percentiles').implement({
  description: 'Nearest-rank percentiles over the most recent samples (null while there are none).',
  fields: (t) => ({
    samples: t.exposeInt('samples'),
    p50: t.exposeFloat('p50', { nullable: true }),
    p95: t.exposeFloat('p95', { nullable: true }),
    p99: t.exposeFloat('p99', { nullable: true }),
  }),
});

const RouteMetrics = builder.objectRef<RouteFigures>('RouteMetrics').implement({
  description: 'Requests to one route template and method.',
  fields: (t) => ({
    route: t.exposeString('route', { description: 'The route template (`/v1/datasets/:id`), or `unmatched`.' }),
    method: t.exposeString('method'),
    total: t.exposeFloat('total'),
    byStatusClass: t.field({ type: [LabelCountRef], resolve: (r) => counts(r.byStatusClass) }),
    latencyMs: t.field({ type: PercentilesRef, resolve: (r) => r.latencyMs }),
  }),
});

type Requests = MetricsSnapshot['requests'];
const RequestMetrics = builder.objectRef<Requests>('RequestMetrics').implement({
  fields: (t) => ({
    total: t.exposeFloat('total'),
    byStatusClass: t.field({ type: [LabelCountRef], resolve: (r) => counts(r.byStatusClass) }),
    latencyMs: t.field({ type: PercentilesRef, resolve: (r) => r.latencyMs }),
    routes: t.field({ type: [RouteMetrics], resolve: (r) => r.routes }),
  }),
});

type Errors = MetricsSnapshot['errors'];
const ErrorMetrics = builder.objectRef<Errors>('ErrorMetrics').implement({
  fields: (t) => ({
    total: t.exposeFloat('total'),
    byCode: t.field({ type: [LabelCountRef], resolve: (e) => counts(e.byCode) }),
  }),
});

type Cache = MetricsSnapshot['cache'];
const CacheMetrics = builder.objectRef<Cache>('CacheMetrics').implement({
  fields: (t) => ({
    hits: t.exposeFloat('hits'),
    misses: t.exposeFloat('misses'),
    hitRate: t.exposeFloat('hitRate', { nullable: true }),
  }),
});

type Inference = MetricsSnapshot['inference'];
const InferenceMetrics = builder.objectRef<Inference>('InferenceMetrics').implement({
  fields: (t) => ({
    requests: t.exposeFloat('requests', { description: 'Generations finished (refine steps and judges count each).' }),
    byFinishReason: t.field({ type: [LabelCountRef], resolve: (i) => counts(i.byFinishReason) }),
    promptTokens: t.exposeFloat('promptTokens'),
    completionTokens: t.exposeFloat('completionTokens'),
    timeToFirstTokenMs: t.field({ type: PercentilesRef, resolve: (i) => i.timeToFirstTokenMs }),
    interTokenLatencyMs: t.field({ type: PercentilesRef, resolve: (i) => i.interTokenLatencyMs }),
    queueWaitMs: t.field({ type: PercentilesRef, resolve: (i) => i.queueWaitMs }),
    queueDepth: t.exposeInt('queueDepth'),
    runningBatch: t.exposeInt('runningBatch'),
  }),
});

const MetricsRef = builder.objectRef<MetricsSnapshot>('Metrics').implement({
  description: 'Counters and figures of the server (REST: GET /v1/metrics).',
  fields: (t) => ({
    uptimeS: t.exposeFloat('uptimeS'),
    requests: t.field({ type: RequestMetrics, resolve: (m) => m.requests }),
    errors: t.field({ type: ErrorMetrics, resolve: (m) => m.errors }),
    cache: t.field({ type: CacheMetrics, resolve: (m) => m.cache }),
    rateLimitRejections: t.float({ resolve: (m) => m.rateLimit.rejections }),
    inference: t.field({ type: InferenceMetrics, resolve: (m) => m.inference }),
    modelLoadSeconds: t.float({ nullable: true, resolve: (m) => m.model.loadSeconds }),
    percentileWindow: t.exposeInt('percentileWindow', { description: 'Most recent samples each percentile is computed from.' }),
  }),
});

builder.queryField('metrics', (t) =>
  t.field({ type: MetricsRef, resolve: (_root, _args, { services }) => services.metrics.snapshot() }),
);
