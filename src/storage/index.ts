import { openPostgresStorage } from './postgres.js';
import { openSqliteStorage } from './sqlite.js';
import type { Storage } from './types.js';

/** Where durable state lives: PostgreSQL when `databaseUrl` is set, else SQLite in `dataDir`. */
export interface StorageConfig {
  databaseUrl?: string;
  dataDir: string;
}

/**
 * Opens the configured storage and brings its schema up to date. Only
 * `main.ts` (and tests) should call this; everything else receives the
 * Storage it returns.
 */
export async function openStorage(cfg: StorageConfig): Promise<Storage> {
  return cfg.databaseUrl ? openPostgresStorage(cfg.databaseUrl) : openSqliteStorage(cfg.dataDir);
}
