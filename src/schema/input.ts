import type { z } from 'zod';
import { PageQuerySchema, type PageQuery } from '../services/paging.js';
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

/** GraphQL paging arguments (`first`, `after`) as the services' page query, validated like REST's `limit` and `cursor`. */
export function parsePageArgs(args: { first?: number | null; after?: string | null }): PageQuery {
  return parseInput(PageQuerySchema, { limit: args.first ?? undefined, cursor: args.after ?? undefined }, (f) =>
    f === 'limit' ? 'first' : f === 'cursor' ? 'after' : f,
  );
}
