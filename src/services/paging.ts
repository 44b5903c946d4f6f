import { z } from 'zod';

/** Page sizes of every paged list (datasets, batch failures), REST and GraphQL alike. */
export const PAGE_SIZE = { default: 20, max: 100 } as const;

/**
 * The paging fields of a list request: `limit` (REST `?limit=`, GraphQL
 * `first`) and `cursor` (REST `?cursor=`, GraphQL `after`). Query strings
 * are coerced; the cursor's content is checked by the storage's codec.
 */
export const pageFields = {
  limit: z.coerce
    .number({ error: 'limit must be a number' })
    .int({ error: 'limit must be an integer' })
    .min(1, { error: `limit must be between 1 and ${PAGE_SIZE.max}` })
    .max(PAGE_SIZE.max, { error: `limit must be between 1 and ${PAGE_SIZE.max}` })
    .default(PAGE_SIZE.default),
  cursor: z.string({ error: 'cursor is invalid' }).max(1024, { error: 'cursor is invalid' }).optional(),
};

export const PageQuerySchema = z.object(pageFields, { error: 'query must be an object' });
export type PageQuery = z.infer<typeof PageQuerySchema>;

/** A page of a list and where the next one starts (null on the last page). */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
