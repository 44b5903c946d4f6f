# syntax=docker/dockerfile:1
# Build stage: production dependencies only (onnxruntime-node ships its CPU build in the package).
FROM node:20-slim AS deps
# better-sqlite3 is a native addon: when no prebuilt binary matches, npm compiles it.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:20-slim
ENV NODE_ENV=production \
    PORT=8000 \
    HOST=0.0.0.0 \
    MODEL_CACHE_DIR=/app/.model-cache \
    DATA_DIR=/app/data
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY src ./src
COPY scripts ./scripts
RUN mkdir -p /app/.model-cache /app/data && chown -R node:node /app/.model-cache /app/data
USER node
EXPOSE 8000
# MODEL_PATH (a model directory or llama2.c .bin mounted into the container) or MODEL_NAME (hub id, needs internet).
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8000)+'/healthz').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"
CMD ["node", "--import", "tsx", "src/main.ts"]
