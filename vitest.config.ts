import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    // graphql 16 ships CJS and ESM without an exports map: Node loads the CJS build for
    // Pothos and yoga, so tests must use the same one or graphql sees two "realms".
    alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }],
  },
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
