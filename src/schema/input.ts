import type { z } from 'zod';
import { camelCase, parseInput } from '../services/validation.js';

const snakeCase = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * A GraphQL input object, validated by the same zod schema as its REST
 * request: camelCase keys become snake_case, GraphQL's nulls become
 * omissions (so defaults apply), and errors name `input.<camelCaseField>`.
 */
export function parseGraphQLInput<S extends z.ZodType>(schema: S, input: Record<string, unknown>): z.infer<S> {
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) if (v !== null && v !== undefined) raw[snakeCase(k)] = v;
  return parseInput(schema, raw, (f) => `input.${camelCase(f)}`);
}

/** GraphQL's names for the page query's fields. */
const PAGE_ARG_NAMES: Record<string, string> = { limit: 'first', cursor: 'after' };

/**
 * A list field's arguments (`first`, `after` and any filters) as the
 * services' list query, validated by the same schema as REST's query string
 * (PageQuerySchema or one that extends it: `limit`, `cursor`, filters), with
 * errors naming the GraphQL argument.
 */
export function parsePageArgs<S extends z.ZodType>(
  schema: S,
  { first, after, ...filters }: { first?: number | null; after?: string | null } & Record<string, unknown>,
): z.infer<S> {
  const raw: Record<string, unknown> = { limit: first ?? undefined, cursor: after ?? undefined };
  for (const [k, v] of Object.entries(filters)) if (v !== null && v !== undefined) raw[k] = v;
  return parseInput(schema, raw, (f) => PAGE_ARG_NAMES[f] ?? f);
}
