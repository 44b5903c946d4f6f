import type { z } from 'zod';
import { invalidRequest } from '../errors.js';

/**
 * Validates input with a zod schema, turning the first problem into
 * invalid_request naming the field. `fieldName` lets each surface speak its
 * own idiom (snake_case for REST, camelCase for GraphQL).
 */
export function parseInput<S extends z.ZodType>(
  schema: S,
  raw: unknown,
  fieldName: (snake: string) => string = (s) => s,
): z.infer<S> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const pathParts = issue?.path.map(String) ?? [];
  if (pathParts.length === 0) throw invalidRequest(issue?.message ?? 'Invalid request body');
  const [top = '', ...rest] = pathParts;
  const shown = fieldName(top);
  const field = [shown, ...rest].join('.');
  throw invalidRequest(fieldMessage(issue?.message ?? 'invalid value', top, shown, field), { field });
}

/**
 * The schemas' messages start with the snake_case field they are about
 * ("max_new_tokens must be between 1 and 1024"): that name is swapped for
 * the surface's own ("input.maxNewTokens must be ..."), so the field is
 * named once. A message that does not start with it (zod's defaults, "at
 * most 16 stop strings") gets the field in front.
 */
function fieldMessage(message: string, top: string, shown: string, field: string): string {
  const startsWithName = message.startsWith(top) && /^(?:$|[\s.[])/.test(message.slice(top.length));
  return startsWithName ? shown + message.slice(top.length) : `${field}: ${message}`;
}

/** snake_case → camelCase, for naming GraphQL fields in errors. */
export const camelCase = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
