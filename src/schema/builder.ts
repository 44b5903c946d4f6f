import SchemaBuilder from '@pothos/core';
import type { GraphQLContext } from './context.js';

/** Pothos configuration only; types live in their domain files. */
export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  DefaultFieldNullability: false;
  Scalars: { JSON: { Input: unknown; Output: unknown } };
}>({
  defaultFieldNullability: false,
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});
