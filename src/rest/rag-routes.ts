import { Router } from 'express';
import { jsonBody } from '../http/json.js';
import type { RagIndex } from '../storage/types.js';
import { progressOf } from '../services/rag/errors.js';
import type { RetrievedChunk } from '../services/rag/retrieval.js';
import type { RagSearchResult, RagService } from '../services/rag/service.js';
import type { RagAnswer, RagAnswerService } from '../services/rag/answers.js';
import { BuildRagIndexSchema, RagIndexListSchema, RagQuerySchema, RagSearchSchema } from '../services/rag-schema.js';
import { parseInput } from '../services/validation.js';
import { asyncHandler } from './middleware.js';
import { SseWriter } from './sse.js';

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

/** POST /v1/rag's answer (contract section 3, with this server's additions). */
export const ragAnswerJson = (a: RagAnswer) => ({
  answer: a.answer,
  citations: a.citations.map((c) => ({ ...ragHitJson(c), number: c.number, cited: c.cited })),
  retrieval: {
    dataset_id: a.index.datasetId,
    index_id: a.index.id,
    top_k: a.retrieval.topK,
    mode: a.retrieval.mode,
    retrieved: a.retrieval.retrieved,
    used: a.retrieval.used,
    latency_ms: ms(a.retrieval.latencyMs),
    embedding_ms: ms(a.retrieval.embeddingMs),
  },
  generation: {
    model: a.generation.model,
    latency_ms: ms(a.generation.latencyMs),
    prompt_tokens: a.generation.promptTokens,
    completion_tokens: a.generation.completionTokens,
    finish_reason: a.generation.finishReason,
    time_to_first_token_ms: a.generation.timeToFirstTokenMs === null ? null : ms(a.generation.timeToFirstTokenMs),
    seed: a.generation.seed,
  },
  latency_ms: ms(a.latencyMs),
});

/** RAG answers, indexes and retrieval (contract section 3 and its additions). */
export function ragRouter(rag: RagService, answers: RagAnswerService, maxBodyBytes: number): Router {
  const router = Router();
  const json = jsonBody(maxBodyBytes);
  router.post(
    ['/v1/rag', '/v1/rag/query'],
    json,
    asyncHandler(async (req, res) => {
      const input = parseInput(RagQuerySchema, req.body);
      if (!input.stream) {
        res.json({ ...ragAnswerJson(await answers.answer(input, req.ctx)), request_id: req.ctx.requestId });
        return;
      }
      // As chat streams: `token` events, then `done` with the whole answer; what fails before the first token is a plain error.
      const sse = new SseWriter(res);
      let index = 0;
      const result = await answers.answer(input, req.ctx, (text) => {
        sse.open();
        sse.send('token', { token: text, index: index++, request_id: req.ctx.requestId });
      });
      sse.open();
      sse.send('done', { ...ragAnswerJson(result), request_id: req.ctx.requestId });
      sse.end();
    }),
  );
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
