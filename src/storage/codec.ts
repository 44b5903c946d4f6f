/**
 * Value conversions shared by both dialects, so that SQLite and PostgreSQL
 * store and return exactly the same things.
 */
import { InvalidCursorError } from './errors.js';
import type { Dataset, Page } from './types.js';

/** Position after the last dataset of a page, in (created_at desc, id desc) order. */
export interface DatasetCursor {
  createdAt: string;
  id: string;
}

const CURSOR_CHARS = /^[A-Za-z0-9_-]{1,1024}$/;

/** base64url of `{"createdAt","id"}`: opaque to clients, self-contained for us. */
export function encodeCursor(c: DatasetCursor): string {
  return Buffer.from(JSON.stringify({ createdAt: c.createdAt, id: c.id }), 'utf8').toString('base64url');
}

/**
 * Parses a cursor this module issued; anything else throws InvalidCursorError.
 * The round-trip check at the end rejects edited cursors that still happen
 * to decode (extra keys, non-canonical times, stray base64 bits), so a
 * client can't steer the keyset query with values we never produced.
 */
export function decodeCursor(cursor: string): DatasetCursor {
  if (!CURSOR_CHARS.test(cursor)) throw new InvalidCursorError();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidCursorError();
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidCursorError();
  const { createdAt, id } = parsed as Record<string, unknown>;
  if (typeof createdAt !== 'string' || typeof id !== 'string' || id === '') throw new InvalidCursorError();
  const t = Date.parse(createdAt);
  if (!Number.isFinite(t) || new Date(t).toISOString() !== createdAt) throw new InvalidCursorError();
  const c = { createdAt, id };
  if (encodeCursor(c) !== cursor) throw new InvalidCursorError();
  return c;
}

/**
 * Canonical UTC ISO-8601 with milliseconds. SQLite compares times as text,
 * so every stored time must have the same shape for ordering to be right.
 */
export function isoTime(value: string): string {
  const t = Date.parse(value);
  if (!Number.isFinite(t)) throw new RangeError(`Invalid timestamp: ${JSON.stringify(value)}`);
  return new Date(t).toISOString();
}

export function isoTimeOrNull(value: string | null | undefined): string | null {
  return value === null || value === undefined ? null : isoTime(value);
}

// U+0000 and lone surrogates: PostgreSQL text and jsonb reject them (SQLite
// would keep them), and model output can contain either (byte-fallback
// tokens, a stream cut mid-pair). Both dialects replace them with U+FFFD so
// the two stores agree and a stray byte never makes a write fail.
const BAD_CHARS = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const MAYBE_BAD_CHARS = /[\u0000\uD800-\uDFFF]/;
// JSON.stringify escapes exactly these as \u0000 and \udXXX (paired
// surrogates pass through raw), so their escapes flag the values to clean.
const MAYBE_BAD_JSON = /\\u(?:0000|d[89a-f])/;

/** The string with U+0000 and unpaired surrogates replaced by U+FFFD. */
export function cleanText(s: string): string {
  return MAYBE_BAD_CHARS.test(s) ? s.replace(BAD_CHARS, '\uFFFD') : s;
}

export function cleanTextOrNull(s: string | null | undefined): string | null {
  return s === null || s === undefined ? null : cleanText(s);
}

function cleanJsonValue(v: unknown): unknown {
  if (typeof v === 'string') return cleanText(v);
  if (Array.isArray(v)) return v.map(cleanJsonValue);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[cleanText(k)] = cleanJsonValue(x);
    return out;
  }
  return v;
}

/** JSON text for a JSON column, with the same character clean-up as cleanText. */
export function toJson(value: unknown): string {
  const s = JSON.stringify(value);
  if (s === undefined) throw new TypeError('Value is not JSON-serialisable');
  // Fast path: almost nothing needs cleaning, and this keeps bulk inserts at one stringify per record.
  return MAYBE_BAD_JSON.test(s) ? JSON.stringify(cleanJsonValue(JSON.parse(s))) : s;
}

/** Rejects limits that would make a query return everything or nothing by accident. */
export function checkLimit(limit: number): number {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
  return limit;
}

/**
 * A page of datasets from a query that asked for `limit + 1` rows: the extra
 * row only tells that another page exists, so the last page has no cursor
 * (and the extra row is never mapped).
 */
export function datasetPage<R>(rows: readonly R[], limit: number, toDataset: (row: R) => Dataset): Page<Dataset> {
  const items = rows.slice(0, limit).map(toDataset);
  const last = items[items.length - 1];
  return { items, nextCursor: rows.length > limit && last ? encodeCursor(last) : null };
}
