import { z } from 'zod';
import { RAG_INDEX_STATUSES } from '../storage/types.js';
import { int, number, oneOf, requestBody, seed, text, typeError } from './fields.js';
import { pageFields } from './paging.js';
import { DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_TOKENS } from './rag/chunker.js';

/** How retrieval ranks chunks: both retrievers fused (RRF), or one alone. */
export const RAG_MODES = ['hybrid', 'lexical', 'dense'] as const;
export type RagMode = (typeof RAG_MODES)[number];

/** The longest query (contract section 3 leaves it open; a question, not a document). */
export const MAX_QUERY_CHARS = 4000;
export const MAX_FILTER_KEYS = 16;
export const CHUNK_TOKENS_RANGE = { min: 16, max: 2048 } as const;

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isScalar = (v: unknown) => v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));

/** `filter`: document metadata keys and the exact values they must hold (strings, numbers, booleans, null). */
export const MetadataFilterSchema = z
  .custom<Record<string, string | number | boolean | null>>(isPlainObject, { error: 'filter must be an object of metadata keys and values' })
  .refine((f) => Object.keys(f).length <= MAX_FILTER_KEYS, { error: `filter must have at most ${MAX_FILTER_KEYS} keys`, abort: true })
  .refine((f) => Object.keys(f).every((k) => k.length > 0 && k.length <= 256), { error: 'filter keys must have 1..256 characters', abort: true })
  .refine((f) => Object.values(f).every(isScalar), { error: 'filter values must be strings, numbers, booleans or null' });

const id = (name: string) => z.string({ error: typeError(name, 'a string') }).min(1, { error: `${name} must be non-empty` }).max(256, { error: `${name} must be at most 256 characters` });

const indexRef = {
  index_id: id('index_id').optional(),
  dataset_id: id('dataset_id').optional(),
};

/** An index named by its id, or by its dataset (that dataset's newest ready index): exactly one of the two. */
const oneIndexRef = <T extends { index_id?: string | undefined; dataset_id?: string | undefined }>(r: T, ctx: z.RefinementCtx) => {
  if (r.index_id === undefined && r.dataset_id === undefined) {
    ctx.addIssue({ code: 'custom', message: 'dataset_id or index_id is required', path: ['dataset_id'] });
  } else if (r.index_id !== undefined && r.dataset_id !== undefined) {
    ctx.addIssue({ code: 'custom', message: 'give dataset_id or index_id, not both', path: ['index_id'] });
  }
};

/** POST /v1/rag/search and GraphQL ragSearch: retrieval without generation. */
export const RagSearchSchema = requestBody({
  query: text('query', MAX_QUERY_CHARS),
  ...indexRef,
  top_k: int('top_k', 1, 50).default(5),
  mode: oneOf('mode', RAG_MODES).default('hybrid'),
  filter: MetadataFilterSchema.optional(),
}).superRefine(oneIndexRef);
export type RagSearchRequest = z.infer<typeof RagSearchSchema>;

/** POST /v1/rag/indexes and GraphQL buildRagIndex: build, or rebuild, an index of a rag_corpus dataset. */
export const BuildRagIndexSchema = requestBody({
  dataset_id: id('dataset_id'),
  chunk_tokens: int('chunk_tokens', CHUNK_TOKENS_RANGE.min, CHUNK_TOKENS_RANGE.max).default(DEFAULT_CHUNK_TOKENS),
  chunk_overlap: int('chunk_overlap', 0, CHUNK_TOKENS_RANGE.max / 2).default(DEFAULT_CHUNK_OVERLAP),
}).superRefine((r, ctx) => {
  if (r.chunk_overlap > r.chunk_tokens / 2) {
    ctx.addIssue({ code: 'custom', message: 'chunk_overlap must be at most half of chunk_tokens', path: ['chunk_overlap'] });
  }
});
export type BuildRagIndexRequest = z.infer<typeof BuildRagIndexSchema>;

/** GET /v1/rag/indexes and GraphQL ragIndexes: filters and a page. */
export const RagIndexListSchema = z.object({
  dataset_id: id('dataset_id').optional(),
  status: oneOf('status', RAG_INDEX_STATUSES).optional(),
  ...pageFields,
});
export type RagIndexListQuery = z.infer<typeof RagIndexListSchema>;

/**
 * POST /v1/rag (alias /v1/rag/query) and GraphQL rag / ragStream: retrieval,
 * then an answer from the served model that cites the retrieved chunks.
 */
export const RagQuerySchema = requestBody({
  query: text('query', MAX_QUERY_CHARS),
  ...indexRef,
  top_k: int('top_k', 1, 50).default(5),
  mode: oneOf('mode', RAG_MODES).default('hybrid'),
  filter: MetadataFilterSchema.optional(),
  max_new_tokens: int('max_new_tokens', 1, 1024).default(160),
  temperature: number('temperature', 0, 2).default(0.2),
  seed: seed().optional(),
  stream: z.boolean({ error: 'stream must be a boolean' }).default(false),
}).superRefine(oneIndexRef);
export type RagQueryRequest = z.infer<typeof RagQuerySchema>;
