import { builder } from './builder.js';
import type { HealthReport } from '../services/health.js';
import type { ModelInfo } from '../engine/types.js';

const Health = builder.objectRef<HealthReport>('Health').implement({
  description: 'Server and model status (REST: GET /v1/health).',
  fields: (t) => ({
    status: t.exposeString('status', { description: 'ok, loading or degraded' }),
    model: t.exposeString('model'),
    device: t.exposeString('device'),
    modelLoaded: t.exposeBoolean('modelLoaded'),
    uptimeS: t.exposeFloat('uptimeS'),
    version: t.exposeString('version'),
    reason: t.exposeString('reason', { nullable: true, description: 'Why the model is not loaded, if it failed.' }),
    queueDepth: t.exposeInt('queueDepth', { description: 'Requests waiting to join the running batch.' }),
    runningBatch: t.exposeInt('runningBatch', { description: 'Sequences in the running batch.' }),
    redis: t.exposeString('redis', {
      nullable: true,
      description: 'connecting, ok or unavailable when REDIS_URL is set (limits and cache), else null.',
    }),
  }),
});

interface ModelView extends Partial<ModelInfo> {
  name: string;
  state: string;
  loadSeconds: number | null;
}

const Model = builder.objectRef<ModelView>('Model').implement({
  description: 'The served model.',
  fields: (t) => ({
    name: t.exposeString('name'),
    state: t.exposeString('state', { description: 'loading, ready or failed' }),
    architecture: t.string({ nullable: true, resolve: (m) => m.architecture ?? null }),
    contextWindow: t.int({ nullable: true, resolve: (m) => m.contextWindow ?? null }),
    attentionHeads: t.int({ nullable: true, resolve: (m) => m.attentionHeads ?? null }),
    kvHeads: t.int({ nullable: true, resolve: (m) => m.kvHeads ?? null }),
    hiddenSize: t.int({ nullable: true, resolve: (m) => m.hiddenSize ?? null }),
    layers: t.int({ nullable: true, resolve: (m) => m.layers ?? null }),
    vocabSize: t.int({ nullable: true, resolve: (m) => m.vocabSize ?? null }),
    source: t.string({ nullable: true, resolve: (m) => m.source ?? null }),
    graph: t.string({ nullable: true, description: 'fused or plain', resolve: (m) => m.graph ?? null }),
    loadSeconds: t.float({ nullable: true, resolve: (m) => m.loadSeconds }),
  }),
});

builder.queryField('health', (t) =>
  t.field({ type: Health, resolve: (_root, _args, { services }) => services.health.report() }),
);

builder.queryField('model', (t) =>
  t.field({
    type: Model,
    resolve: (_root, _args, { services }) => {
      const host = services.host;
      return {
        ...host.engine?.info,
        name: host.modelName,
        state: host.state,
        loadSeconds: host.loadSeconds ?? null,
      };
    },
  }),
);
