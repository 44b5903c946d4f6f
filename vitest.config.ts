import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // Two cores: integration files each start a server with a model; keep them from fighting.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
