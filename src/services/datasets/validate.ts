import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { DatasetType } from '../../storage/types.js';
import { CRITERIA } from '../scoring/criteria.js';
import { DATASET_LIMITS as L } from './limits.js';

export type RecordErrorCode =
  | 'missing_required_field'
  | 'invalid_field_type'
  | 'value_out_of_range'
  | 'string_too_long'
  | 'invalid_enum_value'
  | 'duplicate_record_id'
  | 'record_too_large'
  | 'invalid_encoding'
  | 'unsupported_field';

/** A record-level problem, as contract section 4 reports it. */
export interface RecordError {
  index: number;
  record_id: string | null;
  code: RecordErrorCode;
  message: string;
  path: string;
  severity: 'error';
}

type Json = unknown;
type Obj = Record<string, Json>;

const isObj = (v: Json): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A lone surrogate or a NUL cannot be stored faithfully (and is never meant). */
export function badEncoding(s: string): boolean {
  if (s.includes('\u0000')) return true;
  return LONE_SURROGATE.test(s);
}

/**
 * True when a JSON value nests objects and arrays more than `max` levels
 * deep ({} and [] are one level). Iterative, and it stops at the first
 * branch past `max`: a client's value nested 100,000 deep costs little and
 * cannot overflow the stack, as a recursive walk or JSON.stringify would.
 * Check this before anything recursive walks a value from a client.
 */
export function nestedDeeperThan(v: Json, max: number): boolean {
  const stack: Array<{ value: Json; depth: number }> = [{ value: v, depth: 0 }];
  for (let top = stack.pop(); top; top = stack.pop()) {
    const { value, depth } = top;
    if (typeof value !== 'object' || value === null) continue;
    if (depth === max) return true;
    for (const child of Array.isArray(value) ? value : Object.values(value)) stack.push({ value: child, depth: depth + 1 });
  }
  return false;
}

/** Finds the first badly encoded string anywhere in a JSON value; returns its path. */
function findBadString(v: Json, path: string): string | null {
  if (typeof v === 'string') return badEncoding(v) ? path : null;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = findBadString(v[i], `${path}[${i}]`);
      if (p) return p;
    }
    return null;
  }
  if (isObj(v)) {
    for (const [k, x] of Object.entries(v)) {
      if (badEncoding(k)) return `${path}.${k}`;
      const p = findBadString(x, `${path}.${k}`);
      if (p) return p;
    }
  }
  return null;
}

/** JSON.stringify recurses: only for values whose depth is already checked (nestedDeeperThan). */
export const byteLength = (v: Json) => Buffer.byteLength(JSON.stringify(v) ?? '', 'utf8');

/** The deepest a valid record goes: itself, then its metadata (the deepest of its fields). */
const MAX_RECORD_DEPTH = 1 + L.maxMetadataDepth;

class RecordProblem extends Error {
  constructor(
    readonly code: RecordErrorCode,
    message: string,
    readonly path: string,
  ) {
    super(message);
  }
}

const fail = (code: RecordErrorCode, message: string, path: string): never => {
  throw new RecordProblem(code, message, path);
};

function allowOnly(o: Obj, allowed: readonly string[], path: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) fail('unsupported_field', `unsupported field ${path}${k}`, `${path}${k}`);
  }
}

function str(o: Obj, key: string, path: string, opts: { required: boolean; max: number; min?: number }): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) {
    if (opts.required) fail('missing_required_field', `${path} is required`, path);
    return undefined;
  }
  if (typeof v !== 'string') fail('invalid_field_type', `${path} must be a string`, path);
  const s = v as string;
  if ((opts.min ?? 0) > 0 && s.trim().length < (opts.min ?? 0)) {
    fail(opts.required ? 'missing_required_field' : 'value_out_of_range', `${path} must be non-empty`, path);
  }
  if (s.length > opts.max) fail('string_too_long', `${path} is longer than ${opts.max} characters`, path);
  return s;
}

function metadata(o: Obj, key: string, path: string): Obj {
  const v = o[key];
  if (v === undefined || v === null) return {};
  if (!isObj(v)) fail('invalid_field_type', `${path} must be an object`, path);
  const m = v as Obj;
  if (nestedDeeperThan(m, L.maxMetadataDepth)) fail('value_out_of_range', `${path} is nested deeper than ${L.maxMetadataDepth}`, path);
  if (byteLength(m) > L.maxRecordMetadataBytes) fail('record_too_large', `${path} is larger than ${L.maxRecordMetadataBytes} bytes`, path);
  return m;
}

function recordIdOf(o: Obj, key: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' && Number.isInteger(v)) return String(v);
  if (typeof v !== 'string') fail('invalid_field_type', `${key} must be a string`, key);
  const s = (v as string).trim();
  if (s.length === 0) fail('value_out_of_range', `${key} must be non-empty`, key);
  if (s.length > L.maxRecordIdChars) fail('string_too_long', `${key} is longer than ${L.maxRecordIdChars} characters`, key);
  return s;
}

/** The normalized eval record that is stored. */
export interface EvalRecordData {
  record_id: string;
  input: { prompt: string };
  reference: { answer: string } | null;
  tags: string[];
  expected: { max_latency_ms?: number; required_criteria?: string[] };
  metadata: Obj;
}

export interface CorpusRecordData {
  doc_id: string;
  text: string;
  metadata: Obj;
}

function evalRecord(o: Obj, index: number): EvalRecordData {
  allowOnly(o, ['record_id', 'input', 'reference', 'tags', 'expected', 'metadata'], '');
  const recordId = recordIdOf(o, 'record_id') ?? String(index + 1);
  const input = o.input;
  if (input === undefined || input === null) fail('missing_required_field', 'input.prompt is required', 'input.prompt');
  if (!isObj(input)) fail('invalid_field_type', 'input must be an object', 'input');
  allowOnly(input as Obj, ['prompt'], 'input.');
  const prompt = str(input as Obj, 'prompt', 'input.prompt', { required: true, max: L.maxPromptChars, min: 1 })!;
  let reference: EvalRecordData['reference'] = null;
  if (o.reference !== undefined && o.reference !== null) {
    if (!isObj(o.reference)) fail('invalid_field_type', 'reference must be an object', 'reference');
    allowOnly(o.reference as Obj, ['answer'], 'reference.');
    const answer = str(o.reference as Obj, 'answer', 'reference.answer', { required: true, max: L.maxPromptChars });
    reference = { answer: answer! };
  }
  const tags: string[] = [];
  if (o.tags !== undefined && o.tags !== null) {
    if (!Array.isArray(o.tags)) fail('invalid_field_type', 'tags must be an array of strings', 'tags');
    const arr = o.tags as Json[];
    if (arr.length > L.maxTags) fail('value_out_of_range', `at most ${L.maxTags} tags`, 'tags');
    arr.forEach((t, i) => {
      if (typeof t !== 'string') fail('invalid_field_type', 'tags must be strings', `tags[${i}]`);
      const s = t as string;
      if (s.length < L.minTagChars) fail('value_out_of_range', `tags must have ${L.minTagChars}..${L.maxTagChars} characters`, `tags[${i}]`);
      if (s.length > L.maxTagChars) fail('string_too_long', `tags must have at most ${L.maxTagChars} characters`, `tags[${i}]`);
      tags.push(s);
    });
  }
  const expected: EvalRecordData['expected'] = {};
  if (o.expected !== undefined && o.expected !== null) {
    if (!isObj(o.expected)) fail('invalid_field_type', 'expected must be an object', 'expected');
    const e = o.expected as Obj;
    allowOnly(e, ['max_latency_ms', 'required_criteria'], 'expected.');
    if (e.max_latency_ms !== undefined && e.max_latency_ms !== null) {
      const v = e.max_latency_ms;
      if (typeof v !== 'number' || !Number.isFinite(v)) fail('invalid_field_type', 'expected.max_latency_ms must be a number', 'expected.max_latency_ms');
      if ((v as number) <= 0 || (v as number) > 3_600_000) fail('value_out_of_range', 'expected.max_latency_ms must be in 1..3600000', 'expected.max_latency_ms');
      expected.max_latency_ms = v as number;
    }
    if (e.required_criteria !== undefined && e.required_criteria !== null) {
      if (!Array.isArray(e.required_criteria)) fail('invalid_field_type', 'expected.required_criteria must be an array', 'expected.required_criteria');
      expected.required_criteria = (e.required_criteria as Json[]).map((c, i) => {
        if (typeof c !== 'string') fail('invalid_field_type', 'criteria must be strings', `expected.required_criteria[${i}]`);
        if (!(CRITERIA as readonly string[]).includes(c as string)) {
          fail('invalid_enum_value', `unknown criterion ${String(c)}; one of ${CRITERIA.join(', ')}`, `expected.required_criteria[${i}]`);
        }
        return c as string;
      });
    }
  }
  return { record_id: recordId, input: { prompt }, reference, tags, expected, metadata: metadata(o, 'metadata', 'metadata') };
}

function corpusRecord(o: Obj, index: number): CorpusRecordData {
  allowOnly(o, ['doc_id', 'text', 'metadata'], '');
  const docId = recordIdOf(o, 'doc_id') ?? String(index + 1);
  const text = str(o, 'text', 'text', { required: true, max: L.maxTextChars, min: 1 })!;
  return { doc_id: docId, text, metadata: metadata(o, 'metadata', 'metadata') };
}

export interface ValidatedRecords {
  accepted: Array<{ recordId: string; data: Obj }>;
  errors: RecordError[];
}

/**
 * Validates raw records one by one: a bad record is rejected with its error
 * and the rest are kept. `record_id`s (or `doc_id`s) must be unique.
 */
/** Records validated between turns of the event loop. */
const VALIDATE_SLICE = 500;

export async function validateRecords(type: DatasetType, raw: readonly Json[]): Promise<ValidatedRecords> {
  const accepted: ValidatedRecords['accepted'] = [];
  const errors: RecordError[] = [];
  const seen = new Set<string>();
  const idKey = type === 'eval_set' ? 'record_id' : 'doc_id';
  for (let index = 0; index < raw.length; index++) {
    // 50,000 records are a second of work: other requests get the event loop between slices.
    if (index > 0 && index % VALIDATE_SLICE === 0) await yieldToLoop();
    const r = raw[index];
    // A record the file reader could not read is already reported.
    if (r === undefined) continue;
    const claimedId = isObj(r) && (typeof r[idKey] === 'string' || typeof r[idKey] === 'number') ? String(r[idKey]) : null;
    try {
      if (!isObj(r)) fail('invalid_field_type', 'a record must be a JSON object', '');
      // Depth first: the size and encoding checks below walk the whole record recursively.
      const meta = (r as Obj).metadata;
      if (isObj(meta) && nestedDeeperThan(meta, L.maxMetadataDepth)) {
        fail('value_out_of_range', `metadata is nested deeper than ${L.maxMetadataDepth}`, 'metadata');
      }
      if (nestedDeeperThan(r, MAX_RECORD_DEPTH)) fail('value_out_of_range', `record is nested deeper than ${MAX_RECORD_DEPTH}`, '');
      if (byteLength(r) > L.maxRecordBytes) fail('record_too_large', `record is larger than ${L.maxRecordBytes} bytes`, '');
      const bad = findBadString(r, '');
      if (bad !== null) fail('invalid_encoding', 'text contains a NUL byte or an unpaired surrogate', bad.replace(/^\./, ''));
      const data = type === 'eval_set' ? evalRecord(r as Obj, index) : corpusRecord(r as Obj, index);
      const id = 'record_id' in data ? data.record_id : data.doc_id;
      if (seen.has(id)) fail('duplicate_record_id', `${idKey} ${id} appears more than once`, idKey);
      seen.add(id);
      accepted.push({ recordId: id, data: data as unknown as Obj });
    } catch (err) {
      if (!(err instanceof RecordProblem)) throw err;
      errors.push({ index, record_id: claimedId, code: err.code, message: err.message, path: err.path, severity: 'error' });
    }
  }
  return { accepted, errors };
}
