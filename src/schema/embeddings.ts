import { EmbeddingsRequestSchema, MAX_EMBEDDING_INPUTS } from '../services/embeddings-schema.js';
import type { EmbeddingState, EmbeddingStatus } from '../services/embeddings/host.js';
import { float32Base64, type EmbeddingsResult } from '../services/embeddings/service.js';
import type { EmbeddingSourceKind } from '../services/embeddings/types.js';
import { builder } from './builder.js';
import { fieldDocs } from './describe.js';
import { enumOfUnion } from './enums.js';
import { parseGraphQLInput } from './input.js';

const EmbeddingSource = enumOfUnion<EmbeddingSourceKind>('EmbeddingSource', {
  description: 'Where the embedding model came from, in the order the server tries them.',
  values: {
    path: 'EMBEDDING_MODEL_PATH: a local encoder directory.',
    hub: 'EMBEDDING_MODEL: a hub encoder, downloaded and cached.',
    decoder: "Neither reachable: the served decoder's final hidden states, mean-pooled (model `<name>:mean-pool`).",
  },
});

const EmbeddingStateRef = enumOfUnion<EmbeddingState>('EmbeddingState', {
  description: "The embedding model's life.",
  values: {
    loading: 'Loading: embeddings answer service_unavailable until it is ready.',
    ready: 'Loaded and embedding.',
    failed: 'No source could be loaded (reason says why).',
  },
});

/** The embedding model in Health and Model. */
export const EmbeddingModel = builder.objectRef<EmbeddingStatus>('EmbeddingModel').implement({
  description: 'The embedding model: which source is live, its dimensions and its state (REST: `embedding` in GET /v1/health).',
  fields: (t) => ({
    state: t.field({ type: EmbeddingStateRef, description: 'Loading, ready or failed.', resolve: (e) => e.state }),
    model: t.exposeString('model', { nullable: true, description: 'The model name requests may give as `model`; null until loaded.' }),
    source: t.field({ type: EmbeddingSource, nullable: true, description: 'Where it came from; null until loaded.', resolve: (e) => e.source }),
    dimensions: t.exposeInt('dimensions', { nullable: true, description: 'Length of every vector; null until loaded.' }),
    maxTokens: t.exposeInt('maxTokens', { nullable: true, description: 'Most tokens one input may have (special tokens included); null until loaded.' }),
    reason: t.exposeString('reason', { nullable: true, description: 'Why it failed to load, if it did.' }),
    queueDepth: t.exposeInt('queueDepth', { description: 'Inputs waiting for the model now.' }),
    loadSeconds: t.exposeFloat('loadSeconds', { nullable: true, description: 'Seconds finding and loading it took; null until loaded.' }),
  }),
});

const docs = fieldDocs(EmbeddingsRequestSchema);

const EmbedInput = builder.inputType('EmbedInput', {
  description: 'An embeddings request (REST: POST /v1/embeddings). Omitted fields take the REST defaults.',
  fields: (t) => ({
    input: t.stringList({
      required: true,
      description: `The texts, 1..${MAX_EMBEDDING_INPUTS}, each not blank and within the model's maxTokens (unless truncate). Errors name one as input[3].`,
    }),
    model: t.string({ description: docs('model', "The embedding model's name or an alias (its hub id, the decoder's name); not_found if it names another") }),
    normalize: t.boolean({ description: docs('normalize', 'Scale each vector to length 1 (L2), as sentence-transformers models expect') }),
    truncate: t.boolean({ description: docs('truncate', "Cut inputs longer than the model's maxTokens instead of refusing them") }),
    dimensions: t.int({ description: docs('dimensions', "OpenAI's vector length option; only the model's own dimensions is accepted") }),
  }),
});

type EmbeddingItem = EmbeddingsResult['data'][number];

const Embedding = builder.objectRef<EmbeddingItem>('Embedding').implement({
  description: 'The vector of one input.',
  fields: (t) => ({
    index: t.exposeInt('index', { description: 'Position of its input in the request (0-based).' }),
    embedding: t.floatList({ description: 'The vector.', resolve: (e) => Array.from(e.embedding) }),
    embeddingBase64: t.string({
      description: "The same vector as little-endian float32 bytes in base64 (REST's encoding_format: base64): a quarter of the size.",
      resolve: (e) => float32Base64(e.embedding),
    }),
  }),
});

const EmbeddingUsage = builder.objectRef<EmbeddingsResult['usage']>('EmbeddingUsage').implement({
  description: 'Tokens the model read for the request.',
  fields: (t) => ({
    promptTokens: t.exposeInt('promptTokens', { description: "Tokens read, special tokens included, after truncation (OpenAI's name)." }),
    inputTokens: t.exposeInt('inputTokens', { description: "The same count (the contract's name)." }),
    totalTokens: t.exposeInt('totalTokens', { description: 'The same count: embeddings generate nothing.' }),
  }),
});

const EmbeddingResult = builder.objectRef<EmbeddingsResult>('EmbeddingResult').implement({
  description: 'Vectors for the inputs of an embeddings request (the REST response in camelCase).',
  fields: (t) => ({
    data: t.field({ type: [Embedding], description: 'One vector per input, in input order.', resolve: (r) => r.data }),
    model: t.exposeString('model', { description: 'The model that made them.' }),
    usage: t.field({ type: EmbeddingUsage, description: 'Tokens read.', resolve: (r) => r.usage }),
    requestId: t.exposeString('requestId', { description: "The request's id (also in the x-request-id header)." }),
  }),
});

// A query: embedding reads and changes nothing, and the same input gives the same vectors.
builder.queryField('embed', (t) =>
  t.field({
    type: EmbeddingResult,
    description: "Embeds texts with the server's embedding model (REST: POST /v1/embeddings), batched with other clients' texts.",
    args: { input: t.arg({ type: EmbedInput, required: true, description: 'The request.' }) },
    resolve: (_root, { input }, { ctx, services }) => services.embeddings.create(parseGraphQLInput(EmbeddingsRequestSchema, input), ctx),
  }),
);
