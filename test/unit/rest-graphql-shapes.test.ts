import { getNamedType, getNullableType, isListType, isObjectType, type GraphQLObjectType } from 'graphql';
import { describe, expect, it } from 'vitest';
import type { MetricsSnapshot } from '../../src/observability/metrics.js';
import { chatJson } from '../../src/rest/chat-routes.js';
import { datasetJson } from '../../src/rest/dataset-routes.js';
import { batchJson, evalRunJson, itemJson, summaryJson } from '../../src/rest/evaluation-routes.js';
import { metricsJson } from '../../src/rest/metrics-routes.js';
import { ragHitJson, ragIndexJson, ragRetrievalJson } from '../../src/rest/rag-routes.js';
import type { RagSearchResult } from '../../src/services/rag/service.js';
import { embeddingsJson } from '../../src/rest/embedding-routes.js';
import { embeddingJson, quantizationJson } from '../../src/rest/health-routes.js';
import { quantizationInfo, QUANTIZE_DEFAULTS } from '../../src/engine/quantize.js';
import type { EmbeddingsResult } from '../../src/services/embeddings/service.js';
import { schema } from '../../src/schema/index.js';
import type { BatchSummary } from '../../src/services/batch-evals.js';
import type { ChatResult } from '../../src/services/chat.js';
import type { RecordError } from '../../src/services/datasets/validate.js';
import { camelCase } from '../../src/services/validation.js';
import type { BatchItem, BatchRun, Dataset, EvalRun, RagIndex, ScoreRecord } from '../../src/storage/types.js';

/**
 * The REST mappers (snake_case) and the GraphQL object types (camelCase) are
 * two hand-written views of the same service objects. Each pair must name the
 * same fields, nested objects included, but for these deliberate differences.
 */
const DIFFERENCES: Record<string, { restOnly?: string[]; graphqlOnly?: string[] }> = {
  // GraphQL reaches the run's result, distribution and failures from the run; REST has a route for each.
  BatchEval: { graphqlOnly: ['result', 'distribution', 'failures'] },
  // GraphQL pages a dataset's records from the dataset (the web console's record view); REST has no records route.
  Dataset: { graphqlOnly: ['records'] },
  // Single figures that REST nests in an object of their own (rate_limit.rejections, model.load_seconds).
  Metrics: { restOnly: ['rateLimit', 'model'], graphqlOnly: ['rateLimitRejections', 'modelLoadSeconds'] },
  // OpenAI's `object` tags; GraphQL offers both encodings of a vector as fields (REST picks one with encoding_format).
  EmbeddingResult: { restOnly: ['object'] },
  Embedding: { restOnly: ['object'], graphqlOnly: ['embeddingBase64'] },
};

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Where the REST object and the GraphQL type disagree, as readable lines. */
function drift(rest: Record<string, unknown>, typeName: string): string[] {
  const type = schema.getType(typeName);
  if (!isObjectType(type)) return [`${typeName} is not a GraphQL object type`];
  const fields = type.getFields();
  const allowed = DIFFERENCES[typeName] ?? {};
  const restKeys = new Map(Object.keys(rest).map((k) => [camelCase(k), k]));
  const out: string[] = [];
  for (const [name, key] of restKeys) {
    if (!fields[name] && !allowed.restOnly?.includes(name)) out.push(`${typeName}: REST ${key} has no GraphQL field ${name}`);
  }
  for (const name of Object.keys(fields)) {
    if (!restKeys.has(name) && !allowed.graphqlOnly?.includes(name)) out.push(`${typeName}: GraphQL ${name} is not in REST`);
  }
  for (const [name, key] of restKeys) {
    const f = fields[name];
    if (!f) continue;
    const named = getNamedType(f.type);
    if (!isObjectType(named)) continue;
    const value = rest[key];
    const list = isListType(getNullableType(f.type));
    // REST's {label: count} maps are GraphQL lists of label/count objects: the names above already matched.
    if (list && Array.isArray(value) && isPlainObject(value[0])) out.push(...drift(value[0], named.name));
    else if (!list && isPlainObject(value)) out.push(...drift(value, (named as GraphQLObjectType).name));
  }
  return out;
}

// Fixtures with every field set (and every optional object present), so every key of each mapper shows.
const score: ScoreRecord = { criterion: 'accuracy', score: null, rationale: 'no reference', evaluatorError: 'no_reference' };
const chat: ChatResult = {
  response: 'hi',
  latencyMs: 1,
  promptTokens: 1,
  completionTokens: 1,
  totalTokens: 2,
  model: 'm',
  requestId: 'r',
  finishReason: 'stop',
  cacheHit: false,
  contextWindow: 512,
  contextUsedPct: 0.4,
  modelType: 'decoder-only',
  attentionMasking: 'causal',
  attentionHeads: 8,
  hiddenSize: 64,
  estimatedAttentionOps: 4,
  outputToInputRatio: 1,
  refined: true,
  originalResponse: 'h',
  critique: 'c',
  refineStepsUsed: 1,
  seed: 1,
  timeToFirstTokenMs: 1,
  interTokenLatencyMs: 1,
  refineUsage: { promptTokens: 1, completionTokens: 1 },
  structured: { type: 'json_schema', complete: true },
};
const run: BatchRun = {
  id: 'be_1',
  datasetId: 'ds_1',
  status: 'completed',
  criteria: ['overall'],
  params: { model: 'm', concurrency: 1, max_new_tokens: 8, temperature: 0, seed: 0, judge: 'deterministic' },
  total: 1,
  completed: 1,
  failed: 0,
  keyId: null,
  error: null,
  createdAt: 't',
  startedAt: 't',
  updatedAt: 't',
  completedAt: 't',
};
const item: BatchItem = {
  batchId: 'be_1',
  index: 0,
  recordId: 'r1',
  status: 'succeeded',
  response: 'x',
  promptTokens: 1,
  completionTokens: 1,
  latencyMs: 1,
  scores: [score],
  passed: false,
  attempts: 1,
  reason: 'below_threshold',
  message: 'm',
  createdAt: 't',
};
const dataset: Dataset = {
  id: 'ds_1',
  name: 'n',
  type: 'eval_set',
  status: 'ready',
  recordCount: 1,
  metadata: { a: 1 },
  error: null,
  createdAt: 't',
  updatedAt: 't',
};
const evalRun: EvalRun = {
  runId: 'ev_1',
  prompt: 'p',
  response: 'r',
  reference: null,
  context: null,
  criteria: ['accuracy'],
  scores: [score],
  judge: 'deterministic',
  model: 'm',
  latencyMs: 1,
  keyId: null,
  createdAt: 't',
};
const summary: BatchSummary = {
  meanScores: { overall: 3 },
  totalItems: 1,
  failedItems: 0,
  passRate: 1,
  passRateCi95Lower: 0.2,
  passRateCi95Upper: 1,
  latencyP50Ms: 1,
  latencyP95Ms: 1,
  totalInputTokens: 1,
  totalOutputTokens: 1,
};
const percentiles = { samples: 1, p50: 1, p95: 1, p99: 1 };
const metrics: MetricsSnapshot = {
  uptimeS: 1,
  requests: {
    total: 1,
    byStatusClass: { '2xx': 1 },
    latencyMs: percentiles,
    routes: [{ route: '/v1/chat', method: 'POST', total: 1, byStatusClass: { '2xx': 1 }, latencyMs: percentiles }],
  },
  errors: { total: 0, byCode: { not_found: 1 } },
  cache: { hits: 0, misses: 0, hitRate: null },
  rateLimit: { rejections: 0 },
  inference: {
    requests: 1,
    byFinishReason: { stop: 1 },
    promptTokens: 1,
    completionTokens: 1,
    timeToFirstTokenMs: percentiles,
    interTokenLatencyMs: percentiles,
    queueWaitMs: percentiles,
    queueDepth: 0,
    runningBatch: 0,
  },
  model: { loadSeconds: 1 },
  embeddings: { requests: 1, inputs: 2, tokens: 3, batches: 1, batchSize: percentiles, queueDepth: 0 },
  percentileWindow: 1000,
};
const embeddings: EmbeddingsResult = {
  data: [{ index: 0, embedding: Float32Array.of(0.5, 0.5) }],
  model: 'm',
  usage: { promptTokens: 1, inputTokens: 1, totalTokens: 1 },
  encodingFormat: 'float',
  requestId: 'r',
};
const embeddingStatus = { state: 'ready' as const, model: 'm', source: 'path' as const, dimensions: 2, maxTokens: 8, reason: null, queueDepth: 0, loadSeconds: 1 };
// REST sends record errors as the service makes them (already snake_case).
const recordError: RecordError = { index: 1, record_id: 'z', code: 'missing_required_field', message: 'm', path: 'input', severity: 'error' };
const ragIndex: RagIndex = {
  id: 'ri_1',
  datasetId: 'ds_1',
  status: 'ready',
  options: { chunk_tokens: 256, chunk_overlap: 32 },
  embeddingModel: 'm',
  embeddingDimensions: 384,
  documentsTotal: 2,
  documentsIndexed: 1,
  documentsFailed: 1,
  chunkCount: 3,
  fusion: { lexical: 1, dense: 0.5, queries: 64, lexicalMrr: 0.9, denseMrr: 0.45 },
  error: null,
  createdAt: 't',
  startedAt: 't',
  updatedAt: 't',
  completedAt: 't',
};
const ragSearch: RagSearchResult = {
  index: ragIndex,
  mode: 'hybrid',
  topK: 5,
  latencyMs: 1,
  embeddingMs: 1,
  candidates: { lexical: 1, dense: 1 },
  denseMethod: 'exact',
  results: [
    {
      chunk: { key: 1, indexId: 'ri_1', chunkId: 'ch_1', docIndex: 0, docId: 'd', ordinal: 0, start: 0, end: 4, tokens: 1, text: 'text', metadata: { a: 1 } },
      score: 0.03,
      lexicalRank: 1,
      denseRank: null,
    },
  ],
};

describe('REST and GraphQL name the same output fields', () => {
  it.each([
    ['chatJson', 'ChatResult', chatJson(chat)],
    ['batchJson', 'BatchEval', batchJson(run)],
    ['itemJson', 'BatchItem', itemJson(item)],
    ['summaryJson', 'BatchSummary', summaryJson(summary)],
    ['evalRunJson', 'EvalRun', evalRunJson(evalRun)],
    ['datasetJson', 'Dataset', datasetJson(dataset)],
    ['metricsJson', 'Metrics', metricsJson(metrics)],
    ['embeddingsJson', 'EmbeddingResult', embeddingsJson(embeddings)],
    ['embeddingJson (health)', 'EmbeddingModel', embeddingJson(embeddingStatus)],
    ['quantizationJson (health, models)', 'Quantization', quantizationJson(quantizationInfo(QUANTIZE_DEFAULTS.int8))!],
    ['record errors', 'RecordError', recordError],
    ['ragIndexJson', 'RagIndex', ragIndexJson(ragIndex)],
    ['rag search', 'RagSearchResult', { results: ragSearch.results.map(ragHitJson), retrieval: ragRetrievalJson(ragSearch) }],
  ] as const)('%s ↔ %s', (_name, type, rest) => {
    expect(drift(rest as Record<string, unknown>, type)).toEqual([]);
  });

  it('notices a field missing on one side', () => {
    expect(drift({ ...itemJson(item), extra_field: 1 }, 'BatchItem')).toEqual(['BatchItem: REST extra_field has no GraphQL field extraField']);
    const { attempts: _dropped, ...lessItem } = itemJson(item);
    expect(drift(lessItem, 'BatchItem')).toEqual(['BatchItem: GraphQL attempts is not in REST']);
  });
});
