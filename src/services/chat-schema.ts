import { z } from 'zod';
import { ResponseFormatSchema } from './response-format-schema.js';

/** Zod's message for a missing or mistyped field, in the contract's words. */
const typeError = (name: string, kind: string) => (iss: { input: unknown }) =>
  iss.input === undefined ? `${name} is required` : `${name} must be ${kind}`;

const number = (name: string, min: number, max: number) =>
  z
    .number({ error: typeError(name, 'a number') })
    .min(min, { error: `${name} must be between ${min} and ${max}` })
    .max(max, { error: `${name} must be between ${min} and ${max}` });

const int = (name: string, min: number, max: number) =>
  number(name, min, max).int({ error: `${name} must be an integer` });

/** One turn of a conversation (an addition: `messages` instead of `prompt`). */
const ChatMessageSchema = z.object(
  {
    role: z.enum(['system', 'user', 'assistant'], { error: 'role must be system, user or assistant' }),
    content: z.string({ error: typeError('content', 'a string') }).max(200_000, { error: 'content must be at most 200000 characters' }),
  },
  { error: 'each message must be an object with role and content' },
);

/**
 * The chat request of contract section 3, one schema for both surfaces
 * (snake_case keys). The addition `messages` is a conversation, read
 * through the model's chat template, in place of `prompt`: exactly one of
 * the two.
 */
export const ChatRequestSchema = z.object(
  {
    prompt: z
      .string({ error: typeError('prompt', 'a string') })
      .max(200_000, { error: 'prompt must be at most 200000 characters' })
      .refine((s) => s.trim().length > 0, { error: 'prompt must be non-empty' })
      .optional(),
    messages: z
      .array(ChatMessageSchema, { error: 'messages must be an array of messages' })
      .min(1, { error: 'messages must hold at least one message' })
      .max(1000, { error: 'messages must hold at most 1000 messages' })
      .optional(),
    max_new_tokens: int('max_new_tokens', 1, 1024).default(160),
    temperature: number('temperature', 0, 2).default(0.2),
    top_p: number('top_p', 0, 1).default(0.95),
    top_k: int('top_k', 0, 100_000).default(0),
    repetition_penalty: number('repetition_penalty', 0.01, 10).default(1),
    seed: int('seed', 0, 4_294_967_295).optional(),
    stop: z
      .union([z.string(), z.array(z.string({ error: 'stop must be an array of strings' }))], {
        error: 'stop must be an array of strings',
      })
      .transform((s) => (typeof s === 'string' ? [s] : s))
      .pipe(
        z
          .array(z.string().min(1, { error: 'stop strings must be non-empty' }).max(200, { error: 'stop strings must be at most 200 characters' }))
          .max(16, { error: 'at most 16 stop strings' }),
      )
      .default([]),
    mode: z.enum(['single', 'refine'], { error: 'mode must be "single" or "refine"' }).default('single'),
    refine_steps: int('refine_steps', 1, 3).default(1),
    critique_temperature: number('critique_temperature', 0, 2).default(0.2),
    stream: z.boolean({ error: 'stream must be a boolean' }).default(false),
    response_format: ResponseFormatSchema.optional(),
  },
  { error: 'request body must be a JSON object' },
).superRefine((r, ctx) => {
  if (r.prompt === undefined && r.messages === undefined) ctx.addIssue({ code: 'custom', path: ['prompt'], message: 'prompt is required' });
  if (r.prompt !== undefined && r.messages !== undefined) ctx.addIssue({ code: 'custom', path: ['prompt'], message: 'prompt and messages cannot both be given' });
});

export type ChatRequest = z.infer<typeof ChatRequestSchema>;
