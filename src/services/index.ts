import type { Storage } from '../storage/types.js';
import { Authenticator } from './auth.js';
import { BatchEvalService, type BatchDispatch } from './batch-evals.js';
import { ChatService } from './chat.js';
import { ChatCache } from './chat-cache.js';
import { CompletionService } from './completions.js';
import { DatasetService } from './datasets/service.js';
import type { EmbeddingHost } from './embeddings/host.js';
import { EmbeddingService } from './embeddings/service.js';
import { EvaluationService, Scorer } from './evaluation.js';
import { HealthService, type QueueCountsSource } from './health.js';
import type { ModelHost } from './model-host.js';
import { RagAnswerService } from './rag/answers.js';
import { RagService } from './rag/service.js';
import type { BuildDispatch } from './rag/index-builder.js';
import type { ProgressEvents } from './progress-events.js';
import { RateLimiter } from './rate-limit.js';
import { SharedRedis } from './redis.js';
import type { Log } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';

/** The service layer both surfaces call. */
export interface Services {
  host: ModelHost;
  auth: Authenticator;
  health: HealthService;
  chat: ChatService;
  /** OpenAI-style completions (n choices, logprobs, chat templates), for the OpenAI-compatible routes. */
  completions: CompletionService;
  datasets: DatasetService;
  evaluations: EvaluationService;
  batchEvals: BatchEvalService;
  /** The embedding model's life (loading, ready, failed) and what health reports of it. */
  embeddingHost: EmbeddingHost;
  /** Embeddings: POST /v1/embeddings, GraphQL `embed`, and the Embedder RAG uses. */
  embeddings: EmbeddingService;
  /** RAG indexes (built when a rag_corpus is uploaded) and retrieval over them. */
  rag: RagService;
  /** Answers from retrieved chunks (POST /v1/rag), generated on the shared engine. */
  ragAnswers: RagAnswerService;
  /** Per-API-key request limits; each surface consumes once per HTTP request. */
  rateLimit: RateLimiter;
  /** The Redis connection limits and cache share (REDIS_URL), else null; close it at shutdown. */
  redis: SharedRedis | null;
  /** Every metric; created once in main.ts. */
  metrics: Metrics;
}

export function buildServices(opts: {
  host: ModelHost;
  /** Loaded by main.ts after listening, like the model. */
  embeddingHost: EmbeddingHost;
  storage: Storage;
  apiKeys: readonly string[];
  version: string;
  log: Log;
  metrics: Metrics;
  /** Limits and cache live in Redis when set, else in process memory. */
  redisUrl?: string | undefined;
  /** Prefix of every Redis key (REDIS_KEY_PREFIX). */
  redisKeyPrefix: string;
  /** 0 or unset: no limits. */
  rateLimitPerMinute?: number;
  /** ttlSeconds 0 or unset: no response cache. */
  chatCache?: { ttlSeconds: number; maxEntries: number };
  /** ROLE=api: batch runs are enqueued here instead of run in this process. */
  batchDispatch?: BatchDispatch | null;
  /** ROLE=api: RAG index builds are prepared here and queued for the workers. */
  ragDispatch?: BuildDispatch | null;
  /** Batch and index progress events (Redis pub/sub in split roles, else in process). */
  progressEvents?: ProgressEvents;
  /** The job queues' counts, for /v1/health (split roles only). */
  queues?: QueueCountsSource | null;
}): Services {
  const scorer = new Scorer(opts.host);
  const redis = opts.redisUrl ? new SharedRedis(opts.redisUrl, opts.log, opts.redisKeyPrefix) : null;
  const rateLimit = new RateLimiter({
    perMinute: opts.rateLimitPerMinute ?? 0,
    redis,
    onReject: () => opts.metrics.rateLimited(),
  });
  const chatCache =
    opts.chatCache && opts.chatCache.ttlSeconds > 0
      ? new ChatCache({
          ...opts.chatCache,
          redis,
          onLookup: (hit) => (hit ? opts.metrics.cacheHit() : opts.metrics.cacheMiss()),
        })
      : null;
  // Index builds embed through the embedding host's batcher, beside live /v1/embeddings traffic.
  const rag = new RagService(opts.storage, opts.embeddingHost, opts.log, {
    dispatch: opts.ragDispatch ?? null,
    ...(opts.progressEvents ? { events: opts.progressEvents } : {}),
  });
  return {
    host: opts.host,
    auth: new Authenticator(opts.apiKeys),
    health: new HealthService(opts.host, opts.version, redis, opts.embeddingHost, opts.queues ?? null),
    chat: new ChatService(opts.host, opts.log, chatCache),
    completions: new CompletionService(opts.host, opts.log, chatCache),
    datasets: new DatasetService(opts.storage, rag),
    evaluations: new EvaluationService(opts.storage, scorer, opts.host),
    batchEvals: new BatchEvalService(opts.storage, opts.host, scorer, opts.log, opts.batchDispatch ?? null, opts.progressEvents),
    embeddingHost: opts.embeddingHost,
    embeddings: new EmbeddingService(opts.embeddingHost),
    rag,
    ragAnswers: new RagAnswerService(rag, opts.host, opts.log),
    metrics: opts.metrics,
    rateLimit,
    redis,
  };
}
