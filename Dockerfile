# syntax=docker/dockerfile:1
# Node 24: a maintained LTS line that every dependency's `engines` accepts (see package.json and README "Docker").
ARG NODE_IMAGE=node:24-slim

# Build stage: all dependencies (TypeScript among them), compiles src/ to dist/.
FROM ${NODE_IMAGE} AS build
# better-sqlite3 is a native addon: when no prebuilt binary matches, npm compiles it.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# npm ci's prepare script (the console build) skips here: web/ is not copied yet.
COPY scripts/build-console.mjs ./scripts/
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build
# The web console (served at /): Vite builds web/ into web/dist.
COPY schema.graphql ./
COPY web ./web
RUN node scripts/build-console.mjs --force

# Production dependencies only (onnxruntime-node ships its CPU build in the package; .npmrc skips its GPU download).
FROM ${NODE_IMAGE} AS deps
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# The prepare script runs here too, and skips: no Vite in a production install.
COPY scripts/build-console.mjs ./scripts/
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    PORT=8000 \
    HOST=0.0.0.0 \
    WORKER_PORT=9100 \
    MODEL_CACHE_DIR=/app/.model-cache \
    DATA_DIR=/app/data
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
# dist/version.js reads ../package.json for the version.
COPY package.json ./
COPY --from=build /app/dist ./dist
# The built console only (no sources: the server serves it and never tries to build it).
COPY --from=build /app/web/dist ./web/dist
RUN mkdir -p /app/.model-cache /app/data && chown -R node:node /app/.model-cache /app/data
USER node
# SQLite database (DATA_DIR) and imported checkpoints (MODEL_CACHE_DIR): mount volumes here to keep them across containers.
VOLUME ["/app/data", "/app/.model-cache"]
# 8000: the HTTP API (ROLE=all or api); 9100: a worker's /healthz, /readyz and /metrics (ROLE=worker).
EXPOSE 8000 9100
# MODEL_PATH (a model directory or llama2.c .bin mounted into the container) or MODEL_NAME (hub id, needs internet).
# Healthy means ready: /readyz answers 200 once the model is loaded (503 while loading, draining or after a failed load).
# A worker (ROLE=worker) answers on WORKER_PORT instead of PORT.
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
  CMD ["node", "-e", "const p=process.env.ROLE==='worker'?(process.env.WORKER_PORT||9100):(process.env.PORT||8000);fetch('http://127.0.0.1:'+p+'/readyz').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"]
# Node itself is PID 1 and handles SIGTERM (drain, then exit); no tsx at run time.
CMD ["node", "dist/main.js"]
