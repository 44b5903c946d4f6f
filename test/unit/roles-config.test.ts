import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const REDIS_URL = 'redis://127.0.0.1:6379';
const DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';

describe('ROLE (issue 13)', () => {
  it('defaults to all: one process, no queue, no Redis or PostgreSQL needed', () => {
    const c = loadConfig({});
    expect(c.role).toBe('all');
    expect(c.jobQueue).toBe(false);
    expect(loadConfig({ REDIS_URL, DATABASE_URL }).jobQueue).toBe(false);
  });

  it.each(['api', 'worker'])('ROLE=%s needs REDIS_URL and DATABASE_URL, and says so', (role) => {
    expect(() => loadConfig({ ROLE: role })).toThrow(ConfigError);
    expect(() => loadConfig({ ROLE: role })).toThrow(/REDIS_URL and DATABASE_URL/);
    expect(() => loadConfig({ ROLE: role, REDIS_URL })).toThrow(/needs DATABASE_URL/);
    expect(() => loadConfig({ ROLE: role, DATABASE_URL })).toThrow(/needs REDIS_URL/);
    const c = loadConfig({ ROLE: role, REDIS_URL, DATABASE_URL });
    expect(c.role).toBe(role);
    expect(c.jobQueue).toBe(true);
  });

  it('queue settings: worker port, job lock, attempts and backoff', () => {
    const c = loadConfig({ WORKER_PORT: '0', JOB_LOCK_SECONDS: '5', JOB_ATTEMPTS: '4', JOB_BACKOFF_MS: '100' });
    expect(c.workerPort).toBe(0);
    expect(c.jobs).toEqual({ lockMs: 5000, attempts: 4, backoffMs: 100 });
    expect(() => loadConfig({ ROLE: 'both' })).toThrow(/ROLE/);
  });
});
