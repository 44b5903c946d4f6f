import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConstraintCompiler, constraintKey } from '../../src/engine/constraint-compiler.js';
import { UnsupportedConstraintError } from '../../src/engine/errors.js';
import { applyTokenMask, processLogits } from '../../src/engine/logits-processors.js';
import { checkSchema, type JsonSchema } from '../../src/engine/response-format.js';
import { SeededRng } from '../../src/engine/rng.js';
import { drawToken } from '../../src/engine/sampling.js';
import { readTokenVocabulary } from '../../src/engine/token-vocabulary.js';
import { Tokenizer } from '../../src/engine/tokenizer.js';
import type { SamplingParams, TokenConstraint } from '../../src/engine/types.js';
import { ResponseFormatSchema, toOutputConstraint } from '../../src/services/response-format-schema.js';
import { parseInput } from '../../src/services/validation.js';
import { GPT2_SOURCE, gpt2Files } from '../helpers/models.js';
import { STRUCTURED_CASES } from '../helpers/structured-schemas.js';

const keywordOf = (schema: JsonSchema): string | null => {
  try {
    checkSchema(schema);
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(UnsupportedConstraintError);
    return (err as UnsupportedConstraintError).keyword;
  }
};

describe('schema keyword checks', () => {
  it('accepts every keyword of the supported list, annotations included', () => {
    for (const c of STRUCTURED_CASES) if (c.constraint.type === 'json_schema') expect(keywordOf(c.constraint.schema), c.name).toBeNull();
    expect(keywordOf({ type: 'object', title: 't', description: 'd', $schema: 'x', properties: { a: { type: 'string', default: 'x', examples: ['y'] } } })).toBeNull();
    expect(keywordOf({ definitions: { a: { type: 'integer', minimum: 1 } }, items: { $ref: '#/definitions/a' }, type: 'array' })).toBeNull();
    expect(keywordOf(true)).toBeNull();
  });

  it('refuses what it would not enforce, naming the keyword, however deep', () => {
    expect(keywordOf({ type: 'string', format: 'email' })).toBe('format');
    expect(keywordOf({ type: 'object', properties: { a: { type: 'array', items: { uniqueItems: true } } } })).toBe('uniqueItems');
    expect(keywordOf({ anyOf: [{ type: 'integer' }, { not: { type: 'null' } }] })).toBe('not');
    expect(keywordOf({ $defs: { x: { allOf: [{ type: 'string' }] } }, $ref: '#/$defs/x' })).toBe('allOf');
    expect(keywordOf({ type: 'integer', exclusiveMinimum: 0 })).toBe('exclusiveMinimum');
    expect(keywordOf({ type: 'object', patternProperties: {} })).toBe('patternProperties');
    // Ranges on non-integers, a pattern beside a length, non-simple regular expressions, remote references.
    expect(keywordOf({ type: 'number', maximum: 2 })).toBe('maximum');
    expect(keywordOf({ minimum: 2 })).toBe('minimum');
    expect(keywordOf({ type: 'string', pattern: '^a+$', maxLength: 3 })).toBe('pattern');
    expect(keywordOf({ type: 'string', pattern: '(a)\\1' })).toBe('pattern');
    expect(keywordOf({ type: 'string', pattern: 'a+?' })).toBe('pattern');
    expect(keywordOf({ type: 'string', pattern: '[' })).toBe('pattern');
    expect(keywordOf({ $ref: 'other.json#/a' })).toBe('$ref');
    expect(keywordOf({ $ref: '#/$defs/missing' })).toBe('$ref');
    expect(keywordOf({ type: 'date' })).toBe('type');
    expect(keywordOf({ type: 'array', items: [{ type: 'string' }] })).toBe('items');
    // Property names the grammar compiler aborts on or writes unescaped; nesting it would recurse too deep on.
    expect(keywordOf({ type: 'object', properties: { 'a"b': { type: 'string' } } })).toBe('properties');
    expect(keywordOf({ type: 'object', required: ['tab\there'] })).toBe('properties');
    let deep: JsonSchema = { type: 'integer' };
    for (let i = 0; i < 100; i++) deep = { type: 'array', items: deep };
    expect(() => checkSchema(deep)).toThrow(/nested deeper than 64/);
  });

  it('response_format validation names the field and the keyword; text is no constraint', () => {
    const bad = () => parseInput(ResponseFormatSchema, { type: 'json_schema', json_schema: { schema: { type: 'string', format: 'uri' } } }, (f) => `response_format.${f}`);
    expect(bad).toThrow(/response_format\.json_schema\.schema: JSON schema keyword "format"/);
    expect(() => parseInput(ResponseFormatSchema, { type: 'json_schema' })).toThrow(/json_schema\.schema is required/);
    expect(() => parseInput(ResponseFormatSchema, { type: 'choice', choices: [] })).toThrow(/at least one/);
    expect(() => parseInput(ResponseFormatSchema, { type: 'xml' })).toThrow(/response_format\.type/);
    expect(toOutputConstraint(parseInput(ResponseFormatSchema, { type: 'text' }))).toBeUndefined();
    expect(toOutputConstraint(parseInput(ResponseFormatSchema, { type: 'regex', pattern: 'a|b' }))).toEqual({ type: 'regex', pattern: 'a|b' });
  });

  it('equal constraints share a cache key whatever their key order', () => {
    const a = constraintKey({ type: 'json_schema', schema: { type: 'object', properties: { x: { type: 'string' } } } });
    const b = constraintKey({ schema: { properties: { x: { type: 'string' } }, type: 'object' }, type: 'json_schema' });
    expect(a).toBe(b);
    expect(constraintKey({ type: 'json_schema', schema: { type: 'string' } })).not.toBe(a);
  });
});

describe('token mask', () => {
  it('clears every token whose bit is 0 (32 a word, lowest bit first) and the ids past the vocabulary', () => {
    const logits = new Float32Array(70).fill(1);
    const mask = new Int32Array(3);
    mask[0] = 0b101; // ids 0 and 2
    mask[1] = -1; // 32..63 all allowed
    mask[2] = 1 << 1; // id 65
    applyTokenMask(logits, mask, 66);
    const allowed = [...logits.keys()].filter((i) => logits[i] === 1);
    expect(allowed).toEqual([0, 2, ...Array.from({ length: 32 }, (_, i) => 32 + i), 65]);
  });

  it('comes after bias and penalties: a masked token is never drawn, however biased; min_tokens gives way to the grammar', () => {
    const p: SamplingParams = { maxNewTokens: 5, temperature: 1, topP: 1, topK: 0, repetitionPenalty: 1, seed: 1, stop: [], logitBias: new Map([[3, 100]]), minTokens: 5 };
    const onlyEos: TokenConstraint = {
      prepare: async () => undefined,
      mask: (l) => applyTokenMask(l, Int32Array.from([1 << 2]), 4),
      accept: () => true,
      terminated: false,
      dispose: () => undefined,
    };
    const rng = new SeededRng(3);
    for (let i = 0; i < 20; i++) {
      const l = Float32Array.from([5, 5, 0, 5]);
      processLogits(l, p, { seen: new Set(), generated: new Map(), count: 0 }, new Set([2]), onlyEos);
      expect(drawToken(l, p, rng)).toBe(2);
    }
  });
});

describe('token vocabularies for the grammar engine', () => {
  it('reads byte-level, byte-fallback and raw vocabularies; added tokens are never produced', () => {
    const byteLevel = readTokenVocabulary({ model: { type: 'BPE', vocab: { a: 0, 'Ġb': 1 } }, decoder: { type: 'ByteLevel' }, added_tokens: [{ id: 2, content: '<|endoftext|>' }] }, 4);
    expect(byteLevel).toEqual({ tokens: ['a', 'Ġb', '', ''], kind: 'byte_level', prependSpace: false });
    const sp = readTokenVocabulary(
      {
        model: { type: 'BPE', vocab: { '<unk>': 0, '<0x41>': 1, '▁x': 2 }, byte_fallback: true },
        normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }] },
        decoder: { type: 'Sequence', decoders: [{ type: 'Replace' }, { type: 'ByteFallback' }] },
        added_tokens: [{ id: 0, content: '<unk>' }],
      },
      3,
    );
    expect(sp).toEqual({ tokens: ['', '<0x41>', '▁x'], kind: 'byte_fallback', prependSpace: true });
    const unigram = readTokenVocabulary({ model: { type: 'Unigram', vocab: [['x', 0], ['y', -1]] } }, 2);
    expect(unigram).toEqual({ tokens: ['x', 'y'], kind: 'raw', prependSpace: false });
  });

  // GPT-2's real 50,257-token byte-level vocabulary: a document's own tokenization walks the grammar, each token allowed by the step's mask.
  it.skipIf(!gpt2Files.present)(gpt2Files.title('GPT-2 byte-level vocabulary: a valid document tokenized by the real tokenizer is accepted token by token'), async () => {
    const json = JSON.parse(fs.readFileSync(path.join(GPT2_SOURCE, 'tokenizer.json'), 'utf8'));
    const vocab = readTokenVocabulary(json, 50257);
    expect(vocab.kind).toBe('byte_level');
    const compiler = await ConstraintCompiler.create(vocab, [50256]);
    const schema = STRUCTURED_CASES[1]!.validate;
    const compiled = await compiler.compile({ type: 'json_schema', schema });
    const tokenizer = await Tokenizer.fromDirectory(GPT2_SOURCE);
    const text = '{"user": {"name": "Ann é ü", "address": {"city": "Köln", "zip": "50667"}}, "verified": true}';
    const ids = tokenizer.encodeRaw(text);
    const m = await compiled.matcher();
    for (const id of [...ids, 50256]) {
      await m.prepare();
      const l = new Float32Array(50257);
      m.mask(l);
      expect(l[id], `token ${id} ${JSON.stringify(tokenizer.decode([id]))}`).toBe(0);
      expect(m.accept(id)).toBe(true);
    }
    expect(m.terminated).toBe(true);
    // A token that breaks the document is masked: after '{"user": {"name": "Ann é ü", ' only '"address"' may come.
    const m2 = await compiled.matcher();
    for (const id of tokenizer.encodeRaw('{"user": {"name": "A", ')) m2.accept(id);
    await m2.prepare();
    const l = new Float32Array(50257);
    m2.mask(l);
    const open = [...l.keys()].filter((i) => l[i] === 0).map((i) => tokenizer.decode([i]));
    expect(open.length).toBeGreaterThan(0);
    for (const t of open) expect('"address"'.startsWith(t), t).toBe(true);
    m.dispose();
    m2.dispose();
  }, 60_000);
});
