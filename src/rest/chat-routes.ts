import { Router } from 'express';
import { jsonBody } from '../http/json.js';
import type { ChatResult, ChatService } from '../services/chat.js';
import { ChatRequestSchema } from '../services/chat-schema.js';
import { parseInput } from '../services/validation.js';
import { asyncHandler } from './middleware.js';
import { SseWriter } from './sse.js';

/** The contract's snake_case chat response. */
export function chatJson(r: ChatResult) {
  return {
    response: r.response,
    latency_ms: r.latencyMs,
    prompt_tokens: r.promptTokens,
    completion_tokens: r.completionTokens,
    total_tokens: r.totalTokens,
    model: r.model,
    request_id: r.requestId,
    finish_reason: r.finishReason,
    cache_hit: r.cacheHit,
    context_window: r.contextWindow,
    context_used_pct: r.contextUsedPct,
    model_type: r.modelType,
    attention_masking: r.attentionMasking,
    attention_heads: r.attentionHeads,
    hidden_size: r.hiddenSize,
    estimated_attention_ops: r.estimatedAttentionOps,
    output_to_input_ratio: r.outputToInputRatio,
    refined: r.refined,
    original_response: r.originalResponse,
    critique: r.critique,
    refine_steps_used: r.refineStepsUsed,
    seed: r.seed,
    time_to_first_token_ms: r.timeToFirstTokenMs,
    inter_token_latency_ms: r.interTokenLatencyMs,
    refine_usage: r.refineUsage && {
      prompt_tokens: r.refineUsage.promptTokens,
      completion_tokens: r.refineUsage.completionTokens,
    },
    structured: r.structured ? { type: r.structured.type, complete: r.structured.complete } : null,
  };
}

/** POST /v1/chat and its alias /chat, JSON or server-sent events. */
export function chatRouter(chat: ChatService, maxBodyBytes: number): Router {
  const router = Router();
  // Scoped to the chat routes: other routers parse their own bodies (datasets take multipart and 100 MB).
  const json = jsonBody(maxBodyBytes);
  const handler = asyncHandler(async (req, res) => {
    const input = parseInput(ChatRequestSchema, req.body);
    if (!input.stream) {
      res.json(chatJson(await chat.chat(input, req.ctx)));
      return;
    }
    // The stream opens with the first token, so what fails before it (loading model, prompt too long)
    // is a plain error response. What fails after it ends the stream with an `error` event; both are
    // errorHandler's to answer, the one place REST maps, counts and logs errors.
    const sse = new SseWriter(res);
    const result = await chat.chat(input, req.ctx, (t) => {
      sse.open();
      sse.send('token', { token: t.text, index: t.index, phase: t.phase, request_id: req.ctx.requestId });
    });
    sse.open();
    sse.send('done', chatJson(result));
    sse.end();
  });
  router.post(['/v1/chat', '/chat'], json, handler);
  return router;
}
