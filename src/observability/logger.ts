import { pino, type Logger } from 'pino';
import type { Config } from '../config.js';
import { keyIdOf } from './key-id.js';

/**
 * The process logger: JSON lines (pino). Headers that carry keys are
 * redacted wherever they appear; prompts are never logged at info level.
 */
export function createLogger(level: string): Logger {
  return pino({
    level,
    redact: {
      paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'headers.authorization', 'headers["x-api-key"]', '*.apiKeys', 'apiKeys'],
      censor: '[redacted]',
    },
  });
}

/** user:password in a connection string becomes user:*** so the URL can be logged. */
export function redactUrl(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '[unparseable url]';
  }
}

/** The start-up configuration as it may be logged: keys by id, URLs without passwords. */
export function loggableConfig(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    if (k === 'apiKeys') out.api_key_ids = (v as string[]).map(keyIdOf);
    else if (/url$/i.test(k)) out[k] = redactUrl(v as string | undefined);
    else out[k] = v;
  }
  return out;
}
