import type { Storage } from '../storage/types.js';
import { Authenticator } from './auth.js';
import { BatchEvalService } from './batch-evals.js';
import { ChatService } from './chat.js';
import { DatasetService } from './datasets/service.js';
import { EvaluationService, Scorer } from './evaluation.js';
import { HealthService } from './health.js';
import type { ModelHost } from './model-host.js';

export interface ServiceLog {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** The service layer both surfaces call. */
export interface Services {
  host: ModelHost;
  auth: Authenticator;
  health: HealthService;
  chat: ChatService;
  datasets: DatasetService;
  evaluations: EvaluationService;
  batchEvals: BatchEvalService;
}

export function buildServices(opts: {
  host: ModelHost;
  storage: Storage;
  apiKeys: readonly string[];
  version: string;
  log: ServiceLog;
}): Services {
  const scorer = new Scorer(opts.host);
  return {
    host: opts.host,
    auth: new Authenticator(opts.apiKeys),
    health: new HealthService(opts.host, opts.version),
    chat: new ChatService(opts.host, opts.log),
    datasets: new DatasetService(opts.storage),
    evaluations: new EvaluationService(opts.storage, scorer, opts.host),
    batchEvals: new BatchEvalService(opts.storage, opts.host, scorer, opts.log),
  };
}
