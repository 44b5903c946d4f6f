import { z } from 'zod';
import { enumName } from './enums.js';

interface JsonSchema {
  type?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  default?: unknown;
  enum?: unknown[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
}

// Thousands grouped from five digits on, as the contract writes them (1..1024, 200,000).
const num = (n: number) => (Math.abs(n) >= 10_000 ? n.toLocaleString('en-US', { maximumFractionDigits: 20 }) : String(n));

/** "1..1024", "at most 16 items", "at least 1 character" (`noun` singular; none for plain numbers). */
function range(min: number | undefined, max: number | undefined, noun = ''): string | null {
  const unit = (n: number) => (noun === '' ? '' : ` ${noun}${n === 1 ? '' : 's'}`);
  if (min !== undefined && max !== undefined) return `${num(min)}..${num(max)}${unit(max)}`;
  if (min !== undefined) return `at least ${num(min)}${unit(min)}`;
  if (max !== undefined) return `at most ${num(max)}${unit(max)}`;
  return null;
}

/** A default as a GraphQL client writes it: enum values by their enum names. */
function literal(value: unknown, s: JsonSchema): string {
  if (Array.isArray(value)) return `[${value.map((v) => literal(v, s.items ?? {})).join(', ')}]`;
  if (typeof value === 'string') return s.enum?.includes(value) ? enumName(value) : JSON.stringify(value);
  if (typeof value === 'number') return num(value);
  return String(value);
}

function constraints(s: JsonSchema): string[] {
  // Optional text is "string or null": the string branch holds the limits.
  const own = s.type === undefined && s.anyOf ? (s.anyOf.find((b) => b.type !== 'null') ?? s) : s;
  const parts = [
    range(own.minimum, own.maximum),
    range(own.minLength, own.maxLength, 'character'),
    range(own.minItems, own.maxItems, 'item'),
    own.items && range(own.items.minLength, own.items.maxLength, 'character')?.concat(' each'),
  ].filter((p): p is string => Boolean(p));
  const empty = Array.isArray(s.default) && s.default.length === 0;
  if (s.default !== undefined && !empty) parts.push(`default ${literal(s.default, own)}`);
  return parts;
}

/**
 * Descriptions of input fields derived from the zod schema that validates
 * them (one schema for REST and GraphQL), so ranges and defaults are never
 * restated by hand and cannot drift:
 * `fieldDocs(ChatRequestSchema)('max_new_tokens', 'Tokens to generate at most')`
 * → 'Tokens to generate at most. 1..1024, default 160.'
 * A field's JSON Schema is read as the request gives it (io: input) and, for
 * what a transform hides there (defaults after a transform, limits after a
 * pipe), as validation leaves it (io: output).
 */
export function fieldDocs<S extends z.ZodObject>(schema: S): (key: keyof S['shape'] & string, text: string) => string {
  const props = (io: 'input' | 'output') =>
    ((z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as { properties?: Record<string, JsonSchema> }).properties ?? {});
  const input = props('input');
  const output = props('output');
  return (key, text) => {
    const field: JsonSchema = { ...output[key], ...input[key] };
    if (field.default === undefined) field.default = output[key]?.default;
    const parts = constraints(field);
    return parts.length === 0 ? `${text}.` : `${text}. ${parts.join(', ').replace(/^./, (c) => c.toUpperCase())}.`;
  };
}
