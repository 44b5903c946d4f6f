import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { parse as parseCsvStream } from 'csv-parse';
import { invalidRequest } from '../../errors.js';
import type { DatasetType } from '../../storage/types.js';
import type { RecordError } from './validate.js';

/** Records read from an uploaded file, with the lines that could not be read. */
export interface ParsedFile {
  records: unknown[];
  /** Problems found while reading, indexed like `records` would be. */
  errors: RecordError[];
}

export type FileFormat = 'jsonl' | 'csv' | 'txt';

/** The format of an uploaded file, from its name. */
export function formatOf(filename: string): FileFormat | null {
  const m = /\.(jsonl|ndjson|csv|txt)$/i.exec(filename);
  if (!m) return null;
  const ext = m[1]!.toLowerCase();
  return ext === 'ndjson' ? 'jsonl' : (ext as FileFormat);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function problem(index: number, code: RecordError['code'], message: string): RecordError {
  return { index, record_id: null, code, message, path: '', severity: 'error' };
}

/**
 * Reads a file's records. Undecodable UTF-8 fails the whole file only when it
 * cannot be split into lines; otherwise each bad line is its own record error.
 */
export function parseFile(format: FileFormat, bytes: Buffer, type: DatasetType): Promise<ParsedFile> | ParsedFile {
  if (format === 'jsonl') return parseJsonl(bytes);
  if (format === 'txt') return parseTxt(bytes, type);
  return parseCsvFile(bytes, type);
}

/** Splits on newlines at the byte level, so one bad line does not spoil the others. */
function lines(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x0a) {
      let end = i;
      if (end > start && bytes[end - 1] === 0x0d) end--;
      out.push(bytes.subarray(start, end));
      start = i + 1;
    }
  }
  return out;
}

/** JSONL lines parsed between turns of the event loop (50,000 lines are most of a second). */
const JSONL_SLICE = 1000;

async function parseJsonl(bytes: Buffer): Promise<ParsedFile> {
  const records: unknown[] = [];
  const errors: RecordError[] = [];
  const all = lines(stripBom(bytes));
  for (let i = 0; i < all.length; i++) {
    if (i > 0 && i % JSONL_SLICE === 0) await yieldToLoop();
    const line = all[i]!;
    let text: string;
    try {
      text = utf8.decode(line);
    } catch {
      errors.push(problem(records.length, 'invalid_encoding', 'line is not valid UTF-8'));
      records.push(undefined);
      continue;
    }
    if (text.trim() === '') continue;
    try {
      records.push(JSON.parse(text));
    } catch {
      errors.push(problem(records.length, 'invalid_field_type', 'line is not a valid JSON value'));
      records.push(undefined);
    }
  }
  return { records, errors };
}

/**
 * .txt: an eval set has one prompt per non-empty line; a corpus has one
 * document per paragraph (blocks separated by blank lines).
 */
function parseTxt(bytes: Buffer, type: DatasetType): ParsedFile {
  const records: unknown[] = [];
  const errors: RecordError[] = [];
  const decoded: Array<string | null> = lines(stripBom(bytes)).map((l) => {
    try {
      return utf8.decode(l);
    } catch {
      return null;
    }
  });
  if (type === 'eval_set') {
    for (const l of decoded) {
      if (l === null) {
        errors.push(problem(records.length, 'invalid_encoding', 'line is not valid UTF-8'));
        records.push(undefined);
      } else if (l.trim() !== '') {
        records.push({ input: { prompt: l } });
      }
    }
    return { records, errors };
  }
  let block: string[] = [];
  let bad = false;
  const flush = () => {
    if (bad) {
      errors.push(problem(records.length, 'invalid_encoding', 'paragraph is not valid UTF-8'));
      records.push(undefined);
    } else if (block.length > 0) {
      records.push({ text: block.join('\n') });
    }
    block = [];
    bad = false;
  };
  for (const l of decoded) {
    if (l === null) bad = true;
    else if (l.trim() === '') flush();
    else block.push(l);
  }
  flush();
  return { records, errors };
}

const EVAL_COLUMNS = ['record_id', 'prompt', 'reference', 'answer', 'tags', 'max_latency_ms', 'required_criteria', 'metadata'];
const CORPUS_COLUMNS = ['doc_id', 'text', 'metadata'];

/**
 * .csv with a header row. Eval sets: `prompt` (required), `record_id`,
 * `reference` (or `answer`), `tags` and `required_criteria` (separated by
 * `|`), `max_latency_ms`, `metadata` (a JSON object). Corpora: `doc_id`,
 * `text`, `metadata`. Other columns are unsupported fields of each record.
 */
/** Characters of CSV text fed to the parser between turns of the event loop (a 50,000-row file is many of these). */
const CSV_SLICE = 64 * 1024;

/** The rows of a CSV text with a header row, parsed a slice at a time (csv-parse's streaming parser). */
function csvRows(text: string): Promise<Array<Record<string, string>>> {
  return new Promise((resolve, reject) => {
    const rows: Array<Record<string, string>> = [];
    const parser = parseCsvStream({ columns: true, skip_empty_lines: true, relax_column_count: true, trim: false });
    let failed = false;
    parser.on('readable', () => {
      let row: Record<string, string> | null;
      while ((row = parser.read() as Record<string, string> | null) !== null) rows.push(row);
    });
    parser.on('error', (err) => {
      failed = true;
      reject(err);
    });
    parser.on('end', () => resolve(rows));
    void (async () => {
      for (let i = 0; i < text.length && !failed; ) {
        if (i > 0) await yieldToLoop();
        let end = Math.min(text.length, i + CSV_SLICE);
        // Never between the two halves of a surrogate pair: each slice is encoded to UTF-8 on its own.
        const last = text.charCodeAt(end - 1);
        if (end < text.length && last >= 0xd800 && last <= 0xdbff) end++;
        parser.write(text.slice(i, end));
        i = end;
      }
      if (!failed) parser.end();
    })();
  });
}

async function parseCsvFile(bytes: Buffer, type: DatasetType): Promise<ParsedFile> {
  let text: string;
  try {
    text = utf8.decode(stripBom(bytes));
  } catch {
    return { records: [undefined], errors: [problem(0, 'invalid_encoding', 'file is not valid UTF-8')] };
  }
  let rows: Array<Record<string, string>>;
  try {
    rows = await csvRows(text);
  } catch (err) {
    // A file that is not CSV at all (an unclosed quote, say) cannot be split into records.
    throw invalidRequest(`file is not valid CSV: ${err instanceof Error ? err.message : 'parse error'}`, { field: 'file' });
  }
  const known = type === 'eval_set' ? EVAL_COLUMNS : CORPUS_COLUMNS;
  const records: unknown[] = [];
  const errors: RecordError[] = [];
  for (const row of rows) {
    const extra = Object.keys(row).find((k) => !known.includes(k));
    if (extra !== undefined) {
      errors.push({ ...problem(records.length, 'unsupported_field', `unsupported column ${extra}`), path: extra });
      records.push(undefined);
      continue;
    }
    let meta: unknown;
    if (row.metadata !== undefined && row.metadata.trim() !== '') {
      try {
        meta = JSON.parse(row.metadata);
      } catch {
        errors.push({ ...problem(records.length, 'invalid_field_type', 'metadata must be a JSON object'), path: 'metadata' });
        records.push(undefined);
        continue;
      }
    }
    records.push(type === 'eval_set' ? evalRow(row, meta) : { doc_id: blankToUndefined(row.doc_id), text: row.text, metadata: meta });
  }
  return { records, errors };
}

function evalRow(row: Record<string, string>, meta: unknown): unknown {
  const list = (v: string | undefined) => (v === undefined || v.trim() === '' ? undefined : v.split('|').map((s) => s.trim()));
  const answer = blankToUndefined(row.reference) ?? blankToUndefined(row.answer);
  const latency = blankToUndefined(row.max_latency_ms);
  const criteria = list(row.required_criteria);
  return {
    record_id: blankToUndefined(row.record_id),
    input: { prompt: row.prompt },
    reference: answer === undefined ? undefined : { answer },
    tags: list(row.tags),
    expected:
      latency === undefined && criteria === undefined
        ? undefined
        : { max_latency_ms: latency === undefined ? undefined : Number.isNaN(Number(latency)) ? latency : Number(latency), required_criteria: criteria },
    metadata: meta,
  };
}

const blankToUndefined = (v: string | undefined) => (v === undefined || v.trim() === '' ? undefined : v);

function stripBom(b: Buffer): Buffer {
  return b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? b.subarray(3) : b;
}
