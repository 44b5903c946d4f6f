/**
 * The one cursor codec of every paged list. A cursor is the position after
 * the last item of a page (its keyset values), as base64url JSON: opaque
 * to clients, self-contained for us. Decoding accepts only what `encode`
 * produced: the round trip at the end rejects edited cursors that still
 * happen to decode (extra keys, non-canonical times, stray base64 bits), so
 * a client cannot steer a keyset query with values we never issued.
 */
import { InvalidCursorError } from './errors.js';

/** `time`: a canonical ISO-8601 UTC string; `id`: a non-empty string; `index`: an integer >= 0. */
type FieldKind = 'time' | 'id' | 'index';
type ValueOf<K extends FieldKind> = K extends 'index' ? number : string;
export type Position<S extends Record<string, FieldKind>> = { [F in keyof S]: ValueOf<S[F]> };

const CURSOR_CHARS = /^[A-Za-z0-9_-]{1,1024}$/;

function valid(kind: FieldKind, v: unknown): boolean {
  switch (kind) {
    case 'index':
      return Number.isSafeInteger(v) && (v as number) >= 0;
    case 'id':
      return typeof v === 'string' && v !== '';
    case 'time': {
      if (typeof v !== 'string') return false;
      const t = Date.parse(v);
      return Number.isFinite(t) && new Date(t).toISOString() === v;
    }
  }
}

export interface CursorCodec<P> {
  encode(position: P): string;
  /** Throws InvalidCursorError for anything `encode` did not produce. */
  decode(cursor: string): P;
}

/** A codec for positions of this shape (field name → kind, in key order). */
export function cursorCodec<S extends Record<string, FieldKind>>(shape: S): CursorCodec<Position<S>> {
  const fields = Object.keys(shape) as Array<keyof S & string>;
  const encode = (position: Position<S>) => {
    const ordered: Record<string, unknown> = {};
    for (const f of fields) ordered[f] = position[f];
    return Buffer.from(JSON.stringify(ordered), 'utf8').toString('base64url');
  };
  return {
    encode,
    decode(cursor) {
      if (!CURSOR_CHARS.test(cursor)) throw new InvalidCursorError();
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
      } catch {
        throw new InvalidCursorError();
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidCursorError();
      const obj = parsed as Record<string, unknown>;
      if (!fields.every((f) => valid(shape[f]!, obj[f]))) throw new InvalidCursorError();
      const position = Object.fromEntries(fields.map((f) => [f, obj[f]])) as Position<S>;
      if (encode(position) !== cursor) throw new InvalidCursorError();
      return position;
    },
  };
}

/** Datasets, newest first: (created_at desc, id desc). */
export const datasetCursor = cursorCodec({ createdAt: 'time', id: 'id' });
/** A dataset's position in that order: where a page that ends with it continues. */
export const datasetPosition = (d: { createdAt: string; id: string }) => ({ createdAt: d.createdAt, id: d.id });

/** RAG indexes, newest first, like datasets: (created_at desc, id desc). */
export const ragIndexCursor = cursorCodec({ createdAt: 'time', id: 'id' });
/** A RAG index's position in that order. */
export const ragIndexPosition = (r: { createdAt: string; id: string }) => ({ createdAt: r.createdAt, id: r.id });

/** Batch items in record order. */
export const itemCursor = cursorCodec({ index: 'index' });
/** A batch item's position in record order. */
export const itemPosition = (i: { index: number }) => ({ index: i.index });

/**
 * A page from a keyset query that read one row more than `limit`: that
 * extra row only tells whether another page exists; the cursor is the
 * position of the page's last item.
 */
export function keysetPage<R, T, P>(
  rows: readonly R[],
  limit: number,
  map: (row: R) => T,
  codec: CursorCodec<P>,
  positionOf: (item: T) => P,
): { items: T[]; nextCursor: string | null } {
  const items = rows.slice(0, limit).map(map);
  const last = items[items.length - 1];
  return { items, nextCursor: rows.length > limit && last !== undefined ? codec.encode(positionOf(last)) : null };
}
