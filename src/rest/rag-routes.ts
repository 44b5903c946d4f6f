import express, { Router } from 'express';
import type { RagIndex } from '../storage/types.js';
import { progressOf } from '../services/rag/errors.js';
import type { RetrievedChunk } from '../services/rag/retrieval.js';
import type { RagSearchResult, RagService } from '../services/rag/service.js';
import { BuildRagIndexSchema, RagIndexListSchema, RagSearchSchema } from '../services/rag-schema.js';
import { parseInput } from '../services/validation.js';
import { asyncHandler } from './middleware.js';

const ms = (v: number) => Math.round(v * 100) / 100;

/** GET /v1/rag/indexes/{index_id} (contract section 3, with this server's additions). */
export const ragIndexJson = (i: RagIndex) => ({
  index_id: i.id,
  dataset_id: i.datasetId,
  status: i.status,
  document_count: i.documentsIndexed,
  chunk_count: i.chunkCount,
  failed_document_count: i.documentsFailed,
  progress: progressOf(i),
  embedding_model: i.embeddingModel,
  embedding_dimensions: i.embeddingDimensions,
  chunking: { chunk_tokens: i.options.chunk_tokens, chunk_overlap: i.options.chunk_overlap },
  fusion:
    i.fusion === null
      ? null
      : {
          lexical_weight: i.fusion.lexical,
          dense_weight: i.fusion.dense,
          calibration_queries: i.fusion.queries,
          lexical_mrr: i.fusion.lexicalMrr,
          dense_mrr: i.fusion.denseMrr,
        },
  error: i.error,
  created_at: i.createdAt,
  started_at: i.startedAt,
  updated_at: i.updatedAt,
  completed_at: i.completedAt,
});

export const ragHitJson = (h: RetrievedChunk) => ({
  doc_id: h.chunk.docId,
  chunk_id: h.chunk.chunkId,
  score: h.score,
  text: h.chunk.text,
  lexical_rank: h.lexicalRank,
  dense_rank: h.denseRank,
  span: { start: h.chunk.start, end: h.chunk.end },
  metadata: h.chunk.metadata,
});

export const ragRetrievalJson = (r: RagSearchResult) => ({
  index_id: r.index.id,
  dataset_id: r.index.datasetId,
  mode: r.mode,
  top_k: r.topK,
  latency_ms: ms(r.latencyMs),
  embedding_ms: ms(r.embeddingMs),
  candidates: r.candidates,
  dense_method: r.denseMethod,
});

/** RAG indexes and retrieval (contract section 3's additions; POST /v1/rag itself comes with answers). */
export function ragRouter(rag: RagService, maxBodyBytes: number): Router {
  const router = Router();
  const json = express.json({ limit: maxBodyBytes, type: () => true });
  router.post(
    '/v1/rag/search',
    json,
    asyncHandler(async (req, res) => {
      const r = await rag.search(parseInput(RagSearchSchema, req.body), req.ctx);
      res.json({ results: r.results.map(ragHitJson), retrieval: ragRetrievalJson(r), request_id: req.ctx.requestId });
    }),
  );
  router.post(
    '/v1/rag/indexes',
    json,
    asyncHandler(async (req, res) => {
      const index = await rag.build(parseInput(BuildRagIndexSchema, req.body));
      res.status(202).json({ ...ragIndexJson(index), request_id: req.ctx.requestId });
    }),
  );
  router.get(
    '/v1/rag/indexes',
    asyncHandler(async (req, res) => {
      const page = await rag.list(parseInput(RagIndexListSchema, req.query));
      res.json({ data: page.items.map(ragIndexJson), next_cursor: page.nextCursor, request_id: req.ctx.requestId });
    }),
  );
  router.get(
    '/v1/rag/indexes/:id',
    asyncHandler(async (req, res) => {
      res.json({ ...ragIndexJson(await rag.get(String(req.params.id))), request_id: req.ctx.requestId });
    }),
  );
  router.delete(
    '/v1/rag/indexes/:id',
    asyncHandler(async (req, res) => {
      await rag.delete(String(req.params.id));
      res.json({ index_id: req.params.id, deleted: true, request_id: req.ctx.requestId });
    }),
  );
  return router;
}
