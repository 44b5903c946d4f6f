import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { QUANTIZE_MODES, type QuantizeMode } from './engine/quantize.js';
import type { HttpLimits } from './http/server-limits.js';
import type { OperationLimits } from './schema/plugins/operation-limits.js';

/**
 * The only reader of process.env. Everything configurable is declared here,
 * validated once at start-up, and passed down as a plain object.
 */
const intFrom = (def: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(def);

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const ConfigSchema = z.object({
  PORT: intFrom(8000, 0, 65535),
  // all: one process serves HTTP and runs long work (the default); api: HTTP, long work to the queue; worker: consumes the queue.
  ROLE: z.enum(['all', 'api', 'worker']).default('all'),
  // A worker serves only /healthz, /readyz and /metrics, here.
  WORKER_PORT: intFrom(9100, 0, 65535),
  // How long a worker's hold on a job lasts without renewal; a killed worker's jobs are taken up again after about this long.
  JOB_LOCK_SECONDS: intFrom(30, 1, 3600),
  // Tries per queued job (BullMQ attempts, exponential backoff from JOB_BACKOFF_MS).
  JOB_ATTEMPTS: intFrom(3, 1, 100),
  JOB_BACKOFF_MS: intFrom(200, 0, 600_000),
  HOST: z.string().default('0.0.0.0'),
  MODEL_PATH: optionalString,
  TOKENIZER_PATH: optionalString,
  MODEL_NAME: z.string().default('Xenova/distilgpt2'),
  MODEL_CACHE_DIR: z.string().default('.model-cache'),
  // Weight quantization of a llama2.c checkpoint imported at start-up (src/engine/quantize.ts); empty: fp32.
  MODEL_QUANTIZE: z.enum(['', ...QUANTIZE_MODES] as [string, ...string[]]).default('').transform((v) => (v === '' ? undefined : (v as QuantizeMode))),
  API_KEY: optionalString,
  API_KEYS: optionalString,
  ORT_INTRA_OP_THREADS: intFrom(0, 0, 256),
  // ONNX Runtime's intra-op spinning in the decoder session (bench/decode-ab.ts measures it).
  ORT_SPINNING: z
    .enum(['', '0', '1', 'false', 'true'])
    .default('')
    .transform((v) => v === '1' || v === 'true'),
  MAX_WAITING_REQUESTS: intFrom(64, 1, 100_000),
  MAX_BATCH_SIZE: intFrom(16, 1, 256),
  MAX_PREFILL_TOKENS: intFrom(512, 1, 1_000_000),
  ENGINE_GRAPH: z.enum(['auto', 'plain']).default('auto'),
  MAX_BODY_BYTES: intFrom(2 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
  DATA_DIR: z.string().default('data'),
  SHUTDOWN_GRACE_SECONDS: intFrom(30, 0, 3600),
  DATABASE_URL: optionalString,
  REDIS_URL: optionalString,
  REDIS_KEY_PREFIX: z.string().trim().min(1).default('inference-server'),
  RATE_LIMIT_PER_MINUTE: intFrom(120, 0, 1_000_000),
  CHAT_CACHE_TTL_SECONDS: intFrom(120, 0, 30 * 24 * 3600),
  CHAT_CACHE_MAX_ENTRIES: intFrom(1000, 1, 10_000_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  EMBEDDING_MODEL_PATH: optionalString,
  EMBEDDING_MODEL: z.string().trim().default('Xenova/all-MiniLM-L6-v2'),
  EMBEDDING_MAX_BATCH_SIZE: intFrom(32, 1, 1024),
  EMBEDDING_MAX_WAIT_MS: intFrom(2, 0, 10_000),
  EMBEDDING_MAX_WAITING: intFrom(1024, 1, 1_000_000),
  // ONNX Runtime's intra-op spinning in the embedding session (src/engine/encoder.ts PoolingThreading).
  EMBEDDING_ORT_SPINNING: z
    .enum(['', '0', '1', 'false', 'true'])
    .default('')
    .transform((v) => v === '1' || v === 'true'),
  // Hugging Face's own switch (huggingface_hub, text-embeddings-inference): hub models come from the cache only.
  HF_HUB_OFFLINE: z
    .enum(['', '0', '1', 'false', 'true'])
    .default('')
    .transform((v) => v === '1' || v === 'true'),
  // huggingface_hub's name for a mirror of the hub (same URL layout: <endpoint>/<id>/resolve/<revision>/<file>).
  HF_ENDPOINT: optionalString.refine((v) => v === undefined || /^https?:\/\/[^\s]+$/.test(v), { message: 'must be an http(s) URL' }),
  // Testing only (fault drills): model runs, numbered from 1 since start, that throw instead of running.
  FAULT_INJECT_FAILING_RUNS: z
    .string()
    .trim()
    .regex(/^(\d+(\s*,\s*\d+)*)?$/, { message: 'must be run numbers separated by commas, e.g. 1,40' })
    .default('')
    .transform((v) => (v === '' ? [] : v.split(',').map((n) => Number(n.trim())).filter((n) => n > 0))),
  // What one GraphQL operation may ask for (src/schema/plugins/operation-limits.ts); checked before any resolver runs.
  GRAPHQL_INTROSPECTION: z
    .enum(['', '0', '1', 'false', 'true'])
    .default('')
    .transform((v) => v !== '0' && v !== 'false'),
  GRAPHQL_MAX_ALIASES: intFrom(15, 0, 10_000),
  GRAPHQL_MAX_DIRECTIVES: intFrom(20, 0, 10_000),
  GRAPHQL_MAX_TOKENS: intFrom(2000, 10, 1_000_000),
  GRAPHQL_MAX_COST: intFrom(5000, 1, 10_000_000),
  GRAPHQL_MAX_FIELDS: intFrom(500, 1, 1_000_000),
  GRAPHQL_MAX_GENERATING_FIELDS: intFrom(4, 1, 1000),
  // Slow clients (src/http/server-limits.ts): Node's own server timeouts, and a stream's wait for a client that reads nothing.
  HTTP_HEADERS_TIMEOUT_MS: intFrom(10_000, 100, 3_600_000),
  HTTP_REQUEST_TIMEOUT_MS: intFrom(120_000, 100, 3_600_000),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: intFrom(5_000, 100, 3_600_000),
  STREAM_IDLE_TIMEOUT_MS: intFrom(30_000, 100, 3_600_000),
  MAX_CONNECTIONS: intFrom(1024, 1, 1_000_000),
  // Origins a browser may call the API from (comma-separated, exact, e.g. https://app.example.com); unset: none.
  CORS_ORIGINS: optionalString,
});

export type Role = 'all' | 'api' | 'worker';

export interface Config {
  port: number;
  /** Which part of the work this process does (ROLE). */
  role: Role;
  /**
   * Long work (batch records) goes through the BullMQ queue in Redis, with
   * state in PostgreSQL: true exactly when the role is split (api, worker).
   * ROLE=all keeps today's in-process path. The one place this is decided.
   */
  jobQueue: boolean;
  /** The worker's probe and metrics port. */
  workerPort: number;
  /** Queue job options (BullMQ lockDuration/stalledInterval, attempts, backoff). */
  jobs: { lockMs: number; attempts: number; backoffMs: number };
  host: string;
  modelPath: string | undefined;
  tokenizerPath: string | undefined;
  modelName: string;
  modelCacheDir: string;
  /** Quantize a llama2.c checkpoint's fused graph when it is imported at start-up (int8, int4); undefined: fp32. */
  modelQuantize: QuantizeMode | undefined;
  /** Accepted API keys (raw). Never logged. */
  apiKeys: string[];
  /** ONNX Runtime intra-op threads; defaults to the machine's cores. */
  ortThreads: number;
  /** Whether the decoder session's intra-op threads spin while waiting for work (default false: they sleep). */
  ortSpinning: boolean;
  maxWaitingRequests: number;
  /** Most sequences decoded together in one step. */
  maxBatchSize: number;
  /** Prompt tokens prefilled per scheduler step. */
  maxPrefillTokens: number;
  /** `plain` forces the transformers.js-compatible graph even when a fused one exists. */
  engineGraph: 'auto' | 'plain';
  maxBodyBytes: number;
  /** How long in-flight requests may take to finish after SIGTERM/SIGINT. */
  shutdownGraceSeconds: number;
  /** SQLite file lives here unless DATABASE_URL selects PostgreSQL. */
  dataDir: string;
  /** PostgreSQL connection string; a secret (may hold a password), never logged. */
  databaseUrl: string | undefined;
  /** Redis for rate limits and the response cache (shared by replicas); a secret, never logged raw. */
  redisUrl: string | undefined;
  /** Prefix of every Redis key this server writes. */
  redisKeyPrefix: string;
  /** Requests per API key per minute, REST and GraphQL together; 0 = no limit. */
  rateLimitPerMinute: number;
  /** Lifetime of a cached deterministic chat answer; 0 = no cache. */
  chatCacheTtlSeconds: number;
  /** Most answers the in-memory cache keeps. */
  chatCacheMaxEntries: number;
  logLevel: string;
  /** A local transformers.js feature-extraction directory: the first choice of embedding model. */
  embeddingModelPath: string | undefined;
  /** Hub id of the embedding model when EMBEDDING_MODEL_PATH is unset; undefined (set empty) skips the hub. */
  embeddingModel: string | undefined;
  /** Most inputs the embedding model runs together. */
  embeddingMaxBatchSize: number;
  /** How long a batch that is not full may wait for more inputs while clients send concurrently; 0 never waits. */
  embeddingMaxWaitMs: number;
  /** Most inputs waiting for the embedding model; beyond it 503 at once. */
  embeddingMaxWaiting: number;
  /** Whether the embedding session's intra-op threads spin while waiting for work (default false: they sleep). */
  embeddingOrtSpinning: boolean;
  /** Hub models from the local cache only, never the network. */
  hubOffline: boolean;
  /** Where hub models are downloaded from (a mirror; ends with `/`); undefined: huggingface.co. */
  hubEndpoint: string | undefined;
  /** Testing only (FAULT_INJECT_FAILING_RUNS): model runs, numbered from 1, made to throw; empty in normal use. */
  faultInjectFailingRuns: number[];
  /** GRAPHQL_*: what one operation may ask for. */
  graphqlLimits: OperationLimits;
  /** HTTP_*_TIMEOUT_MS, STREAM_IDLE_TIMEOUT_MS, MAX_CONNECTIONS: slow and idle clients. */
  http: HttpLimits;
  /** CORS_ORIGINS: exact origins allowed cross-origin; empty: no CORS headers at all. */
  corsOrigins: string[];
}

export class ConfigError extends Error {}

/** CORS_ORIGINS: comma-separated exact origins (scheme://host[:port]); ConfigError for anything else. */
function parseOrigins(v: string | undefined): string[] {
  if (v === undefined) return [];
  const origins = v.split(',').map((o) => o.trim()).filter((o) => o.length > 0);
  for (const o of origins) {
    let ok = false;
    try {
      ok = new URL(o).origin === o;
    } catch {
      ok = false;
    }
    if (!ok) throw new ConfigError(`Invalid configuration: CORS_ORIGINS: ${JSON.stringify(o)} is not an origin (scheme://host[:port], no path or trailing slash)`);
  }
  return origins;
}

/** Parses and validates configuration; throws ConfigError naming the bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = ConfigSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue?.path[0] ?? 'environment');
    throw new ConfigError(`Invalid configuration: ${name}: ${issue?.message ?? 'invalid value'}`);
  }
  const e = parsed.data;
  const keys = e.API_KEYS
    ? e.API_KEYS.split(',').map((k) => k.trim()).filter((k) => k.length > 0)
    : [e.API_KEY ?? 'dev-local-key'];
  if (keys.length === 0) throw new ConfigError('Invalid configuration: API_KEYS lists no key');
  if (e.REDIS_URL && !/^rediss?:\/\//.test(e.REDIS_URL)) {
    throw new ConfigError('Invalid configuration: REDIS_URL: must start with redis:// or rediss://');
  }
  if (e.ROLE !== 'all' && (!e.REDIS_URL || !e.DATABASE_URL)) {
    const missing = [e.REDIS_URL ? null : 'REDIS_URL', e.DATABASE_URL ? null : 'DATABASE_URL'].filter(Boolean).join(' and ');
    throw new ConfigError(
      `Invalid configuration: ROLE=${e.ROLE} needs ${missing}: api replicas and workers share jobs through Redis and state through PostgreSQL (ROLE=all runs everything in one process without them)`,
    );
  }
  return {
    port: e.PORT,
    role: e.ROLE,
    jobQueue: e.ROLE !== 'all',
    workerPort: e.WORKER_PORT,
    jobs: { lockMs: e.JOB_LOCK_SECONDS * 1000, attempts: e.JOB_ATTEMPTS, backoffMs: e.JOB_BACKOFF_MS },
    host: e.HOST,
    modelPath: e.MODEL_PATH ? path.resolve(e.MODEL_PATH) : undefined,
    tokenizerPath: e.TOKENIZER_PATH ? path.resolve(e.TOKENIZER_PATH) : undefined,
    modelName: e.MODEL_NAME,
    modelCacheDir: path.resolve(e.MODEL_CACHE_DIR),
    modelQuantize: e.MODEL_QUANTIZE,
    apiKeys: keys,
    ortThreads: e.ORT_INTRA_OP_THREADS > 0 ? e.ORT_INTRA_OP_THREADS : Math.max(1, os.availableParallelism()),
    ortSpinning: e.ORT_SPINNING,
    maxWaitingRequests: e.MAX_WAITING_REQUESTS,
    maxBatchSize: e.MAX_BATCH_SIZE,
    maxPrefillTokens: e.MAX_PREFILL_TOKENS,
    engineGraph: e.ENGINE_GRAPH,
    maxBodyBytes: e.MAX_BODY_BYTES,
    dataDir: path.resolve(e.DATA_DIR),
    shutdownGraceSeconds: e.SHUTDOWN_GRACE_SECONDS,
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    redisKeyPrefix: e.REDIS_KEY_PREFIX,
    rateLimitPerMinute: e.RATE_LIMIT_PER_MINUTE,
    chatCacheTtlSeconds: e.CHAT_CACHE_TTL_SECONDS,
    chatCacheMaxEntries: e.CHAT_CACHE_MAX_ENTRIES,
    logLevel: e.LOG_LEVEL,
    embeddingModelPath: e.EMBEDDING_MODEL_PATH ? path.resolve(e.EMBEDDING_MODEL_PATH) : undefined,
    embeddingModel: e.EMBEDDING_MODEL === '' ? undefined : e.EMBEDDING_MODEL,
    embeddingMaxBatchSize: e.EMBEDDING_MAX_BATCH_SIZE,
    embeddingMaxWaitMs: e.EMBEDDING_MAX_WAIT_MS,
    embeddingMaxWaiting: e.EMBEDDING_MAX_WAITING,
    embeddingOrtSpinning: e.EMBEDDING_ORT_SPINNING,
    hubOffline: e.HF_HUB_OFFLINE,
    hubEndpoint: e.HF_ENDPOINT === undefined ? undefined : e.HF_ENDPOINT.replace(/\/*$/, '/'),
    faultInjectFailingRuns: e.FAULT_INJECT_FAILING_RUNS,
    graphqlLimits: {
      introspection: e.GRAPHQL_INTROSPECTION,
      maxAliases: e.GRAPHQL_MAX_ALIASES,
      maxDirectives: e.GRAPHQL_MAX_DIRECTIVES,
      maxTokens: e.GRAPHQL_MAX_TOKENS,
      maxCost: e.GRAPHQL_MAX_COST,
      maxFields: e.GRAPHQL_MAX_FIELDS,
      maxGeneratingFields: e.GRAPHQL_MAX_GENERATING_FIELDS,
    },
    http: {
      headersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: e.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      streamIdleTimeoutMs: e.STREAM_IDLE_TIMEOUT_MS,
      maxConnections: e.MAX_CONNECTIONS,
    },
    corsOrigins: parseOrigins(e.CORS_ORIGINS),
  };
}
