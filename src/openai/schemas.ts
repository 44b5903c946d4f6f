import { z } from 'zod';
import { ResponseFormatSchema } from '../services/response-format-schema.js';
import { int, number, requestBody, seed, typeError } from '../services/fields.js';

/**
 * OpenAI's request bodies (chat completions and legacy completions), with
 * the extras vLLM accepts, validated once here. Messages name the field as
 * OpenAI's API reference does; the error mapper reports it as `param`.
 */

const MAX_PROMPT_CHARS = 200_000;
/** Above any context window served here; the engine cuts generation at the window. */
const MAX_TOKENS = 1_000_000;

const textPart = z.object(
  {
    type: z.literal('text', { error: 'only text content parts are supported (type "text")' }),
    text: z.string({ error: 'a text part needs its text' }).max(MAX_PROMPT_CHARS),
  },
  { error: 'content parts must be objects' },
);

/** A message's content: a string, or text parts (joined); images, audio and files are not supported. */
const content = z
  .union([z.string().max(MAX_PROMPT_CHARS, { error: `content must be at most ${MAX_PROMPT_CHARS} characters` }), z.array(textPart).min(1)], {
    error: 'content must be a string or an array of text parts',
  })
  .transform((c) => (typeof c === 'string' ? c : c.map((p) => p.text).join('')));

const message = z
  .object(
    {
      role: z.enum(['system', 'developer', 'user', 'assistant'], {
        error: (iss) =>
          iss.input === 'tool' || iss.input === 'function'
            ? 'tool and function messages are not supported: this server does not call tools'
            : 'role must be system, developer, user or assistant',
      }),
      content: content.nullish(),
      name: z.string().optional(),
      tool_calls: z.undefined({ error: 'tool_calls are not supported: this server does not call tools' }).optional(),
    },
    { error: 'each message must be an object' },
  )
  .transform((m) => ({
    // `developer` is OpenAI's newer name for the system role.
    role: m.role === 'developer' ? ('system' as const) : m.role,
    content: m.content ?? '',
  }));

const stop = z
  .union([z.string(), z.array(z.string({ error: 'stop must be a string or an array of strings' }))], {
    error: 'stop must be a string or an array of strings',
  })
  .nullish()
  .transform((s) => (s === null || s === undefined ? [] : typeof s === 'string' ? [s] : s))
  .pipe(
    z
      .array(z.string().min(1, { error: 'stop strings must be non-empty' }).max(200, { error: 'stop strings must be at most 200 characters' }))
      .max(16, { error: 'at most 16 stop strings' }),
  );

const logitBias = z
  .record(z.string().regex(/^\d+$/, { error: 'logit_bias keys must be token ids' }), number('logit_bias values', -100, 100), {
    error: 'logit_bias must be an object of token ids to numbers',
  })
  .nullish()
  .transform((b) => b ?? {});

/** The sampling fields both endpoints share (OpenAI's, then vLLM's extras). */
const sampling = {
  model: z.string({ error: 'model must be a string' }).optional(),
  temperature: number('temperature', 0, 2).nullish().transform((v) => v ?? 1),
  top_p: number('top_p', 0, 1).nullish().transform((v) => v ?? 1),
  n: int('n', 1, 8).nullish().transform((v) => v ?? 1),
  stop,
  seed: seed().nullish().transform((v) => v ?? undefined),
  stream: z.boolean({ error: 'stream must be a boolean' }).nullish().transform((v) => v ?? false),
  stream_options: z
    .object({ include_usage: z.boolean({ error: 'stream_options.include_usage must be a boolean' }).optional() }, { error: 'stream_options must be an object' })
    .nullish(),
  presence_penalty: number('presence_penalty', -2, 2).nullish().transform((v) => v ?? 0),
  frequency_penalty: number('frequency_penalty', -2, 2).nullish().transform((v) => v ?? 0),
  logit_bias: logitBias,
  user: z.string({ error: 'user must be a string' }).optional(),
  // vLLM's extras.
  top_k: z
    .number({ error: 'top_k must be a number' })
    .int({ error: 'top_k must be an integer' })
    .min(-1, { error: 'top_k must be -1 (off) or more' })
    .nullish()
    .transform((v) => (v === null || v === undefined || v < 0 ? 0 : v)),
  min_p: number('min_p', 0, 1).nullish().transform((v) => v ?? 0),
  repetition_penalty: number('repetition_penalty', 0.01, 10).nullish().transform((v) => v ?? 1),
  min_tokens: int('min_tokens', 0, 4096).nullish().transform((v) => v ?? 0),
  ignore_eos: z.boolean({ error: 'ignore_eos must be a boolean' }).nullish().transform((v) => v ?? false),
};

/** vLLM's guided decoding extras, each another spelling of a response_format (at most one constraint a request). */
const guided = {
  guided_json: z.union([z.record(z.string(), z.unknown()), z.boolean()], { error: 'guided_json must be a JSON schema (an object)' }).nullish(),
  guided_choice: z.array(z.string({ error: 'guided_choice must be an array of strings' }), { error: 'guided_choice must be an array of strings' }).nullish(),
  guided_regex: z.string({ error: 'guided_regex must be a string' }).nullish(),
};

/** POST /v1/chat/completions. */
export const ChatCompletionSchema = requestBody({
  messages: z
    .array(message, { error: typeError('messages', 'an array of messages') })
    .min(1, { error: 'messages must hold at least one message' })
    .max(1000, { error: 'messages must hold at most 1000 messages' }),
  // Clients send their own model's limits (4096, ...): any count is taken and cut at the context window.
  max_tokens: int('max_tokens', 1, MAX_TOKENS).nullish(),
  max_completion_tokens: int('max_completion_tokens', 1, MAX_TOKENS).nullish(),
  logprobs: z.boolean({ error: 'logprobs must be a boolean' }).nullish().transform((v) => v ?? false),
  top_logprobs: int('top_logprobs', 0, 20).nullish(),
  response_format: ResponseFormatSchema.nullish(),
  ...guided,
  tools: z.undefined({ error: 'tools are not supported: this server does not call tools' }).optional(),
  ...sampling,
}).refine((r) => r.top_logprobs === null || r.top_logprobs === undefined || r.logprobs, {
  error: 'top_logprobs needs logprobs: true',
  path: ['top_logprobs'],
});
export type ChatCompletionRequest = z.infer<typeof ChatCompletionSchema>;

/** POST /v1/completions. */
export const CompletionSchema = requestBody({
  prompt: z
    .union([z.string(), z.array(z.string({ error: 'prompt must be a string or an array of strings' }))], {
      error: typeError('prompt', 'a string or an array of strings'),
    })
    .transform((p) => (typeof p === 'string' ? [p] : p))
    .pipe(
      z
        .array(z.string().max(MAX_PROMPT_CHARS, { error: `prompt must be at most ${MAX_PROMPT_CHARS} characters` }))
        .min(1, { error: 'prompt must hold at least one prompt' })
        .max(16, { error: 'prompt must hold at most 16 prompts' }),
    ),
  max_tokens: int('max_tokens', 1, MAX_TOKENS).nullish().transform((v) => v ?? 16),
  echo: z.boolean({ error: 'echo must be a boolean' }).nullish().transform((v) => v ?? false),
  logprobs: int('logprobs', 0, 20).nullish(),
  ...guided,
  suffix: z.null({ error: 'suffix is not supported' }).optional(),
  best_of: z
    .number({ error: 'best_of must be a number' })
    .nullish()
    .refine((v) => v === null || v === undefined || v === 1, { error: 'best_of other than 1 is not supported' }),
  ...sampling,
}).refine((r) => !(r.echo && r.logprobs !== null && r.logprobs !== undefined), {
  error: 'echo with logprobs is not supported (prompt tokens have no log-probabilities here)',
  path: ['echo'],
});
export type CompletionRequestBody = z.infer<typeof CompletionSchema>;
