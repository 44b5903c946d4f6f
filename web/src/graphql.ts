import { initGraphQLTada } from 'gql.tada';
// Generated from ../schema.graphql by `gql.tada generate-output` (npm run typecheck:web); types only.
import type { introspection } from './graphql-env.d.ts';

/**
 * Typed GraphQL documents: every operation the console sends is written
 * with this function, so `tsc -p web` checks its fields and variables
 * against schema.graphql, and `gql.tada check` validates it.
 */
export const graphql = initGraphQLTada<{
  introspection: introspection;
  scalars: { JSON: unknown; ID: string };
}>();

export type { ResultOf, VariablesOf } from 'gql.tada';
