import { ModelNotLoadedError } from '../../engine/errors.js';
import type { BatchingEmbedder } from './batcher.js';
import type { EmbeddingInfo, EmbeddingSourceKind } from './types.js';

export type EmbeddingState = 'loading' | 'ready' | 'failed';

/** The embedding model as /v1/health and GraphQL report it. */
export interface EmbeddingStatus {
  state: EmbeddingState;
  /** Null until a source is live. */
  model: string | null;
  source: EmbeddingSourceKind | null;
  dimensions: number | null;
  maxTokens: number | null;
  /** Why it failed to load, when it did. */
  reason: string | null;
  /** Inputs waiting for the encoder. */
  queueDepth: number;
  loadSeconds: number | null;
}

/**
 * Holds the embedding model through its life, like ModelHost for the decoder:
 * loading (sources are tried in order at start-up while the server already
 * listens), then ready or failed. Calls that need it get 503 until it is ready.
 */
export class EmbeddingHost {
  private embedder: BatchingEmbedder | undefined;
  private stateValue: EmbeddingState = 'loading';
  private reasonValue: string | undefined;
  private aliasSet = new Set<string>();
  private loadSecondsValue: number | undefined;
  /** When the model became ready (epoch ms). */
  readyAt: number | undefined;
  private readonly settled: Promise<BatchingEmbedder>;
  private settle!: { resolve(e: BatchingEmbedder): void; reject(err: unknown): void };

  constructor() {
    this.settled = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    // Nobody may be waiting when a load fails; that is not an unhandled rejection.
    this.settled.catch(() => {});
  }

  get state(): EmbeddingState {
    return this.stateValue;
  }

  get queueDepth(): number {
    return this.embedder?.queueDepth ?? 0;
  }

  /** `aliases`: other names a request's `model` may give for it (its hub id, its directory, the decoder's own name). */
  ready(embedder: BatchingEmbedder, aliases: readonly string[], loadSeconds: number): void {
    this.embedder = embedder;
    // `default`, as the OpenAI-compatible routes take it for the served model.
    this.aliasSet = new Set([embedder.info.model, 'default', ...aliases]);
    this.loadSecondsValue = loadSeconds;
    this.readyAt = Date.now();
    this.stateValue = 'ready';
    this.settle.resolve(embedder);
  }

  failed(reason: string): void {
    this.stateValue = 'failed';
    this.reasonValue = reason;
    this.settle.reject(new ModelNotLoadedError('failed', reason, 'embedding model'));
  }

  /** The embedder, or ModelNotLoadedError (503) while loading or after a failed load. */
  require(): BatchingEmbedder {
    if (this.embedder) return this.embedder;
    throw new ModelNotLoadedError(this.stateValue === 'failed' ? 'failed' : 'loading', this.reasonValue, 'embedding model');
  }

  /** Resolves once the model is ready (at once if it is); rejects with ModelNotLoadedError if its load fails. */
  whenReady(): Promise<BatchingEmbedder> {
    return this.settled;
  }

  /** Whether `name` names the live embedding model. */
  answersTo(name: string): boolean {
    return this.aliasSet.has(name);
  }

  status(): EmbeddingStatus {
    const info: EmbeddingInfo | undefined = this.embedder?.info;
    return {
      state: this.stateValue,
      model: info?.model ?? null,
      source: info?.source ?? null,
      dimensions: info?.dimensions ?? null,
      maxTokens: info?.maxTokens ?? null,
      reason: this.reasonValue ?? null,
      queueDepth: this.queueDepth,
      loadSeconds: this.loadSecondsValue ?? null,
    };
  }

  async close(): Promise<void> {
    await this.embedder?.close();
  }
}
