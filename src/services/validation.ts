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
  const field = pathParts.map((p, i) => (i === 0 ? fieldName(p) : p)).join('.');
  throw invalidRequest(`${field}: ${issue?.message ?? 'invalid value'}`, { field });
}

/** snake_case → camelCase, for naming GraphQL fields in errors. */
export const camelCase = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
