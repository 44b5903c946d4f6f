import type { OutputConstraint } from '../../src/engine/response-format.js';

/**
 * The ten constraints of issue 12, in increasing difficulty. Each is
 * sampled from stories260K (a model that never writes JSON by itself) in
 * the structured-output tests and compiled by bench/structured.ts. Strings
 * carry length limits and the recursive tree a bounded fan-out, so that a
 * random model's documents end well within the tests' token limit.
 */
export interface StructuredCase {
  name: string;
  constraint: OutputConstraint;
  /** What ajv validates the output against (for choice: its enum; for json: the schema itself). */
  validate: Record<string, unknown>;
}

const schemaCase = (name: string, schema: Record<string, unknown>): StructuredCase => ({ name, constraint: { type: 'json_schema', schema }, validate: schema });

export const STRUCTURED_CASES: StructuredCase[] = [
  schemaCase('flat object with enums', {
    type: 'object',
    properties: {
      color: { enum: ['red', 'green', 'blue'] },
      size: { type: 'string', enum: ['S', 'M', 'L', 'XL'] },
      ok: { type: 'boolean' },
    },
    required: ['color', 'size', 'ok'],
    additionalProperties: false,
  }),
  schemaCase('nested objects', {
    type: 'object',
    properties: {
      user: {
        type: 'object',
        properties: {
          name: { type: 'string', maxLength: 12 },
          address: {
            type: 'object',
            properties: { city: { type: 'string', maxLength: 12 }, zip: { type: 'string', pattern: '^[0-9]{5}$' } },
            required: ['city', 'zip'],
            additionalProperties: false,
          },
        },
        required: ['name', 'address'],
        additionalProperties: false,
      },
      verified: { type: 'boolean' },
    },
    required: ['user', 'verified'],
    additionalProperties: false,
  }),
  schemaCase('arrays with item limits', {
    type: 'object',
    properties: {
      tags: { type: 'array', items: { type: 'string', maxLength: 8 }, minItems: 1, maxItems: 4 },
      scores: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 100 }, maxItems: 3 },
    },
    required: ['tags', 'scores'],
    additionalProperties: false,
  }),
  schemaCase('numbers and integer ranges', {
    type: 'object',
    properties: {
      count: { type: 'integer', minimum: 1, maximum: 10 },
      offset: { type: 'integer', minimum: -50, maximum: 50 },
      year: { type: 'integer', minimum: 1900, maximum: 2100 },
      ratio: { type: 'number' },
    },
    required: ['count', 'offset', 'year', 'ratio'],
    additionalProperties: false,
  }),
  schemaCase('optional fields', {
    type: 'object',
    properties: {
      id: { type: 'integer', minimum: 0, maximum: 999 },
      nickname: { type: 'string', maxLength: 10 },
      age: { type: 'integer', minimum: 0, maximum: 120 },
      active: { type: 'boolean' },
    },
    required: ['id'],
    additionalProperties: false,
  }),
  schemaCase('anyOf and oneOf', {
    type: 'object',
    properties: {
      value: { anyOf: [{ type: 'integer', minimum: 0, maximum: 9 }, { type: 'string', maxLength: 6 }, { type: 'null' }] },
      flag: { oneOf: [{ const: 'auto' }, { type: 'boolean' }] },
      label: { type: ['string', 'null'], maxLength: 6 },
    },
    required: ['value', 'flag', 'label'],
    additionalProperties: false,
  }),
  schemaCase('recursive $defs tree', {
    $defs: {
      node: {
        type: 'object',
        properties: {
          v: { type: 'integer', minimum: 0, maximum: 99 },
          kids: { type: 'array', items: { $ref: '#/$defs/node' }, maxItems: 2 },
        },
        required: ['v', 'kids'],
        additionalProperties: false,
      },
    },
    $ref: '#/$defs/node',
  }),
  schemaCase('string length and pattern', {
    type: 'object',
    properties: {
      code: { type: 'string', pattern: '^[A-Z]{3}-[0-9]{2,4}$' },
      short: { type: 'string', minLength: 2, maxLength: 5 },
      word: { type: 'string', pattern: '^[a-z]+( [a-z]+){0,2}$' },
    },
    required: ['code', 'short', 'word'],
    additionalProperties: false,
  }),
  schemaCase('tuple with const', {
    type: 'array',
    prefixItems: [{ const: 'v1' }, { type: 'integer', minimum: 0, maximum: 3 }, { type: 'boolean' }, { enum: [1, 'two', null] }],
    items: false,
  }),
  {
    name: 'choice list',
    constraint: { type: 'choice', choices: ['positive', 'negative', 'neutral', 'mixed feelings'] },
    validate: { enum: ['positive', 'negative', 'neutral', 'mixed feelings'] },
  },
];
