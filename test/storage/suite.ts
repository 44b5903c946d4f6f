/**
 * The storage test suite, shared by every implementation: each test file
 * calls storageSuite with a factory, so SQLite and PostgreSQL are held to
 * exactly the same behaviour.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidCursorError } from '../../src/storage/errors.js';
import { ragRepositoryTests } from './rag-suite.js';
import type {
  BatchItem,
  BatchRun,
  Dataset,
  DatasetRecord,
  DatasetStatus,
  DatasetType,
  EvalRun,
  Storage,
} from '../../src/storage/types.js';

const uid = (prefix: string) => `${prefix}_${randomUUID().replaceAll('-', '').slice(0, 12)}`;

/** A time `ms` milliseconds after a fixed base, in canonical form. */
const at = (ms: number) => new Date(Date.UTC(2025, 0, 1) + ms).toISOString();

function makeDataset(over: Partial<Dataset> = {}): Dataset {
  return {
    id: uid('ds'),
    name: 'a dataset',
    type: 'eval_set',
    status: 'ready',
    recordCount: 0,
    metadata: {},
    error: null,
    createdAt: at(0),
    updatedAt: at(0),
    ...over,
  };
}

function makeRecords(datasetId: string, n: number): DatasetRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    datasetId,
    index: i,
    recordId: `rec-${i}`,
    data: { record_id: `rec-${i}`, input: { prompt: `Question ${i}?` }, reference: { answer: `Answer ${i}` }, tags: ['t'] },
  }));
}

function makeRun(over: Partial<BatchRun> = {}): BatchRun {
  return {
    id: uid('be'),
    datasetId: uid('ds'),
    status: 'queued',
    criteria: ['accuracy', 'overall'],
    params: { model: 'stories260K', concurrency: 4, max_new_tokens: 64, temperature: 0, seed: 7, judge: 'deterministic' },
    total: 10,
    completed: 0,
    failed: 0,
    keyId: 'key-1',
    error: null,
    createdAt: at(0),
    startedAt: null,
    updatedAt: at(0),
    completedAt: null,
    ...over,
  };
}

function makeItem(batchId: string, index: number, over: Partial<BatchItem> = {}): BatchItem {
  const failed = over.status === 'failed';
  return {
    batchId,
    index,
    recordId: `rec-${index}`,
    status: 'succeeded',
    response: failed ? null : `response ${index}`,
    promptTokens: failed ? null : 12,
    completionTokens: failed ? null : 30,
    latencyMs: failed ? null : 123.5,
    scores: failed ? [] : [{ criterion: 'accuracy', score: 4, rationale: 'token F1 0.81' }],
    passed: failed ? null : true,
    attempts: 1,
    reason: failed ? 'generation_error' : null,
    message: failed ? 'engine failed' : null,
    createdAt: at(1000 + index),
    ...over,
  };
}

function makeEvalRun(over: Partial<EvalRun> = {}): EvalRun {
  return {
    runId: uid('ev'),
    prompt: 'What is 2+2?',
    response: 'Four.',
    reference: '4',
    context: null,
    criteria: ['accuracy', 'clarity'],
    scores: [
      { criterion: 'accuracy', score: 3, rationale: 'exact match 0, token F1 0.5' },
      { criterion: 'clarity', score: null, rationale: 'judge output unparseable', evaluatorError: 'parse_error' },
    ],
    judge: 'heuristic',
    model: 'stories260K',
    latencyMs: 41.25,
    keyId: null,
    createdAt: at(5),
    ...over,
  };
}

/** Every dataset the list returns for `query`, following next cursors to the end. */
async function listAll(s: Storage, query: { type?: DatasetType; status?: DatasetStatus; limit: number }) {
  const ids: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  for (;;) {
    const page = await s.datasets.list({ ...query, ...(cursor ? { cursor } : {}) });
    pages++;
    expect(page.items.length).toBeLessThanOrEqual(query.limit);
    ids.push(...page.items.map((d) => d.id));
    if (page.nextCursor === null) break;
    // A page with a cursor is full: the store knows another row follows.
    expect(page.items).toHaveLength(query.limit);
    cursor = page.nextCursor;
    if (pages > 100) throw new Error('pagination does not end');
  }
  return { ids, pages };
}

/**
 * Registers the storage tests under `name`. `open` must return a new, empty
 * storage each time: every test gets its own and closes it afterwards.
 */
export function storageSuite(name: string, open: () => Promise<Storage>): void {
  describe(`storage: ${name}`, () => {
    let s: Storage;
    beforeEach(async () => {
      s = await open();
    });
    afterEach(async () => {
      await s.close();
    });

    describe('datasets', () => {
      it('creates a dataset with its records and reads both back', async () => {
        const d = makeDataset({ recordCount: 3, metadata: { owner: 'qa', version: 2 } });
        await s.datasets.create(d, makeRecords(d.id, 3));
        expect(await s.datasets.get(d.id)).toEqual(d);
        const recs = await s.datasets.records(d.id, -1, 10);
        expect(recs).toEqual(makeRecords(d.id, 3));
        expect(await s.datasets.get('missing')).toBeNull();
        expect(await s.datasets.records('missing', -1, 10)).toEqual([]);
      });

      it('pages records in index order after afterIndex', async () => {
        const d = makeDataset({ recordCount: 25 });
        await s.datasets.create(d, makeRecords(d.id, 25));
        const seen: number[] = [];
        let after = -1;
        for (;;) {
          const page = await s.datasets.records(d.id, after, 7);
          if (page.length === 0) break;
          seen.push(...page.map((r) => r.index));
          after = page[page.length - 1]!.index;
        }
        expect(seen).toEqual([...Array(25).keys()]);
        expect((await s.datasets.records(d.id, 20, 100)).map((r) => r.recordId)).toEqual([
          'rec-21',
          'rec-22',
          'rec-23',
          'rec-24',
        ]);
      });

      it('returns times in canonical ISO form', async () => {
        const d = makeDataset({ createdAt: '2025-03-04T05:06:07Z', updatedAt: '2025-03-04T06:06:07.5+01:00' });
        await s.datasets.create(d, []);
        const got = await s.datasets.get(d.id);
        expect(got?.createdAt).toBe('2025-03-04T05:06:07.000Z');
        expect(got?.updatedAt).toBe('2025-03-04T05:06:07.500Z');
      });

      it('creates nothing when one record is rejected (atomic)', async () => {
        const d = makeDataset({ recordCount: 3 });
        const records = makeRecords(d.id, 3);
        records[2]!.recordId = 'rec-0'; // record_id must be unique within the dataset
        await expect(s.datasets.create(d, records)).rejects.toThrow();
        expect(await s.datasets.get(d.id)).toBeNull();
        expect(await s.datasets.records(d.id, -1, 10)).toEqual([]);
        // The id is still free.
        await s.datasets.create(d, makeRecords(d.id, 3));
        expect(await s.datasets.records(d.id, -1, 10)).toHaveLength(3);
      });

      it('rejects a second dataset with the same id', async () => {
        const d = makeDataset();
        await s.datasets.create(d, []);
        await expect(s.datasets.create({ ...d, name: 'other' }, [])).rejects.toThrow();
        expect((await s.datasets.get(d.id))?.name).toBe('a dataset');
      });

      it('deletes a dataset with its records and reports whether it existed', async () => {
        const d = makeDataset({ recordCount: 5 });
        await s.datasets.create(d, makeRecords(d.id, 5));
        const keep = makeDataset({ recordCount: 2 });
        await s.datasets.create(keep, makeRecords(keep.id, 2));

        expect(await s.datasets.delete(d.id)).toBe(true);
        expect(await s.datasets.get(d.id)).toBeNull();
        expect(await s.datasets.records(d.id, -1, 10)).toEqual([]);
        expect(await s.datasets.delete(d.id)).toBe(false);
        expect(await s.datasets.delete('missing')).toBe(false);
        // Records went with it: the same ids and record ids can be stored again.
        await s.datasets.create(d, makeRecords(d.id, 5));
        expect(await s.datasets.records(d.id, -1, 10)).toHaveLength(5);
        // Others untouched.
        expect(await s.datasets.records(keep.id, -1, 10)).toHaveLength(2);
      });

      it('keeps batch runs and their items when their dataset is deleted', async () => {
        const d = makeDataset({ recordCount: 2 });
        await s.datasets.create(d, makeRecords(d.id, 2));
        const run = makeRun({ datasetId: d.id, status: 'completed', total: 2 });
        await s.batches.create(run);
        await s.batches.putItem(makeItem(run.id, 0));
        await s.batches.putItem(makeItem(run.id, 1, { status: 'failed' }));

        expect(await s.datasets.delete(d.id)).toBe(true);
        const after = await s.batches.get(run.id);
        expect(after).toMatchObject({ datasetId: d.id, completed: 1, failed: 1 });
        expect(await s.batches.items(run.id, { afterIndex: -1, limit: 10 })).toHaveLength(2);
      });

      it('stores 50,000 records in one create', async () => {
        const n = 50_000;
        const d = makeDataset({ recordCount: n });
        const records = Array.from({ length: n }, (_, i) => ({
          datasetId: d.id,
          index: i,
          recordId: `r${i}`,
          data: { record_id: `r${i}`, input: { prompt: `p${i}` } },
        }));
        await s.datasets.create(d, records);
        let count = 0;
        let after = -1;
        for (;;) {
          const page = await s.datasets.records(d.id, after, 10_000);
          if (page.length === 0) break;
          count += page.length;
          after = page[page.length - 1]!.index;
        }
        expect(count).toBe(n);
        expect(after).toBe(n - 1);
        expect((await s.datasets.records(d.id, 41_999, 1))[0]).toEqual(records[42_000]);
      });
    });

    describe('dataset list', () => {
      // 23 datasets over both types and all statuses; 6 share one created_at, so the id must break ties.
      const types: DatasetType[] = ['eval_set', 'rag_corpus'];
      const statuses: DatasetStatus[] = ['ready', 'processing', 'failed'];
      let all: Dataset[];

      beforeEach(async () => {
        all = Array.from({ length: 23 }, (_, i) =>
          makeDataset({
            id: `ds_${String(i).padStart(2, '0')}_${randomUUID().slice(0, 4)}`,
            name: `set ${i}`,
            type: types[i % 2]!,
            status: statuses[i % 3]!,
            createdAt: at(i < 6 ? 500 : i * 1000),
            updatedAt: at(i * 1000),
          }),
        );
        // Insert out of order: the list's order must come from the data, not insertion.
        for (const d of [...all].reverse()) await s.datasets.create(d, []);
      });

      const expected = (pred: (d: Dataset) => boolean) =>
        all
          .filter(pred)
          .sort((a, b) => (a.createdAt === b.createdAt ? (a.id < b.id ? 1 : -1) : a.createdAt < b.createdAt ? 1 : -1))
          .map((d) => d.id);

      it('lists newest first across more than two pages', async () => {
        const { ids, pages } = await listAll(s, { limit: 4 });
        expect(pages).toBe(6);
        expect(ids).toEqual(expected(() => true));
        const first = await s.datasets.list({ limit: 100 });
        expect(first.nextCursor).toBeNull();
        expect(first.items[0]).toEqual(all[22]);
      });

      it('filters by type, by status and by both while paging', async () => {
        const byType = await listAll(s, { type: 'rag_corpus', limit: 3 });
        expect(byType.pages).toBeGreaterThan(2);
        expect(byType.ids).toEqual(expected((d) => d.type === 'rag_corpus'));

        const byStatus = await listAll(s, { status: 'failed', limit: 2 });
        expect(byStatus.pages).toBeGreaterThan(2);
        expect(byStatus.ids).toEqual(expected((d) => d.status === 'failed'));

        const both = await listAll(s, { type: 'eval_set', status: 'ready', limit: 1 });
        expect(both.pages).toBeGreaterThan(2);
        expect(both.ids).toEqual(expected((d) => d.type === 'eval_set' && d.status === 'ready'));
      });

      it('gives no cursor when the last page is exactly full', async () => {
        // 23 datasets: 12 eval_set; a limit of 6 fills two pages exactly.
        const page1 = await s.datasets.list({ type: 'eval_set', limit: 6 });
        expect(page1.nextCursor).not.toBeNull();
        const page2 = await s.datasets.list({ type: 'eval_set', limit: 6, cursor: page1.nextCursor! });
        expect(page2.items).toHaveLength(6);
        expect(page2.nextCursor).toBeNull();
      });

      it('keeps its place when newer datasets arrive between pages', async () => {
        const page1 = await s.datasets.list({ limit: 5 });
        await s.datasets.create(makeDataset({ createdAt: at(999_999) }), []);
        const page2 = await s.datasets.list({ limit: 5, cursor: page1.nextCursor! });
        expect(page2.items.map((d) => d.id)).toEqual(expected(() => true).slice(5, 10));
      });

      it('returns an empty page for a store or filter with nothing in it', async () => {
        expect(await s.datasets.list({ status: 'processing', type: 'eval_set', limit: 100 })).toMatchObject({
          nextCursor: null,
        });
        for (const d of all) await s.datasets.delete(d.id);
        expect(await s.datasets.list({ limit: 10 })).toEqual({ items: [], nextCursor: null });
      });

      it('rejects cursors it did not issue with InvalidCursorError', async () => {
        const page1 = await s.datasets.list({ limit: 3 });
        const good = page1.nextCursor!;
        const decoded = JSON.parse(Buffer.from(good, 'base64url').toString('utf8')) as { createdAt: string; id: string };
        const enc = (v: unknown) => Buffer.from(JSON.stringify(v), 'utf8').toString('base64url');
        const bad = [
          '',
          'not a cursor!',
          'eyJub3QganNvbg', // base64url of `{"not json`
          Buffer.from('plain text', 'utf8').toString('base64url'),
          enc([decoded.createdAt, decoded.id]),
          enc({ createdAt: decoded.createdAt }),
          enc({ id: decoded.id }),
          enc({ createdAt: 12345, id: decoded.id }),
          enc({ createdAt: 'yesterday', id: decoded.id }),
          enc({ createdAt: decoded.createdAt.replace('.000Z', 'Z'), id: decoded.id }), // not the form we issue
          enc({ createdAt: decoded.createdAt, id: '' }),
          enc({ createdAt: decoded.createdAt, id: decoded.id, extra: 1 }),
          good.slice(0, -3),
          `${good}=`,
          `${good}x`,
          'A'.repeat(5000),
        ];
        for (const cursor of bad) {
          await expect(s.datasets.list({ limit: 3, cursor }), cursor).rejects.toBeInstanceOf(InvalidCursorError);
        }
        // The genuine one still works, also with filters added.
        expect((await s.datasets.list({ limit: 3, cursor: good })).items).toHaveLength(3);
        await s.datasets.list({ limit: 3, cursor: good, type: 'rag_corpus' });
      });

      it('rejects a limit below 1', async () => {
        await expect(s.datasets.list({ limit: 0 })).rejects.toThrow(RangeError);
      });
    });

    describe('JSON and text round trip', () => {
      const unicode = 'héllo wörld — 你好，世界 · مرحبا · emoji 🧪👩🏽‍🔬 · e\u0301 · zero\u200bwidth · "quotes" \\ back\\slash \n\ttab';
      const nested = {
        level1: {
          level2: { level3: { level4: { deep: [1, 2.5, -3e-7, 1e21, null, true, false, 'x'] } } },
          list: [{ a: 1 }, { b: [{ c: unicode }] }],
        },
        empty: {},
        emptyList: [],
        'key with spaces and ünïcode 🔑': 'v',
        literalEscape: 'backslash-u: \\u0000 stays as text',
        big: Number.MAX_SAFE_INTEGER,
      };

      it('keeps unicode and nested values in datasets, records, eval runs and batch items', async () => {
        const d = makeDataset({ name: unicode, metadata: nested, error: unicode, status: 'failed' });
        const records: DatasetRecord[] = [
          { datasetId: d.id, index: 0, recordId: '记录-🧪', data: { text: unicode, metadata: nested } },
        ];
        await s.datasets.create(d, records);
        expect(await s.datasets.get(d.id)).toEqual(d);
        expect(await s.datasets.records(d.id, -1, 5)).toEqual(records);

        const ev = makeEvalRun({
          prompt: unicode,
          response: unicode,
          context: unicode,
          scores: [{ criterion: 'overall', score: 5, rationale: unicode }],
        });
        await s.evalRuns.create(ev);
        expect(await s.evalRuns.get(ev.runId)).toEqual(ev);

        // Params are a JSON column: any JSON value comes back as it went in.
        const run = makeRun({ params: { nested, note: unicode } as unknown as BatchRun['params'] });
        await s.batches.create(run);
        expect(await s.batches.get(run.id)).toEqual(run);
        const item = makeItem(run.id, 0, { response: unicode, message: unicode });
        await s.batches.putItem(item);
        expect((await s.batches.items(run.id, { afterIndex: -1, limit: 1 }))[0]).toEqual(item);
      });

      it('replaces U+0000 and unpaired surrogates with U+FFFD, in text and in JSON', async () => {
        const dirty = 'a\u0000b\uD800c\uDC00d 😀';
        const clean = 'a\uFFFDb\uFFFDc\uFFFDd 😀';
        const run = makeRun();
        await s.batches.create(run);
        await s.batches.putItem(
          makeItem(run.id, 0, { response: dirty, scores: [{ criterion: 'clarity', score: 1, rationale: dirty }] }),
        );
        const got = (await s.batches.items(run.id, { afterIndex: -1, limit: 1 }))[0]!;
        expect(got.response).toBe(clean);
        expect(got.scores[0]?.rationale).toBe(clean);

        const d = makeDataset({ metadata: { [dirty]: dirty } });
        await s.datasets.create(d, []);
        expect((await s.datasets.get(d.id))?.metadata).toEqual({ [clean]: clean });
      });
    });

    describe('eval runs', () => {
      it('creates and gets, with nullable fields and unscored criteria', async () => {
        const a = makeEvalRun();
        const b = makeEvalRun({ reference: null, context: 'some context', keyId: 'k2', latencyMs: 0 });
        await s.evalRuns.create(a);
        await s.evalRuns.create(b);
        expect(await s.evalRuns.get(a.runId)).toEqual(a);
        expect(await s.evalRuns.get(b.runId)).toEqual(b);
        expect(await s.evalRuns.get('missing')).toBeNull();
        await expect(s.evalRuns.create(a)).rejects.toThrow();
      });
    });

    describe('batch runs', () => {
      it('creates, gets and updates a run', async () => {
        const run = makeRun();
        await s.batches.create(run);
        expect(await s.batches.get(run.id)).toEqual(run);
        expect(await s.batches.get('missing')).toBeNull();

        const started = await s.batches.update(run.id, { status: 'running', startedAt: at(10), updatedAt: at(10) });
        expect(started).toEqual({ ...run, status: 'running', startedAt: at(10), updatedAt: at(10) });

        const before = Date.now();
        const failed = await s.batches.update(run.id, { status: 'failed', error: 'model unavailable', completedAt: at(20) });
        expect(failed).toMatchObject({ status: 'failed', error: 'model unavailable', startedAt: at(10), completedAt: at(20) });
        // updated_at moves even when the patch leaves it out.
        expect(Date.parse(failed!.updatedAt)).toBeGreaterThanOrEqual(before - 1000);
        expect(await s.batches.get(run.id)).toEqual(failed);

        const cleared = await s.batches.update(run.id, { error: null, completedAt: null, updatedAt: at(30) });
        expect(cleared).toMatchObject({ status: 'failed', error: null, completedAt: null, updatedAt: at(30) });

        expect(await s.batches.update('missing', { status: 'running' })).toBeNull();
      });

      it('updates only from the given statuses when asked (a final status and a cancel cannot overwrite each other)', async () => {
        const run = makeRun({ status: 'running' });
        await s.batches.create(run);
        const cancelled = await s.batches.update(run.id, { status: 'cancelled', updatedAt: at(10) }, ['queued', 'running']);
        expect(cancelled).toMatchObject({ status: 'cancelled' });
        // The worker's final status arrives after the cancel: nothing changes.
        expect(await s.batches.update(run.id, { status: 'completed', updatedAt: at(20) }, ['running'])).toBeNull();
        expect(await s.batches.get(run.id)).toMatchObject({ status: 'cancelled', updatedAt: at(10) });
        expect(await s.batches.update('missing', { status: 'cancelled' }, ['running'])).toBeNull();
      });

      it('stores items idempotently and keeps the counters equal to the stored items', async () => {
        const run = makeRun({ status: 'running', total: 4 });
        await s.batches.create(run);
        const counters = async () => {
          const r = await s.batches.get(run.id);
          return { completed: r!.completed, failed: r!.failed };
        };

        await s.batches.putItem(makeItem(run.id, 0));
        await s.batches.putItem(makeItem(run.id, 1, { status: 'failed', attempts: 3 }));
        await s.batches.putItem(makeItem(run.id, 2));
        expect(await counters()).toEqual({ completed: 2, failed: 1 });

        // The same write again changes nothing.
        await s.batches.putItem(makeItem(run.id, 2));
        await s.batches.putItem(makeItem(run.id, 2));
        expect(await counters()).toEqual({ completed: 2, failed: 1 });

        // A later write for an index replaces the earlier one, counters follow.
        const retried = makeItem(run.id, 1, { attempts: 2, response: 'second try' });
        await s.batches.putItem(retried);
        expect(await counters()).toEqual({ completed: 3, failed: 0 });
        await s.batches.putItem(makeItem(run.id, 0, { status: 'failed', reason: 'latency_exceeded', message: 'too slow' }));
        expect(await counters()).toEqual({ completed: 2, failed: 1 });

        const items = await s.batches.items(run.id, { afterIndex: -1, limit: 10 });
        expect(items.map((i) => [i.index, i.status])).toEqual([
          [0, 'failed'],
          [1, 'succeeded'],
          [2, 'succeeded'],
        ]);
        expect(items[1]).toEqual(retried);
        expect(items[0]).toMatchObject({ reason: 'latency_exceeded', message: 'too slow', response: null, passed: null });
      });

      it('moves updated_at on every item write', async () => {
        const run = makeRun({ updatedAt: at(0) });
        await s.batches.create(run);
        const before = Date.now();
        await s.batches.putItem(makeItem(run.id, 0));
        const after = await s.batches.get(run.id);
        expect(Date.parse(after!.updatedAt)).toBeGreaterThanOrEqual(before - 1000);
      });

      it('refuses items for a run that does not exist', async () => {
        await expect(s.batches.putItem(makeItem('missing', 0))).rejects.toThrow(/not found/);
        expect(await s.batches.items('missing', { afterIndex: -1, limit: 10 })).toEqual([]);
      });

      it('keeps counters right under concurrent writes, including to the same index', async () => {
        const run = makeRun({ status: 'running', total: 40 });
        await s.batches.create(run);
        const writes: Promise<void>[] = [];
        for (let i = 0; i < 40; i++) {
          const first = i % 4 === 0 ? 'failed' : 'succeeded';
          writes.push(s.batches.putItem(makeItem(run.id, i, { status: first })));
          // Racing writes for the same index, issued together so they are in flight at once.
          if (i < 20) {
            const other = first === 'failed' ? 'succeeded' : 'failed';
            writes.push(s.batches.putItem(makeItem(run.id, i, { status: other })));
            writes.push(s.batches.putItem(makeItem(run.id, i, { status: i % 3 === 0 ? first : other })));
          }
        }
        await Promise.all(writes);

        const items = await s.batches.items(run.id, { afterIndex: -1, limit: 100 });
        expect(items).toHaveLength(40);
        const got = await s.batches.get(run.id);
        expect(got!.completed).toBe(items.filter((i) => i.status === 'succeeded').length);
        expect(got!.failed).toBe(items.filter((i) => i.status === 'failed').length);
        expect((await s.batches.doneIndexes(run.id)).size).toBe(40);
      });

      it('pages items, all or those that did not pass', async () => {
        const run = makeRun({ total: 30 });
        await s.batches.create(run);
        for (let i = 0; i < 30; i++) {
          // Every third failed; every fifth succeeded but did not pass.
          await s.batches.putItem(
            makeItem(run.id, i, i % 3 === 0 ? { status: 'failed' } : i % 5 === 0 ? { passed: false, reason: 'below_threshold' } : {}),
          );
        }
        const other = makeRun();
        await s.batches.create(other);
        await s.batches.putItem(makeItem(other.id, 5, { status: 'failed' }));

        const page = await s.batches.items(run.id, { afterIndex: 9, limit: 5 });
        expect(page.map((i) => i.index)).toEqual([10, 11, 12, 13, 14]);

        const failed: number[] = [];
        let after = -1;
        for (;;) {
          const p = await s.batches.items(run.id, { afterIndex: after, limit: 4, notPassedOnly: true });
          if (p.length === 0) break;
          expect(p.every((i) => (i.status === 'failed' || i.passed !== true) && i.batchId === run.id)).toBe(true);
          failed.push(...p.map((i) => i.index));
          after = p[p.length - 1]!.index;
        }
        expect(failed).toEqual([0, 3, 5, 6, 9, 10, 12, 15, 18, 20, 21, 24, 25, 27]);
      });

      it('reports the indexes already stored', async () => {
        const run = makeRun({ total: 10 });
        await s.batches.create(run);
        expect(await s.batches.doneIndexes(run.id)).toEqual(new Set());
        for (const i of [0, 3, 7]) await s.batches.putItem(makeItem(run.id, i));
        await s.batches.putItem(makeItem(run.id, 9, { status: 'failed' }));
        await s.batches.putItem(makeItem(run.id, 3));
        expect(await s.batches.doneIndexes(run.id)).toEqual(new Set([0, 3, 7, 9]));
        expect(await s.batches.doneIndexes('missing')).toEqual(new Set());
      });

      it('lists runs by status, oldest first', async () => {
        const runs = [
          makeRun({ status: 'running', createdAt: at(3) }),
          makeRun({ status: 'queued', createdAt: at(1) }),
          makeRun({ status: 'completed', createdAt: at(0) }),
          makeRun({ status: 'running', createdAt: at(2) }),
          makeRun({ status: 'cancelled', createdAt: at(4) }),
        ];
        for (const r of runs) await s.batches.create(r);
        const ids = (xs: BatchRun[]) => xs.map((r) => r.id);
        expect(ids(await s.batches.listByStatus(['queued', 'running']))).toEqual([runs[1]!.id, runs[3]!.id, runs[0]!.id]);
        expect(ids(await s.batches.listByStatus(['completed']))).toEqual([runs[2]!.id]);
        expect(await s.batches.listByStatus(['failed'])).toEqual([]);
        expect(await s.batches.listByStatus([])).toEqual([]);
        expect((await s.batches.listByStatus(['cancelled']))[0]).toEqual(runs[4]);
      });

      it('knows whether a queued or running run uses a dataset', async () => {
        const queued = makeRun({ status: 'queued' });
        const running = makeRun({ status: 'running' });
        const done = makeRun({ status: 'completed' });
        for (const r of [queued, running, done]) await s.batches.create(r);
        expect(await s.batches.datasetInUse(queued.datasetId)).toBe(true);
        expect(await s.batches.datasetInUse(running.datasetId)).toBe(true);
        expect(await s.batches.datasetInUse(done.datasetId)).toBe(false);
        expect(await s.batches.datasetInUse('unused')).toBe(false);
        await s.batches.update(running.id, { status: 'cancelled' });
        expect(await s.batches.datasetInUse(running.datasetId)).toBe(false);
      });
    });

    describe('rag indexes', () => {
      ragRepositoryTests(() => s);
    });
  });
}
