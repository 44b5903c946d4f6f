import { z } from 'zod';
import { UnsupportedConstraintError } from '../engine/errors.js';
import { checkConstraint, type OutputConstraint } from '../engine/response-format.js';

/**
 * `response_format`, one schema for every surface (OpenAI's chat
 * completions, the contract's /v1/chat, GraphQL's chat input): OpenAI's
 * `text`, `json_object` and `json_schema`, plus `choice` (one of a list of
 * strings, vLLM's guided_choice) and `regex` (vLLM's guided_regex). A JSON
 * schema is checked here, so a keyword the decoder would not enforce is a
 * 400 naming it, before anything runs.
 */
export const ResponseFormatSchema = z
  .object(
    {
      type: z.enum(['text', 'json_object', 'json_schema', 'choice', 'regex'], {
        error: 'response_format.type must be one of text, json_object, json_schema, choice, regex',
      }),
      json_schema: z
        .object(
          {
            name: z.string({ error: 'response_format.json_schema.name must be a string' }).max(64, { error: 'response_format.json_schema.name must be at most 64 characters' }).optional(),
            description: z.string({ error: 'response_format.json_schema.description must be a string' }).optional(),
            schema: z.union([z.record(z.string(), z.unknown()), z.boolean()], { error: 'response_format.json_schema.schema must be a JSON schema (an object)' }).optional(),
            strict: z.boolean({ error: 'response_format.json_schema.strict must be a boolean' }).nullish(),
          },
          { error: 'response_format.json_schema must be an object' },
        )
        .optional(),
      choices: z
        .array(z.string({ error: 'response_format.choices must be an array of strings' }).min(1, { error: 'response_format.choices must be non-empty strings' }).max(1000, { error: 'response_format.choices must be at most 1000 characters each' }), {
          error: 'response_format.choices must be an array of strings',
        })
        .min(1, { error: 'response_format.choices must hold at least one string' })
        .max(256, { error: 'response_format.choices must hold at most 256 strings' })
        .optional(),
      pattern: z.string({ error: 'response_format.pattern must be a string' }).min(1, { error: 'response_format.pattern must be non-empty' }).max(1000, { error: 'response_format.pattern must be at most 1000 characters' }).optional(),
    },
    { error: 'response_format must be an object' },
  )
  .superRefine((f, ctx) => {
    let missing = false;
    const need = (ok: boolean, path: string[], message: string) => {
      if (ok) return;
      missing = true;
      ctx.addIssue({ code: 'custom', path, message });
    };
    if (f.type === 'json_schema') need(f.json_schema?.schema !== undefined, ['json_schema'], 'response_format.json_schema.schema is required for type json_schema');
    if (f.type === 'choice') need(f.choices !== undefined, ['choices'], 'response_format.choices is required for type choice');
    if (f.type === 'regex') need(f.pattern !== undefined, ['pattern'], 'response_format.pattern is required for type regex');
    if (missing) return;
    const c = toOutputConstraint(f);
    if (!c) return;
    try {
      checkConstraint(c);
    } catch (err) {
      if (!(err instanceof UnsupportedConstraintError)) throw err;
      const path = c.type === 'json_schema' ? ['json_schema', 'schema'] : c.type === 'regex' ? ['pattern'] : ['choices'];
      ctx.addIssue({ code: 'custom', path, message: err.message, params: { keyword: err.keyword } });
    }
  });

export type ResponseFormat = z.infer<typeof ResponseFormatSchema>;

/** The engine's constraint for a validated response_format; undefined for plain text. */
export function toOutputConstraint(f: ResponseFormat | null | undefined): OutputConstraint | undefined {
  if (!f) return undefined;
  switch (f.type) {
    case 'text':
      return undefined;
    case 'json_object':
      return { type: 'json_object' };
    case 'json_schema':
      return { type: 'json_schema', schema: f.json_schema?.schema ?? true };
    case 'choice':
      return { type: 'choice', choices: f.choices ?? [] };
    case 'regex':
      return { type: 'regex', pattern: f.pattern ?? '' };
  }
}
