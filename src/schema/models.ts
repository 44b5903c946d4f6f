import { listModels, type ServedModel, type ServedModelKind } from '../services/models.js';
import { builder } from './builder.js';
import { enumOfUnion } from './enums.js';
import { Quantization } from './quantization.js';

const ServedModelKindRef = enumOfUnion<ServedModelKind>('ServedModelKind', {
  description: 'What a listed model answers.',
  values: {
    chat: 'Generates text: chat, chatStream, evaluations (REST /v1/chat, /v1/chat/completions, /v1/completions).',
    embedding: 'Embeds text: embed (REST /v1/embeddings) and RAG indexes.',
  },
});

const ServedModelRef = builder.objectRef<ServedModel>('ServedModel').implement({
  description: 'A model this server answers with (REST: GET /v1/models, in OpenAI\'s shape).',
  fields: (t) => ({
    id: t.exposeString('id', { description: 'The name requests give as `model`.' }),
    kind: t.field({ type: ServedModelKindRef, description: 'Chat (generation) or embedding.', resolve: (m) => m.kind }),
    created: t.exposeInt('created', { nullable: true, description: 'When it became ready, in Unix seconds (OpenAI\'s `created`); null while it loads.' }),
    ownedBy: t.exposeString('ownedBy', { description: "Who it is listed as belonging to (OpenAI's `owned_by`)." }),
    contextWindow: t.exposeInt('contextWindow', {
      nullable: true,
      description: 'Tokens of context (chat), or the most tokens one input may have (embedding); null while it loads.',
    }),
    dimensions: t.exposeInt('dimensions', { nullable: true, description: 'Length of its vectors (embedding models); null for the chat model.' }),
    quantization: t.field({
      type: Quantization,
      nullable: true,
      description: "How the chat model's weights are quantized; null: fp32 (always null for the embedding model).",
      resolve: (m) => m.quantization,
    }),
  }),
});

builder.queryField('models', (t) =>
  t.field({
    type: [ServedModelRef],
    description: 'The served chat model first, then the embedding model once it is loaded (REST: GET /v1/models).',
    resolve: (_root, _args, { services }) => listModels(services.host, services.embeddingHost),
  }),
);
