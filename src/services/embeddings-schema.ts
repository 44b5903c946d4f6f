import { z } from 'zod';
import { int, oneOf, requestBody, typeError } from './fields.js';

/** Most inputs in one request (OpenAI's limit is 2,048; text-embeddings-inference's default 512 per batch). */
export const MAX_EMBEDDING_INPUTS = 256;
/** Most characters of one input: far beyond any model's token limit, so only abuse meets it. */
export const MAX_EMBEDDING_INPUT_CHARS = 200_000;

export const ENCODING_FORMATS = ['float', 'base64'] as const;
export type EncodingFormat = (typeof ENCODING_FORMATS)[number];

const boolean = (name: string) => z.boolean({ error: typeError(name, 'a boolean') });

const input = z
  .union([z.string(), z.array(z.string({ error: 'input must be a string or an array of strings' }))], {
    error: typeError('input', 'a string or an array of strings'),
  })
  .refine((value) => typeof value === 'string' || value.length >= 1, { error: 'input must have at least 1 item' })
  .refine((value) => typeof value === 'string' || value.length <= MAX_EMBEDDING_INPUTS, {
    error: `input must have at most ${MAX_EMBEDDING_INPUTS} items`,
  });

/**
 * Each input's own problem is reported under its own name, `input[3]` (or
 * `input` for a single string), as a too-long input is, rather than zod's
 * `input.3`: the issue's path is that one name, so both surfaces name it as
 * they name top-level fields.
 */
function checkItems(body: { input: string | string[] }, ctx: z.RefinementCtx): void {
  const single = typeof body.input === 'string';
  const list = typeof body.input === 'string' ? [body.input] : body.input;
  list.forEach((text, i) => {
    const name = single ? 'input' : `input[${i}]`;
    if (text.trim().length === 0) ctx.addIssue({ code: 'custom', message: `${name} must be non-empty`, path: [name] });
    else if (text.length > MAX_EMBEDDING_INPUT_CHARS) {
      ctx.addIssue({ code: 'custom', message: `${name} must be at most ${MAX_EMBEDDING_INPUT_CHARS} characters`, path: [name] });
    }
  });
}

/**
 * The embeddings request of contract section 3 (OpenAI's shape), one schema
 * for REST and GraphQL (snake_case keys): `input` a string or 1..256
 * non-blank strings, `model` optional (it must name the served embedding
 * model), `normalize` (default true), `truncate` (default false: a too-long
 * input is a 400), `encoding_format` and `dimensions` as OpenAI has them.
 * OpenAI's `user` and other unknown fields are ignored.
 */
export const EmbeddingsRequestSchema = requestBody({
  input,
  model: z.string({ error: typeError('model', 'a string') }).max(256, { error: 'model must be at most 256 characters' }).nullish(),
  normalize: boolean('normalize').default(true),
  truncate: boolean('truncate').default(false),
  encoding_format: oneOf('encoding_format', ENCODING_FORMATS).default('float'),
  dimensions: int('dimensions', 1, 65_536).nullish(),
}).superRefine(checkItems);

export type EmbeddingsRequest = z.infer<typeof EmbeddingsRequestSchema>;
