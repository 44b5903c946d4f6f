import type { QuantizationInfo } from '../engine/quantize.js';
import { serviceUnavailable } from '../errors.js';
import type { EmbeddingHost, EmbeddingStatus } from './embeddings/host.js';
import type { ModelHost } from './model-host.js';
import type { RedisState } from './redis.js';

export interface HealthReport {
  status: 'ok' | 'loading' | 'degraded';
  model: string;
  /** How the served model's weights are quantized; null: fp32, or not loaded yet. */
  quantization: QuantizationInfo | null;
  device: string;
  modelLoaded: boolean;
  uptimeS: number;
  version: string;
  reason: string | null;
  /** Requests waiting to join the running batch. */
  queueDepth: number;
  /** Sequences in the running batch. */
  runningBatch: number;
  /** The shared Redis (limits, cache) when REDIS_URL is set, else null. */
  redis: RedisState | null;
  /** The embedding model: which source is live, its dimensions, its state. */
  embedding: EmbeddingStatus;
}

/** Job counts by queue and state (src/jobs/batch-queue.ts BatchQueue fits it); null when Redis does not answer. */
export interface QueueCountsSource {
  counts(): Promise<Record<string, Record<string, number>> | null>;
}

const NO_EMBEDDINGS: EmbeddingStatus = {
  state: 'failed',
  model: null,
  source: null,
  dimensions: null,
  maxTokens: null,
  reason: 'no embedding model configured',
  queueDepth: 0,
  loadSeconds: null,
};

/** Liveness, readiness and the health report. */
export class HealthService {
  private readonly startedAt = Date.now();
  private draining = false;

  constructor(
    private readonly host: ModelHost,
    private readonly version: string,
    private readonly redis?: { readonly state: RedisState } | null,
    private readonly embeddings?: EmbeddingHost,
    private readonly queueSource: QueueCountsSource | null = null,
  ) {}

  /**
   * The job queues for /v1/health: counts by queue and state; 'unavailable'
   * when Redis does not answer; null when this process uses no queue (ROLE=all).
   */
  async queues(): Promise<Record<string, Record<string, number>> | 'unavailable' | null> {
    if (!this.queueSource) return null;
    return (await this.queueSource.counts().catch(() => null)) ?? 'unavailable';
  }

  report(): HealthReport {
    const state = this.host.state;
    // Redis away: the server still serves (fail open), but limits are per process and the cache misses.
    const redis = this.redis?.state ?? null;
    const redisDown = redis === 'unavailable';
    // Embeddings still loading leave the status alone (chat serves meanwhile); embeddings that failed degrade it.
    const embedding = this.embeddings?.status() ?? NO_EMBEDDINGS;
    const embeddingDown = this.embeddings !== undefined && embedding.state === 'failed';
    return {
      status: state === 'loading' ? 'loading' : state === 'ready' && !redisDown && !embeddingDown ? 'ok' : 'degraded',
      model: this.host.modelName,
      quantization: this.host.engine?.info.quantization ?? null,
      device: 'cpu',
      modelLoaded: state === 'ready',
      uptimeS: Math.round((Date.now() - this.startedAt) / 100) / 10,
      version: this.version,
      reason:
        this.host.reason ??
        (redisDown ? 'redis unavailable: rate limits per process, response cache off' : null) ??
        (embeddingDown ? `embeddings unavailable: ${embedding.reason}` : null),
      queueDepth: this.host.engine?.load.waiting ?? 0,
      runningBatch: this.host.engine?.load.running ?? 0,
      redis,
      embedding,
    };
  }

  /** From now on the server is going away: readiness fails so balancers send no new work. */
  drain(): void {
    this.draining = true;
  }

  /** Throws 503 unless the model can generate and the server is not shutting down. */
  assertReady(): void {
    if (this.draining) throw serviceUnavailable('Server is shutting down', { state: 'draining' });
    this.host.require();
  }
}
