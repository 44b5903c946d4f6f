import { createHash } from 'node:crypto';

/**
 * Non-secret id for an API key: the first 12 hex digits of its SHA-256.
 * Logs, metrics and stored runs name a key by this, never by the key.
 */
export const keyIdOf = (key: string) => createHash('sha256').update(key).digest('hex').slice(0, 12);
