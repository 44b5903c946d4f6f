import { defineConfig } from 'vite';

/**
 * The web console, served by the server at / (src/console/static.ts).
 * `node scripts/build-console.mjs` builds it into web/dist; `npx vite web`
 * serves it for development, sending API calls to a server on port 8000.
 */
export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  // Everything is bundled: no CDN, no font or script from another origin.
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    target: 'es2022',
    sourcemap: false,
    // Small enough to inline nothing: every asset is a hashed file the server caches for a year.
    assetsInlineLimit: 0,
  },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  server: {
    proxy: {
      '/graphql': 'http://127.0.0.1:8000',
      '/v1': 'http://127.0.0.1:8000',
    },
  },
});
