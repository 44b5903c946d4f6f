import { Router } from 'express';
import { jsonBody } from '../http/json.js';
import { EmbeddingsRequestSchema } from '../services/embeddings-schema.js';
import { float32Base64, type EmbeddingService, type EmbeddingsResult } from '../services/embeddings/service.js';
import { parseInput } from '../services/validation.js';
import { asyncHandler } from './middleware.js';

/** The contract's response (OpenAI's shape): vectors as JSON numbers, or base64 when the request asked for it. */
export function embeddingsJson(r: EmbeddingsResult) {
  return {
    object: 'list' as const,
    data: r.data.map((d) => ({
      object: 'embedding' as const,
      index: d.index,
      embedding: r.encodingFormat === 'base64' ? float32Base64(d.embedding) : Array.from(d.embedding),
    })),
    model: r.model,
    usage: {
      prompt_tokens: r.usage.promptTokens,
      input_tokens: r.usage.inputTokens,
      total_tokens: r.usage.totalTokens,
    },
    request_id: r.requestId,
  };
}

/** POST /v1/embeddings (contract section 3). */
export function embeddingRouter(embeddings: EmbeddingService, maxBodyBytes: number): Router {
  const router = Router();
  const json = jsonBody(maxBodyBytes);
  router.post(
    '/v1/embeddings',
    json,
    asyncHandler(async (req, res) => {
      const input = parseInput(EmbeddingsRequestSchema, req.body);
      res.json(embeddingsJson(await embeddings.create(input, req.ctx)));
    }),
  );
  return router;
}
