import SchemaBuilder from '@pothos/core';
import RelayPlugin from '@pothos/plugin-relay';
import type { GraphQLContext } from './context.js';

/** Pothos configuration only; types live in their domain files. */
export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  DefaultFieldNullability: false;
  DefaultEdgesNullability: { list: false; items: false };
  DefaultNodeNullability: false;
  Scalars: { JSON: { Input: unknown; Output: unknown } };
}>({
  defaultFieldNullability: false,
  plugins: [RelayPlugin],
  // The relay plugin gives every list one connection shape (edges, nodes,
  // pageInfo). Only that: our ids are plain strings, so no Node interface or
  // node(id) fields; cursors are our storage codec's (see paging.ts), never the
  // plugin's offset cursors.
  relay: {
    nodeQueryOptions: false,
    nodesQueryOptions: false,
    cursorType: 'String',
    edgesFieldOptions: { nullable: { list: false, items: false }, description: 'The page, one edge per item.' },
    nodeFieldOptions: { nullable: false, description: 'The item.' },
    cursorFieldOptions: { description: 'Pass as `after` to get the items after this one.' },
    nodesOnConnection: { description: 'The items of the page (the nodes of `edges`).' },
    pageInfoFieldOptions: { description: 'Where this page is in the list.' },
    pageInfoTypeOptions: { description: 'Where a page is in its list. Pages go forward: pass `endCursor` as `after` while `hasNextPage`.' },
    hasNextPageFieldOptions: { description: 'Whether more items follow this page.' },
    hasPreviousPageFieldOptions: { description: 'Always false: lists are paged forward only (`first`, `after`).' },
    startCursorFieldOptions: { description: "The first edge's cursor; null when the page is empty." },
    endCursorFieldOptions: { description: "The last edge's cursor (pass it as `after` for the next page); null when the page is empty." },
  },
});

builder.queryType({ description: 'Reads: health, the model, embeddings, datasets, RAG indexes and search, evaluation runs, batch evaluations, metrics.' });
builder.mutationType({ description: 'Writes and generation: chat, evaluate, datasets, RAG index builds, batch evaluations.' });
builder.subscriptionType({ description: 'Streams over server-sent events (`accept: text/event-stream`).' });
