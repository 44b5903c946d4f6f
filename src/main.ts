import type { Server } from 'node:http';
import path from 'node:path';
import { env as hfEnv } from '@huggingface/transformers';
import { buildApp } from './app.js';
import { createLimitedServer } from './http/server-limits.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { Engine } from './engine/engine.js';
import { materializeModel, ModelSourceError, offlineMessage, resolveModelSource, type ModelSource } from './engine/model-source.js';
import { buildServices } from './services/index.js';
import { createLogger, loggableConfig } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { openStorage } from './storage/index.js';
import type { Storage } from './storage/types.js';
import { ModelHost } from './services/model-host.js';
import { EmbeddingHost } from './services/embeddings/host.js';
import { checkEmbeddingModelPath, EmbeddingSourceError, loadEmbeddings } from './services/embeddings/loader.js';
import { VERSION } from './version.js';
import { BATCH_QUEUE, type BatchJobData } from './jobs/batch-queue.js';
import type { QueueConnection } from './jobs/connection.js';
import { JobQueues } from './jobs/queues.js';
import { JobWorker } from './jobs/job-worker.js';
import { RAG_QUEUE, type RagJobData } from './jobs/rag-queue.js';
import { buildWorkerApp } from './jobs/worker-app.js';
import { ProgressEvents } from './services/progress-events.js';

/** Start-up only: configuration, dependencies, listen, signals. */
async function main(): Promise<void> {
  let config: Config;
  let source: ModelSource;
  try {
    config = loadConfig();
    source = resolveModelSource(config.modelPath, config.tokenizerPath, config.modelName, config.modelQuantize);
    checkEmbeddingModelPath(config.embeddingModelPath);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof ModelSourceError || err instanceof EmbeddingSourceError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  // HF_HUB_OFFLINE: every hub model (MODEL_NAME, EMBEDDING_MODEL) comes from the cache or not at all.
  if (config.hubOffline) hfEnv.allowRemoteModels = false;
  // HF_ENDPOINT: a mirror of the hub, downloaded from exactly as from huggingface.co.
  if (config.hubEndpoint) hfEnv.remoteHost = config.hubEndpoint;
  log.info({ config: loggableConfig(config), model_source: source, version: VERSION }, 'starting');

  let storage: Storage;
  try {
    storage = await openStorage({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  } catch (err) {
    log.fatal({ err }, 'storage unavailable');
    process.stderr.write(`Cannot open storage (${config.databaseUrl ? 'DATABASE_URL' : `DATA_DIR=${config.dataDir}`}): ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  log.info({ storage: storage.kind }, 'storage ready');
  const host = new ModelHost(source.name);
  const embeddingHost = new EmbeddingHost();
  // Queue depth, running batch and load time are read from the host at scrape time.
  const metrics = new Metrics({ source: host, embeddings: embeddingHost });
  // Split roles share jobs through BullMQ on Redis (keys under REDIS_KEY_PREFIX).
  const queueConn: QueueConnection | null =
    config.jobQueue && config.redisUrl ? { redisUrl: config.redisUrl, prefix: `${config.redisKeyPrefix}:bull` } : null;
  // Both split roles read the queues' counts (metrics, /v1/health); only an API replica enqueues.
  const queues = queueConn ? new JobQueues(queueConn, config.jobs) : null;
  if (queues) metrics.watchQueues(queues);
  // Batch progress reaches subscribers on every replica through Redis in split roles; in process otherwise.
  const progressEvents = new ProgressEvents(queueConn ? { url: queueConn.redisUrl, keyPrefix: config.redisKeyPrefix } : undefined);
  const services = buildServices({
    progressEvents,
    batchDispatch: config.role === 'api' ? queues?.batch ?? null : null,
    ragDispatch: config.role === 'api' ? queues?.rag ?? null : null,
    queues,
    host,
    embeddingHost,
    storage,
    apiKeys: config.apiKeys,
    version: VERSION,
    log,
    metrics,
    redisUrl: config.redisUrl,
    redisKeyPrefix: config.redisKeyPrefix,
    rateLimitPerMinute: config.rateLimitPerMinute,
    chatCache: { ttlSeconds: config.chatCacheTtlSeconds, maxEntries: config.chatCacheMaxEntries },
  });
  const worker = config.role === 'worker';
  const jobWorkers =
    queueConn && worker
      ? [
          new JobWorker<BatchJobData>(
            queueConn,
            {
              ...config.jobs,
              queue: BATCH_QUEUE,
              // Concurrency matches the engine's batch, so records of a run decode together.
              concurrency: config.maxBatchSize,
              ownerOf: (job) => job.batchId,
              handler: (job, attempt, last, signal) => services.batchEvals.processQueuedRecord(job, attempt, last, signal),
              onGaveUp: (job, err) => services.batchEvals.giveUpQueuedRecord(job, err),
            },
            log,
            metrics,
          ),
          new JobWorker<RagJobData>(
            queueConn,
            {
              ...config.jobs,
              queue: RAG_QUEUE,
              // Two groups at a time, each with its documents' embed calls in flight: the embedder batches across them.
              concurrency: 2,
              ownerOf: (job) => job.indexId,
              handler: (job, _attempt, last, signal) => services.rag.processJob(job, last, signal),
              onGaveUp: (job, err) => services.rag.giveUpJob(job, err),
            },
            log,
            metrics,
          ),
        ]
      : [];
  if (!worker) {
    // Runs a crash or restart left behind go on where they stopped (they wait for the model).
    void services.batchEvals.resumeAll().catch((err: unknown) => log.error({ err }, 'resuming batch evaluations failed'));
    // Index builds likewise (they wait for the embedding model); ready indexes load their vectors and graphs.
    void services.rag.resumeAll().catch((err: unknown) => log.error({ err }, 'resuming RAG index builds failed'));
    void services.rag.warmUp().catch((err: unknown) => log.error({ err }, 'loading RAG vectors failed'));
  }
  // A worker serves only its probes and metrics, on WORKER_PORT.
  const app = worker
    ? buildWorkerApp(services.health, metrics)
    : buildApp({ services, log, maxBodyBytes: config.maxBodyBytes, graphqlLimits: config.graphqlLimits, corsOrigins: config.corsOrigins });
  const listenPort = worker ? config.workerPort : config.port;
  // Slow clients, streams nobody reads, too many connections (HTTP_*_TIMEOUT_MS, STREAM_IDLE_TIMEOUT_MS, MAX_CONNECTIONS).
  const server: Server = createLimitedServer(app, config.http);
  server.listen(listenPort, config.host, () => {
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : listenPort;
    // Tests and scripts read this line to find a port-0 server.
    log.info({ port }, `listening on http://${config.host}:${port}`);
  });

  let shuttingDown = false;
  /**
   * Graceful shutdown: stop accepting connections, answer 503 on /readyz,
   * let in-flight requests (and their generations) finish up to the grace
   * deadline, leave batch runs resumable, close storage and the model, exit 0.
   */
  const shutdown = (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal, grace_seconds: config.shutdownGraceSeconds, role: config.role }, 'shutting down: draining in-flight requests');
    services.health.drain();
    // A worker stops taking jobs and finishes its active ones within the grace period (the rest go to another worker).
    const jobsDone = Promise.all(jobWorkers.map((w) => w.close(config.shutdownGraceSeconds * 1000)));
    // Batch runs stop taking records; they stay `running` in storage and resume at the next start.
    void services.batchEvals.stop();
    // Index builds too: they stay `processing` and resume from their last stored document.
    void services.rag.stop();
    // Keep-alive connections between requests would hold close() open; close them as they go idle.
    const idleSweep = setInterval(() => server.closeIdleConnections(), 100);
    let finishing = false;
    const finish = (reason: string) => {
      if (finishing) return;
      finishing = true;
      clearInterval(idleSweep);
      log.info({ reason }, 'closing storage and model');
      void jobsDone
        .then(() => Promise.allSettled([storage.close(), host.engine?.close(), embeddingHost.close(), services.redis?.close(), queues?.close(), progressEvents.close()]))
        .finally(() => {
        log.info('bye');
        process.exit(0);
      });
    };
    server.close(() => finish('all requests finished'));
    server.closeIdleConnections();
    setTimeout(() => {
      log.warn('grace period over: closing the remaining connections');
      server.closeAllConnections();
      finish('grace period over');
    }, config.shutdownGraceSeconds * 1000).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  // The embedding model loads beside the decoder; its last resort is the decoder's own directory.
  let decoderReady: (d: { dir: string; name: string } | null) => void = () => {};
  const decoder = new Promise<{ dir: string; name: string } | null>((resolve) => (decoderReady = resolve));
  void loadEmbeddings({
    host: embeddingHost,
    modelPath: config.embeddingModelPath,
    hubId: config.embeddingModel,
    hubOffline: config.hubOffline,
    hubCacheDir: path.join(config.modelCacheDir, 'hub'),
    decoder,
    threads: config.ortThreads,
    spinning: config.embeddingOrtSpinning,
    limits: { maxBatchSize: config.embeddingMaxBatchSize, maxWaitMs: config.embeddingMaxWaitMs, maxWaiting: config.embeddingMaxWaiting },
    observer: metrics,
    log,
  });

  const started = performance.now();
  let dir: string;
  try {
    dir = await materializeModel(source, config.modelCacheDir);
    decoderReady({ dir, name: source.name });
  } catch (err) {
    decoderReady(null);
    if (source.kind === 'hub') {
      // Without a model and without a way to fetch one, the server cannot serve at all.
      log.fatal({ err }, 'no model');
      process.stderr.write(`${offlineMessage(source.id, err instanceof Error ? err.message : String(err))}\n`);
      process.exit(1);
    }
    host.failed(`import failed: ${err instanceof Error ? err.message : String(err)}`);
    log.error({ err }, 'model import failed; serving degraded');
    return;
  }
  try {
    const engine = await Engine.load(dir, {
      name: source.name,
      source: source.kind === 'hub' ? source.id : dir,
      threads: config.ortThreads,
      spinning: config.ortSpinning,
      graph: config.engineGraph,
      onGeneration: (r) => metrics.observeGeneration(r),
      onRunFailure: (err) => log.error({ err }, 'model run failed; the requests in its batch fail with it'),
      failingRuns: config.faultInjectFailingRuns,
      limits: {
        maxBatchSize: config.maxBatchSize,
        maxWaiting: config.maxWaitingRequests,
        maxPrefillTokens: config.maxPrefillTokens,
      },
    });
    const seconds = (performance.now() - started) / 1000;
    host.ready(engine, seconds);
    log.info({ model: engine.info, load_seconds: Math.round(seconds * 1000) / 1000 }, 'model ready');
  } catch (err) {
    host.failed(`load failed: ${err instanceof Error ? err.message : String(err)}`);
    log.error({ err }, 'model load failed; serving degraded');
  }
}

void main();
