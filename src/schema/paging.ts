import type { ArgBuilder } from '@pothos/core';
import type { Page } from '../services/paging.js';
import { PageQuerySchema } from '../services/paging.js';
import type { CursorCodec } from '../storage/cursor.js';
import { builder } from './builder.js';
import { fieldDocs } from './describe.js';

type Types = typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never;

const pageDocs = fieldDocs(PageQuerySchema);

/**
 * The paging arguments of every list: `first` and `after` (REST's `limit`
 * and `cursor`). Forward only, as the keyset pages of the services are, so
 * relay's `last` and `before` are not offered (t.connection would add them;
 * connections are built with builder.connectionObject for that reason).
 */
export const pageArgs = (t: ArgBuilder<Types>) => ({
  first: t.int({ description: pageDocs('limit', 'How many items the page holds at most') }),
  after: t.string({ description: pageDocs('cursor', "Start after this cursor: an edge's `cursor` or `pageInfo.endCursor` of an earlier page") }),
});

/** A page as a relay connection (the fields every connection type has). */
export interface Connection<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
}

/**
 * A service's page as a relay connection. Each edge's cursor is the
 * position of its item in the storage's own codec (the one the service
 * decodes `after` with), so resuming after any edge works, and the last
 * edge's cursor is the page's nextCursor whenever there is a next page.
 */
export function connectionFrom<T, P>(page: Page<T>, codec: CursorCodec<P>, positionOf: (item: T) => P): Connection<T> {
  const edges = page.items.map((node) => ({ cursor: codec.encode(positionOf(node)), node }));
  return {
    edges,
    pageInfo: {
      hasNextPage: page.nextCursor !== null,
      hasPreviousPage: false,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
  };
}
