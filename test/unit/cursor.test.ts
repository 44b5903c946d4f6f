import { describe, expect, it } from 'vitest';
import { cursorCodec, datasetCursor, itemCursor, keysetPage } from '../../src/storage/cursor.js';
import { InvalidCursorError } from '../../src/storage/errors.js';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64url');

describe('the one cursor codec', () => {
  it('round-trips the positions it issues', () => {
    const d = { createdAt: '2026-12-01T10:00:00.000Z', id: 'ds_1' };
    expect(datasetCursor.decode(datasetCursor.encode(d))).toEqual(d);
    expect(itemCursor.decode(itemCursor.encode({ index: 41 }))).toEqual({ index: 41 });
    expect(datasetCursor.encode(d)).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it('rejects anything it did not issue', () => {
    const bad = [
      '',
      'not base64!',
      b64('{"index":-1}'),
      b64('{"index":1.5}'),
      b64('{"index":"3"}'),
      b64('{"index":3,"extra":1}'),
      b64('{ "index":3}'),
      b64('[3]'),
      b64('null'),
      b64('3'),
      `${itemCursor.encode({ index: 3 })}A`,
      'x'.repeat(2000),
    ];
    for (const c of bad) expect(() => itemCursor.decode(c), c).toThrow(InvalidCursorError);
    // A time that parses but is not canonical, and an empty id.
    expect(() => datasetCursor.decode(b64('{"createdAt":"2026-12-01T10:00:00Z","id":"ds_1"}'))).toThrow(InvalidCursorError);
    expect(() => datasetCursor.decode(b64('{"createdAt":"2026-12-01T10:00:00.000Z","id":""}'))).toThrow(InvalidCursorError);
    // One codec's cursor is not another's.
    expect(() => itemCursor.decode(datasetCursor.encode({ createdAt: '2026-12-01T10:00:00.000Z', id: 'a' }))).toThrow(InvalidCursorError);
    expect(() => cursorCodec({ id: 'id' }).decode(itemCursor.encode({ index: 1 }))).toThrow(InvalidCursorError);
  });

  it('pages a keyset query that read one row more than the page', () => {
    const rows = [{ index: 1 }, { index: 4 }, { index: 9 }];
    const page = keysetPage(rows, 2, (r) => r, itemCursor, (r) => r);
    expect(page.items).toEqual([{ index: 1 }, { index: 4 }]);
    expect(itemCursor.decode(page.nextCursor!)).toEqual({ index: 4 });
    expect(keysetPage(rows, 3, (r) => r, itemCursor, (r) => r).nextCursor).toBeNull();
    expect(keysetPage([], 3, (r) => r, itemCursor, (r) => r)).toEqual({ items: [], nextCursor: null });
  });
});
