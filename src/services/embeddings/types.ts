/**
 * What the rest of the server needs of an embedding model, whatever its
 * source (a local encoder directory, a hub encoder, or the served decoder's
 * own hidden states). Implemented by the embedding service; used by
 * /v1/embeddings, GraphQL `embed`, and RAG (chunking, index builds, queries).
 */

/** Where the live embedding model came from (EMBEDDING_MODEL_PATH, EMBEDDING_MODEL, or the decoder fallback). */
export type EmbeddingSourceKind = 'path' | 'hub' | 'decoder';

export interface EmbeddingInfo {
  /** Model name reported to clients (`<decoder name>:mean-pool` for the decoder fallback). */
  model: string;
  source: EmbeddingSourceKind;
  /** Length of every vector. */
  dimensions: number;
  /** Most tokens one input may have (special tokens included). */
  maxTokens: number;
}

export interface EmbedOptions {
  /** L2-normalise each vector (default true). */
  normalize?: boolean;
  /** Cut inputs longer than maxTokens instead of refusing them (default false). */
  truncate?: boolean;
  signal?: AbortSignal;
}

export interface EmbedResult {
  /** One vector per input, in input order. */
  vectors: Float32Array[];
  /** Tokens the model read for each input (after truncation). */
  tokens: number[];
}

export interface Embedder {
  readonly info: EmbeddingInfo;
  /** Tokens the model would read for this text, special tokens included, before any truncation. */
  countTokens(text: string): number;
  /**
   * Vectors for `texts`, batched with other concurrent callers' texts into
   * shared encoder runs. Rejects (typed errors) when an input is too long and
   * truncate is off, or when the queue is full.
   */
  embed(texts: readonly string[], opts?: EmbedOptions): Promise<EmbedResult>;
}
