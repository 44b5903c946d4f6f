import type { QuantizationInfo } from '../engine/quantize.js';
import type { EmbeddingHost } from './embeddings/host.js';
import type { ModelHost } from './model-host.js';

/** Who the models are listed as belonging to (OpenAI's `owned_by`). */
export const MODEL_OWNER = 'inference-server';

export type ServedModelKind = 'chat' | 'embedding';

/** A model this server answers with, as GET /v1/models and GraphQL `models` list it. */
export interface ServedModel {
  /** The name requests give as `model`. */
  id: string;
  kind: ServedModelKind;
  /** When it became ready (Unix seconds); null while it loads. */
  created: number | null;
  ownedBy: string;
  /** Tokens of context (chat) or of one input (embedding); null while it loads. */
  contextWindow: number | null;
  /** Length of its vectors (embedding models); null for the chat model. */
  dimensions: number | null;
  /** How the chat model's weights are quantized; null: fp32 (and for the embedding model). */
  quantization: QuantizationInfo | null;
}

const seconds = (ms: number | undefined) => (ms === undefined ? null : Math.floor(ms / 1000));

/**
 * The served chat model first, then the embedding model once one is live
 * (its name is known only then: an encoder, or the chat model mean-pooled).
 */
export function listModels(host: ModelHost, embeddings: EmbeddingHost): ServedModel[] {
  const out: ServedModel[] = [
    {
      id: host.modelName,
      kind: 'chat',
      created: seconds(host.readyAt),
      ownedBy: MODEL_OWNER,
      contextWindow: host.engine?.info.contextWindow ?? null,
      dimensions: null,
      quantization: host.engine?.info.quantization ?? null,
    },
  ];
  const e = embeddings.status();
  if (e.state === 'ready' && e.model !== null) {
    out.push({ id: e.model, kind: 'embedding', created: seconds(embeddings.readyAt), ownedBy: MODEL_OWNER, contextWindow: e.maxTokens, dimensions: e.dimensions, quantization: null });
  }
  return out;
}
