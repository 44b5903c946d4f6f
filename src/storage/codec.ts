/**
 * Value conversions shared by both dialects, so that SQLite and PostgreSQL
 * store and return exactly the same things.
 */

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
 * A vector as stored: float32, little-endian (SQLite BLOB, PostgreSQL bytea).
 * The bytes are copied, so the buffer never aliases the caller's array.
 */
export function vectorBytes(v: Float32Array): Buffer {
  const out = Buffer.allocUnsafe(v.length * 4);
  for (let i = 0; i < v.length; i++) out.writeFloatLE(v[i]!, i * 4);
  return out;
}

/** A stored vector back as a Float32Array of its own (drivers hand out unaligned slices of shared buffers). */
export function vectorFrom(bytes: Uint8Array): Float32Array {
  if (bytes.length % 4 !== 0) throw new RangeError(`vector blob of ${bytes.length} bytes is not float32`);
  const out = new Float32Array(bytes.length / 4);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}
