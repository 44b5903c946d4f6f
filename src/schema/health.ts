import { builder } from './builder.js';
import type { HealthReport } from '../services/health.js';
import { DATABASE_PROBE_MS, type DatabaseReport } from '../services/datasets/service.js';
import type { ModelState } from '../services/model-host.js';
import type { RedisState } from '../services/redis.js';
import type { ModelInfo } from '../engine/types.js';
import type { EmbeddingStatus } from '../services/embeddings/host.js';
import { enumOfUnion } from './enums.js';
import { EmbeddingModel } from './embeddings.js';
import { Quantization } from './quantization.js';

const HealthStatus = enumOfUnion<HealthReport['status']>('HealthStatus', {
  description: 'Whether the server can answer.',
  values: {
    ok: 'The model is loaded and everything works.',
    loading: 'The model is still loading.',
    degraded: 'Serving less than fully: the model failed to load, or Redis is unreachable (see reason).',
  },
});

const RedisStateRef = enumOfUnion<RedisState>('RedisState', {
  description: 'The connection to the shared Redis (rate limits, response cache).',
  values: {
    connecting: 'Not connected yet.',
    ok: 'Connected.',
    unavailable: 'Unreachable: limits are per process and the cache is off until it is back.',
  },
});

const DatabaseKind = enumOfUnion<DatabaseReport['kind']>('DatabaseKind', {
  description: 'Which database keeps datasets, evaluations and batch runs.',
  values: {
    sqlite: 'SQLite in DATA_DIR (the embedded default).',
    postgres: 'PostgreSQL at DATABASE_URL.',
  },
});

const DatabaseState = enumOfUnion<DatabaseReport['state']>('DatabaseState', {
  description: 'Whether the database answers.',
  values: {
    ok: `A read answered within ${DATABASE_PROBE_MS} ms.`,
    unavailable: `A read failed or took longer than ${DATABASE_PROBE_MS} ms (reason says which).`,
  },
});

const DatabaseHealth = builder.objectRef<DatabaseReport>('DatabaseHealth').implement({
  description: 'The database, checked with one small read when asked.',
  fields: (t) => ({
    kind: t.field({ type: DatabaseKind, description: 'Which database it is.', resolve: (d) => d.kind }),
    state: t.field({ type: DatabaseState, description: 'Whether it answered.', resolve: (d) => d.state }),
    latencyMs: t.exposeFloat('latencyMs', { nullable: true, description: 'Milliseconds the read took; null when it did not answer.' }),
    reason: t.exposeString('reason', { nullable: true, description: 'Why it is unavailable; null when it answered.' }),
  }),
});

const Health = builder.objectRef<HealthReport>('Health').implement({
  description: 'Server and model status (REST: GET /v1/health).',
  fields: (t) => ({
    status: t.field({ type: HealthStatus, description: 'Whether the server can answer.', resolve: (h) => h.status }),
    model: t.exposeString('model', { description: 'The served model.' }),
    quantization: t.field({
      type: Quantization,
      nullable: true,
      description: "How the served model's weights are quantized; null: fp32 (or not loaded yet).",
      resolve: (h) => h.quantization,
    }),
    device: t.exposeString('device', { description: 'Where the model runs (cpu).' }),
    modelLoaded: t.exposeBoolean('modelLoaded', { description: 'Whether the model is loaded.' }),
    uptimeS: t.exposeFloat('uptimeS', { description: 'Seconds since the server started.' }),
    version: t.exposeString('version', { description: "The server's version." }),
    reason: t.exposeString('reason', { nullable: true, description: 'Why the status is not OK, if it is not.' }),
    queueDepth: t.exposeInt('queueDepth', { description: 'Requests waiting to join the running batch.' }),
    runningBatch: t.exposeInt('runningBatch', { description: 'Sequences in the running batch.' }),
    redis: t.field({
      type: RedisStateRef,
      nullable: true,
      description: 'The shared Redis when REDIS_URL is set, else null.',
      resolve: (h) => h.redis,
    }),
    embedding: t.field({ type: EmbeddingModel, description: 'The embedding model: source, dimensions, state.', resolve: (h) => h.embedding }),
    database: t.field({
      type: DatabaseHealth,
      description: 'The database (SQLite or PostgreSQL), checked with one small read.',
      resolve: (_h, _a, { services }) => services.datasets.database(),
    }),
  }),
});

interface ModelView extends Partial<ModelInfo> {
  name: string;
  state: ModelState;
  loadSeconds: number | null;
  embedding: EmbeddingStatus;
}

const ModelStateRef = enumOfUnion<ModelState>('ModelState', {
  description: "The model's life.",
  values: {
    loading: 'Loading: generation answers service_unavailable until it is ready.',
    ready: 'Loaded and generating.',
    failed: 'Loading failed (health.reason says why).',
  },
});

const ModelGraph = enumOfUnion<ModelInfo['graph']>('ModelGraph', {
  description: 'Which ONNX graph runs the model.',
  values: {
    fused: "This project's graph with ONNX Runtime's fused operators (in-place KV cache).",
    plain: 'The plain transformers.js decoder graph.',
  },
});

const Model = builder.objectRef<ModelView>('Model').implement({
  description: 'The served model; its facts are null until it is loaded.',
  fields: (t) => ({
    name: t.exposeString('name', { description: 'The model name.' }),
    state: t.field({ type: ModelStateRef, description: 'Loading, ready or failed.', resolve: (m) => m.state }),
    architecture: t.string({ nullable: true, description: 'The architecture (llama, gpt2, …).', resolve: (m) => m.architecture ?? null }),
    contextWindow: t.int({ nullable: true, description: 'Tokens of context it can attend to.', resolve: (m) => m.contextWindow ?? null }),
    attentionHeads: t.int({ nullable: true, description: 'Attention (query) heads per layer.', resolve: (m) => m.attentionHeads ?? null }),
    kvHeads: t.int({ nullable: true, description: 'Key/value heads per layer (fewer than attentionHeads with grouped-query attention).', resolve: (m) => m.kvHeads ?? null }),
    hiddenSize: t.int({ nullable: true, description: 'The hidden size.', resolve: (m) => m.hiddenSize ?? null }),
    layers: t.int({ nullable: true, description: 'Transformer layers.', resolve: (m) => m.layers ?? null }),
    vocabSize: t.int({ nullable: true, description: 'Tokens in the vocabulary.', resolve: (m) => m.vocabSize ?? null }),
    source: t.string({ nullable: true, description: 'Where it was loaded from.', resolve: (m) => m.source ?? null }),
    graph: t.field({ type: ModelGraph, nullable: true, description: 'Which graph runs it.', resolve: (m) => m.graph ?? null }),
    quantization: t.field({
      type: Quantization,
      nullable: true,
      description: 'How the running graph\'s weights are quantized (int8/int4 MatMulNBits); null: fp32, or not loaded yet.',
      resolve: (m) => m.quantization ?? null,
    }),
    loadSeconds: t.float({ nullable: true, description: 'Seconds loading took; null until loaded.', resolve: (m) => m.loadSeconds }),
    embedding: t.field({
      type: EmbeddingModel,
      description: 'The model that serves embeddings (an encoder, or this model mean-pooled): source, dimensions, state.',
      resolve: (m) => m.embedding,
    }),
  }),
});

builder.queryField('health', (t) =>
  t.field({
    type: Health,
    description: 'Server and model status (REST: GET /v1/health).',
    resolve: (_root, _args, { services }) => services.health.report(),
  }),
);

builder.queryField('model', (t) =>
  t.field({
    type: Model,
    description: 'The served model and its shape.',
    resolve: (_root, _args, { services }) => {
      const host = services.host;
      return {
        ...host.engine?.info,
        name: host.modelName,
        state: host.state,
        loadSeconds: host.loadSeconds ?? null,
        embedding: services.embeddingHost.status(),
      };
    },
  }),
);
