import { z } from 'zod';
import { BATCH_STATUSES, JUDGES } from '../storage/types.js';
import { int, number, oneOf, optionalText, requestBody, seed, text, typeError } from './fields.js';
import { pageFields, PageQuerySchema } from './paging.js';
import { CRITERIA, DEFAULT_CRITERION } from './scoring/criteria.js';

/** The longest prompt, response, reference or context a request may carry (contract section 3). */
export const MAX_TEXT_CHARS = 200_000;

/** Criteria to score, deduplicated; `[overall]` when omitted. */
export const CriteriaSchema = z
  .array(z.enum(CRITERIA, { error: `criteria must be among ${CRITERIA.join(', ')}` }), { error: 'criteria must be an array' })
  .min(1, { error: 'criteria must name at least one criterion' })
  .transform((c) => [...new Set(c)])
  .default([DEFAULT_CRITERION]);

export const JudgeSchema = oneOf('judge', JUDGES).default('deterministic');

/** POST /v1/evaluate (contract section 3), both surfaces. */
export const EvaluateRequestSchema = requestBody({
  prompt: text('prompt', MAX_TEXT_CHARS),
  response: text('response', MAX_TEXT_CHARS),
  criteria: CriteriaSchema,
  reference: optionalText('reference', MAX_TEXT_CHARS),
  context: optionalText('context', MAX_TEXT_CHARS),
  judge: JudgeSchema,
});
export type EvaluateRequest = z.infer<typeof EvaluateRequestSchema>;

/**
 * POST /v1/batch-evals (contract section 5), both surfaces. Every default
 * is decided here; the run stores the result as its parameters.
 */
export const StartBatchSchema = requestBody({
  dataset_id: z.string({ error: typeError('dataset_id', 'a string') }).min(1, { error: 'dataset_id must be non-empty' }),
  criteria: CriteriaSchema,
  model: z.string({ error: 'model must be a string' }).optional(),
  concurrency: int('concurrency', 1, 16).default(4),
  max_new_tokens: int('max_new_tokens', 1, 1024).default(160),
  temperature: number('temperature', 0, 2).default(0),
  seed: seed().default(0),
  judge: JudgeSchema,
});
export type StartBatchRequest = z.infer<typeof StartBatchSchema>;

/** GET /v1/batch-evals/{id}/distribution: which criterion (the run's own criteria are checked by the service). */
export const DistributionQuerySchema = z.object({
  criterion: z.string({ error: 'criterion must be a string' }).default(DEFAULT_CRITERION),
});

/** GET /v1/batch-evals/{id}/failures: a page of records that did not pass. */
export const FailuresQuerySchema = PageQuerySchema;

/** GraphQL `batchEvals`: the runs, newest first, with optional filters and a page. */
export const BatchListSchema = z.object({
  status: oneOf('status', BATCH_STATUSES).optional(),
  dataset_id: text('dataset_id', 256).optional(),
  ...pageFields,
});
export type BatchListQuery = z.infer<typeof BatchListSchema>;
