import { createHash, timingSafeEqual } from 'node:crypto';
import { unauthorized } from '../errors.js';
import { keyIdOf } from '../observability/key-id.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** Decides who is calling; the only place that compares API keys. */
export class Authenticator {
  private readonly digests: Buffer[];

  constructor(keys: readonly string[]) {
    this.digests = keys.map(sha256);
  }

  /** Reads `x-api-key` or `Authorization: Bearer`; returns the key id or throws 401. */
  authenticate(headers: { apiKey?: string | null; authorization?: string | null }): string {
    let key = headers.apiKey ?? undefined;
    if (!key && headers.authorization) {
      const m = /^Bearer\s+(.+)$/i.exec(headers.authorization.trim());
      key = m?.[1]?.trim();
    }
    if (!key) throw unauthorized('Missing API key: send x-api-key or Authorization: Bearer');
    const digest = sha256(key);
    // Compare digests in constant time so the comparison leaks nothing about the keys.
    if (!this.digests.some((d) => timingSafeEqual(d, digest))) throw unauthorized('Invalid API key');
    return keyIdOf(key);
  }
}
