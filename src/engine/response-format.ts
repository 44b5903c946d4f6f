import { UnsupportedConstraintError } from './errors.js';

/**
 * What a generation is constrained to. Every surface translates its own
 * request shape (OpenAI's response_format, the contract's, GraphQL's input)
 * into one of these.
 */
export type OutputConstraint =
  /** Any JSON object. */
  | { type: 'json_object' }
  /** A JSON document valid against this schema (the keywords of SUPPORTED_KEYWORDS only). */
  | { type: 'json_schema'; schema: JsonSchema; name?: string }
  /** Exactly one of these strings (vLLM's guided_choice). */
  | { type: 'choice'; choices: string[] }
  /** Text matching this regular expression as a whole (vLLM's guided_regex). */
  | { type: 'regex'; pattern: string };

export type JsonSchema = boolean | { [key: string]: unknown };

/**
 * The JSON Schema keywords whose constraint the decoder enforces, each with
 * the types it applies to (undefined: any). `minimum`/`maximum` are
 * enforced for integers only, and `pattern` not together with a length.
 */
export const SUPPORTED_KEYWORDS: readonly string[] = [
  'type',
  'properties',
  'required',
  'additionalProperties',
  'enum',
  'const',
  'anyOf',
  'oneOf',
  'items',
  'prefixItems',
  'minItems',
  'maxItems',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'pattern',
  '$ref',
  '$defs',
  'definitions',
];

/** Keywords that describe and never constrain: accepted and ignored. */
export const ANNOTATIONS: readonly string[] = ['title', 'description', '$schema', '$id', '$comment', 'default', 'examples', 'deprecated', 'readOnly', 'writeOnly'];

const TYPES = new Set(['object', 'array', 'string', 'number', 'integer', 'boolean', 'null']);

const SUPPORTED = new Set(SUPPORTED_KEYWORDS);
const IGNORED = new Set(ANNOTATIONS);

/** Regular-expression syntax beyond "simple": lookaround, back-references, word boundaries, lazy or possessive quantifiers, named groups. */
const UNSUPPORTED_REGEX = /\(\?[=!<:]|\\[1-9bBkpPQE]|[*+?}][?+]/;

/**
 * Checks that a regular expression is of the simple kind the grammar
 * compiler turns into a grammar exactly (character classes, escapes,
 * groups, alternation, quantifiers, anchors); throws naming the feature otherwise.
 */
export function checkPattern(pattern: string, path: string): void {
  try {
    new RegExp(pattern, 'u');
  } catch (err) {
    throw new UnsupportedConstraintError(`${path} is not a valid regular expression: ${(err as Error).message}`, 'pattern', path);
  }
  const m = UNSUPPORTED_REGEX.exec(pattern);
  if (m) throw new UnsupportedConstraintError(`${path} uses "${m[0]}", which is beyond the simple regular expressions supported`, 'pattern', path);
}

/**
 * Walks a JSON schema and throws UnsupportedConstraintError at the first
 * keyword the decoder would not enforce, naming it and where it is: a
 * schema is either enforced whole or refused, never partly.
 */
export function checkSchema(schema: JsonSchema): void {
  walk(schema, '#', schema, 0);
}

/** Deepest nesting of schemas accepted (the grammar compiler recurses over it). */
export const MAX_SCHEMA_DEPTH = 64;

/** Characters the grammar compiler cannot put in a property name: it aborts on some and writes others unescaped (invalid JSON). */
const UNSAFE_NAME = /["\\\u0000-\u001f\u007f]/;

function walk(s: unknown, path: string, root: JsonSchema, depth: number): void {
  if (depth > MAX_SCHEMA_DEPTH) throw new UnsupportedConstraintError(`schemas nested deeper than ${MAX_SCHEMA_DEPTH} levels (at ${path}) are not supported`, null, path);
  if (typeof s === 'boolean') return;
  if (typeof s !== 'object' || s === null || Array.isArray(s)) {
    throw new UnsupportedConstraintError(`${path} must be a schema (an object or a boolean)`, null, path);
  }
  const o = s as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (IGNORED.has(key)) continue;
    if (!SUPPORTED.has(key)) throw new UnsupportedConstraintError(`JSON schema keyword "${key}" (at ${path}) is not supported`, key, path);
  }
  const types = o.type === undefined ? undefined : Array.isArray(o.type) ? o.type : [o.type];
  if (types) {
    for (const t of types) {
      if (typeof t !== 'string' || !TYPES.has(t)) throw new UnsupportedConstraintError(`${path}/type: "${String(t)}" is not a JSON schema type`, 'type', path);
    }
  }
  for (const k of ['minimum', 'maximum'] as const) {
    if (o[k] === undefined) continue;
    if (typeof o[k] !== 'number') throw new UnsupportedConstraintError(`${path}/${k} must be a number`, k, path);
    // The grammar compiler's ranges are exact for integers only; a range on a non-integer number is refused rather than half-enforced.
    if (!types || types.some((t) => t !== 'integer')) {
      throw new UnsupportedConstraintError(`JSON schema keyword "${k}" (at ${path}) is supported for type "integer" only`, k, path);
    }
    if (!Number.isInteger(o[k])) throw new UnsupportedConstraintError(`${path}/${k} must be an integer for type "integer"`, k, path);
  }
  for (const k of ['minItems', 'maxItems', 'minLength', 'maxLength'] as const) {
    const v = o[k];
    if (v !== undefined && !(typeof v === 'number' && Number.isInteger(v) && v >= 0)) {
      throw new UnsupportedConstraintError(`${path}/${k} must be a non-negative integer`, k, path);
    }
  }
  if (o.pattern !== undefined) {
    if (typeof o.pattern !== 'string') throw new UnsupportedConstraintError(`${path}/pattern must be a string`, 'pattern', path);
    // The grammar compiler drops length limits beside a pattern: refuse the pair instead.
    if (o.minLength !== undefined || o.maxLength !== undefined) {
      throw new UnsupportedConstraintError(`JSON schema keyword "pattern" together with minLength/maxLength (at ${path}) is not supported; put the length in the pattern`, 'pattern', path);
    }
    checkPattern(o.pattern, `${path}/pattern`);
  }
  if (o.required !== undefined && !(Array.isArray(o.required) && o.required.every((r) => typeof r === 'string'))) {
    throw new UnsupportedConstraintError(`${path}/required must be an array of strings`, 'required', path);
  }
  for (const name of [...Object.keys(typeof o.properties === 'object' && o.properties !== null ? o.properties : {}), ...((o.required as string[] | undefined) ?? [])]) {
    if (UNSAFE_NAME.test(name)) {
      throw new UnsupportedConstraintError(`${path}: property name ${JSON.stringify(name)} holds a quote, a backslash or a control character, which is not supported`, 'properties', path);
    }
  }
  if (o.enum !== undefined && !(Array.isArray(o.enum) && o.enum.length > 0)) {
    throw new UnsupportedConstraintError(`${path}/enum must be a non-empty array`, 'enum', path);
  }
  if (o.$ref !== undefined) {
    if (typeof o.$ref !== 'string' || !o.$ref.startsWith('#')) {
      throw new UnsupportedConstraintError(`${path}/$ref: only local references ("#/$defs/...") are supported`, '$ref', path);
    }
    if (resolvePointer(root, o.$ref) === undefined) throw new UnsupportedConstraintError(`${path}/$ref: "${o.$ref}" does not resolve`, '$ref', path);
  }
  const sub = (v: unknown, p: string) => walk(v, p, root, depth + 1);
  for (const k of ['properties', '$defs', 'definitions'] as const) {
    const v = o[k];
    if (v === undefined) continue;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UnsupportedConstraintError(`${path}/${k} must be an object`, k, path);
    for (const [name, child] of Object.entries(v)) sub(child, `${path}/${k}/${name}`);
  }
  for (const k of ['anyOf', 'oneOf', 'prefixItems'] as const) {
    const v = o[k];
    if (v === undefined) continue;
    if (!Array.isArray(v) || v.length === 0) throw new UnsupportedConstraintError(`${path}/${k} must be a non-empty array of schemas`, k, path);
    v.forEach((child, i) => sub(child, `${path}/${k}/${i}`));
  }
  if (o.items !== undefined) {
    if (Array.isArray(o.items)) throw new UnsupportedConstraintError(`${path}/items as an array is draft-07's tuple form; use prefixItems`, 'items', path);
    sub(o.items, `${path}/items`);
  }
  if (o.additionalProperties !== undefined) sub(o.additionalProperties, `${path}/additionalProperties`);
}

/** The schema a local JSON pointer ("#/$defs/node") names, or undefined. */
function resolvePointer(root: JsonSchema, ref: string): unknown {
  if (ref === '#') return root;
  if (!ref.startsWith('#/')) return undefined;
  let at: unknown = root;
  for (const raw of ref.slice(2).split('/')) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (typeof at !== 'object' || at === null) return undefined;
    at = (at as Record<string, unknown>)[key];
  }
  return at;
}

/**
 * Largest JSON schema accepted, as JSON text. Compiling runs on the event
 * loop (synchronous WebAssembly), so its cost is bounded by the schema's size.
 */
export const MAX_SCHEMA_CHARS = 32_768;

/** Checks a constraint as a whole (throws UnsupportedConstraintError); the caller has checked its shape. */
export function checkConstraint(c: OutputConstraint): void {
  if (c.type === 'json_schema' && JSON.stringify(c.schema).length > MAX_SCHEMA_CHARS) {
    throw new UnsupportedConstraintError(`JSON schemas longer than ${MAX_SCHEMA_CHARS} characters are not supported`, null, '#');
  }
  if (c.type === 'json_schema') checkSchema(c.schema);
  else if (c.type === 'regex') checkPattern(c.pattern, 'regex');
  else if (c.type === 'choice' && c.choices.length === 0) throw new UnsupportedConstraintError('choice must hold at least one string', 'choice', 'choice');
}
