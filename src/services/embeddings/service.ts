import { invalidRequest, notFound } from '../../errors.js';
import { InputTooLongError } from '../../engine/errors.js';
import type { RequestContext } from '../context.js';
import type { EmbeddingsRequest, EncodingFormat } from '../embeddings-schema.js';
import type { EmbeddingHost } from './host.js';
import type { EmbedOptions, EmbedResult, Embedder, EmbeddingInfo } from './types.js';

/** The embeddings result of contract section 3, in camelCase; each surface shapes it. */
export interface EmbeddingsResult {
  /** One vector per input, in input order. */
  data: Array<{ index: number; embedding: Float32Array }>;
  model: string;
  /** Tokens read: prompt (OpenAI's name) and input (the contract's) are the same count. */
  usage: { promptTokens: number; inputTokens: number; totalTokens: number };
  /** How REST sends the vectors: JSON numbers, or base64 of little-endian float32 (OpenAI's `base64`). */
  encodingFormat: EncodingFormat;
  requestId: string;
}

/** A vector as OpenAI's `encoding_format: "base64"` sends it: its float32 bytes, little-endian, in base64. */
export function float32Base64(v: Float32Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
}

/**
 * Embeddings for both surfaces and for the rest of the server (RAG): an
 * Embedder over whichever model the EmbeddingHost holds (503 while it loads),
 * plus the request-level call behind POST /v1/embeddings and GraphQL `embed`.
 */
export class EmbeddingService implements Embedder {
  constructor(private readonly host: EmbeddingHost) {}

  /** The live model (ModelNotLoadedError, 503, until it is loaded). */
  get info(): EmbeddingInfo {
    return this.host.require().info;
  }

  countTokens(text: string): number {
    return this.host.require().countTokens(text);
  }

  embed(texts: readonly string[], opts?: EmbedOptions): Promise<EmbedResult> {
    return this.host.require().embed(texts, opts);
  }

  /** Answers one embeddings request (contract section 3). */
  async create(req: EmbeddingsRequest, ctx: RequestContext): Promise<EmbeddingsResult> {
    const embedder = this.host.require();
    const info = embedder.info;
    if (req.model != null && !this.host.answersTo(req.model)) {
      throw notFound(`model "${req.model}" is not served here; the embedding model is "${info.model}"`, { field: 'model', model: info.model });
    }
    // OpenAI's `dimensions` shortens vectors of models trained for it; ours give their full length only.
    if (req.dimensions != null && req.dimensions !== info.dimensions) {
      throw invalidRequest(`dimensions must be ${info.dimensions}: ${info.model} makes ${info.dimensions}-dimensional vectors and cannot shorten them`, {
        field: 'dimensions',
      });
    }
    const single = typeof req.input === 'string';
    const texts = typeof req.input === 'string' ? [req.input] : req.input;
    let result: EmbedResult;
    try {
      result = await embedder.embed(texts, { normalize: req.normalize, truncate: req.truncate, signal: ctx.signal });
    } catch (err) {
      // A single string is `input`, not `input[0]`.
      if (single && err instanceof InputTooLongError) throw new InputTooLongError(null, err.inputTokens, err.maxTokens);
      throw err;
    }
    const tokens = result.tokens.reduce((a, b) => a + b, 0);
    ctx.usage = { promptTokens: tokens, completionTokens: 0, cacheHit: false };
    return {
      data: result.vectors.map((embedding, index) => ({ index, embedding })),
      model: info.model,
      usage: { promptTokens: tokens, inputTokens: tokens, totalTokens: tokens },
      encodingFormat: req.encoding_format,
      requestId: ctx.requestId,
    };
  }
}
