import { Authenticator } from './auth.js';
import { ChatService, type ServiceLogger } from './chat.js';
import { HealthService } from './health.js';
import type { ModelHost } from './model-host.js';

/** The service layer both surfaces call. */
export interface Services {
  host: ModelHost;
  auth: Authenticator;
  health: HealthService;
  chat: ChatService;
}

export function buildServices(opts: { host: ModelHost; apiKeys: readonly string[]; version: string; log: ServiceLogger }): Services {
  return {
    host: opts.host,
    auth: new Authenticator(opts.apiKeys),
    health: new HealthService(opts.host, opts.version),
    chat: new ChatService(opts.host, opts.log),
  };
}
