import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, authHeaders, gql, postJson, startServer, type RunningServer } from '../helpers/server.js';
import { storiesModel } from '../helpers/models.js';

const evalRecord = (i: number, extra: Record<string, unknown> = {}) => ({
  record_id: `r${i}`,
  input: { prompt: `Once upon a time ${i}` },
  reference: { answer: 'there was a little girl named Lily' },
  tags: ['story'],
  ...extra,
});

async function upload(url: string, form: FormData) {
  const res = await fetch(`${url}/v1/datasets`, { method: 'POST', headers: { 'x-api-key': API_KEY }, body: form });
  return { status: res.status, json: (await res.json()) as any };
}

describe.skipIf(!storiesModel.present)(storiesModel.title('datasets (contract section 4)'), () => {
  let server: RunningServer;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'datasets-test-'));
  beforeAll(async () => {
    server = await startServer({ DATA_DIR: dataDir });
  });
  afterAll(async () => {
    await server?.stop();
  });
  const create = (body: unknown) => postJson(`${server.url}/v1/datasets`, body);

  it('creates an eval set from JSON, reads and lists it', async () => {
    const r = await create({ name: 'golden', type: 'eval_set', records: [evalRecord(1), evalRecord(2)], metadata: { owner: 'qa' } });
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({ name: 'golden', type: 'eval_set', status: 'ready', record_count: 2 });
    expect(r.json.record_errors).toBeUndefined();
    const got = await fetch(`${server.url}/v1/datasets/${r.json.dataset_id}`, { headers: authHeaders });
    const d = await got.json();
    expect(d).toMatchObject({ dataset_id: r.json.dataset_id, metadata: { owner: 'qa' }, error: null });
    expect(typeof d.updated_at).toBe('string');
  });

  it('rejects bad records with the contract codes and keeps the good ones', async () => {
    const bad = [
      evalRecord(1),
      { record_id: 'x1' },
      { record_id: 'x2', input: { prompt: 5 } },
      { record_id: 'x3', input: { prompt: 'p' }, tags: Array.from({ length: 33 }, (_, i) => `t${i}`) },
      { record_id: 'x4', input: { prompt: 'p' }, tags: ['x'.repeat(65)] },
      { record_id: 'x5', input: { prompt: 'p' }, expected: { required_criteria: ['speed'] } },
      evalRecord(1),
      { record_id: 'x7', input: { prompt: 'p'.repeat(200_001) } },
      { record_id: 'x8', input: { prompt: 'p' }, metadata: { blob: 'm'.repeat(300 * 1024) } },
      { record_id: 'x9', input: { prompt: 'bad \ud800 text' } },
      { record_id: 'x10', input: { prompt: 'p' }, colour: 'red' },
      { record_id: 'x11', input: { prompt: 'p' }, expected: { max_latency_ms: -5 } },
      { record_id: 'x12', input: { prompt: 'nul \u0000 byte' } },
      { record_id: 'x13', input: { prompt: 'p' }, metadata: { a: { b: { c: { d: { e: { f: 1 } } } } } } },
    ];
    const r = await create({ name: 'mixed', type: 'eval_set', records: bad });
    expect(r.status).toBe(201);
    expect(r.json.record_count).toBe(1);
    const codes = Object.fromEntries(r.json.record_errors.map((e: any) => [e.index, e.code]));
    expect(codes).toEqual({
      1: 'missing_required_field',
      2: 'invalid_field_type',
      3: 'value_out_of_range',
      4: 'string_too_long',
      5: 'invalid_enum_value',
      6: 'duplicate_record_id',
      7: 'string_too_long',
      8: 'record_too_large',
      9: 'invalid_encoding',
      10: 'unsupported_field',
      11: 'value_out_of_range',
      12: 'invalid_encoding',
      13: 'value_out_of_range',
    });
    for (const e of r.json.record_errors) {
      expect(e.severity).toBe('error');
      expect(typeof e.message).toBe('string');
      expect(typeof e.path).toBe('string');
    }
    expect(r.json.record_errors.find((e: any) => e.index === 2).path).toBe('input.prompt');
  });

  it('all records rejected: 400 with counts; nothing stored', async () => {
    const before = (await (await fetch(`${server.url}/v1/datasets?limit=100`, { headers: authHeaders })).json()).data.length;
    const r = await create({ name: 'bad', type: 'eval_set', records: [{}, { input: {} }] });
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe('invalid_request');
    expect(r.json.error.details).toMatchObject({ rejected_records: 2, accepted_records: 0 });
    const after = (await (await fetch(`${server.url}/v1/datasets?limit=100`, { headers: authHeaders })).json()).data.length;
    expect(after).toBe(before);
  });

  it('dataset-level validation names the field', async () => {
    for (const [body, field] of [
      [{ type: 'eval_set', records: [evalRecord(1)] }, 'name'],
      [{ name: 'n', type: 'other', records: [evalRecord(1)] }, 'type'],
      [{ name: 'n', type: 'eval_set' }, 'records'],
      [{ name: 'n', type: 'eval_set', records: [] }, 'records'],
      [{ name: 'n', type: 'eval_set', records: [evalRecord(1)], metadata: 'x' }, 'metadata'],
    ] as const) {
      const r = await create(body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.error.details.field).toBe(field);
    }
  });

  it('GraphQL names its own fields in dataset errors; a __proto__ key in metadata is kept as data', async () => {
    const g = await gql(
      server.url,
      'mutation($input: CreateDatasetInput!) { createDataset(input: $input) { dataset { datasetId } } }',
      { input: { name: 'n', type: 'EVAL_SET', records: [evalRecord(1)], metadata: [1] } },
    );
    expect(g.json.errors[0].extensions).toMatchObject({ code: 'invalid_request', details: { field: 'input.metadata' } });
    expect(g.json.errors[0].message).toBe('input.metadata must be an object');

    const body = `{"name":"proto","type":"eval_set","records":[${JSON.stringify(evalRecord(1))}],"metadata":{"__proto__":{"polluted":true},"k":1}}`;
    const r = await create(body);
    expect(r.status).toBe(201);
    const d = await (await fetch(`${server.url}/v1/datasets/${r.json.dataset_id}`, { headers: authHeaders })).text();
    expect(JSON.parse(d).metadata).toEqual(JSON.parse('{"__proto__":{"polluted":true},"k":1}'));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('multipart uploads: jsonl, csv with a header row, txt', async () => {
    const jsonl = new FormData();
    jsonl.set('name', 'from-jsonl');
    jsonl.set('type', 'eval_set');
    jsonl.set('metadata', JSON.stringify({ source: 'file' }));
    jsonl.set('file', new Blob([`${JSON.stringify(evalRecord(1))}\nnot json\n${JSON.stringify(evalRecord(2))}\n`]), 'set.jsonl');
    const a = await upload(server.url, jsonl);
    expect(a.status).toBe(201);
    expect(a.json.record_count).toBe(2);
    expect(a.json.record_errors).toHaveLength(1);
    expect(a.json.record_errors[0]).toMatchObject({ index: 1, code: 'invalid_field_type' });

    const csv = new FormData();
    csv.set('name', 'from-csv');
    csv.set('type', 'eval_set');
    csv.set('file', new Blob(['record_id,prompt,reference,tags\nc1,"Hello, world",hi,a|b\nc2,Second,,\nc3,,,\n']), 'set.csv');
    const b = await upload(server.url, csv);
    expect(b.status).toBe(201);
    expect(b.json.record_count).toBe(2);
    expect(b.json.record_errors[0]).toMatchObject({ index: 2, code: 'missing_required_field' });

    const txt = new FormData();
    txt.set('name', 'corpus');
    txt.set('type', 'rag_corpus');
    txt.set('file', new Blob(['First document.\nStill first.\n\nSecond document.\n']), 'docs.txt');
    const c = await upload(server.url, txt);
    expect(c.status).toBe(201);
    expect(c.json).toMatchObject({ type: 'rag_corpus', record_count: 2 });

    const broken = new FormData();
    broken.set('name', 'broken');
    broken.set('type', 'eval_set');
    broken.set('file', new Blob(['prompt\n"unclosed quote\n']), 'set.csv');
    const br = await upload(server.url, broken);
    expect(br.status).toBe(400);
    expect(br.json.error.details.field).toBe('file');

    const other = new FormData();
    other.set('name', 'x');
    other.set('type', 'eval_set');
    other.set('file', new Blob(['x']), 'set.xlsx');
    expect((await upload(server.url, other)).status).toBe(400);
  });

  it('a body over 100 MB is refused with 413 before it is read whole', async () => {
    // Declares 101 MB and sends a few bytes: the answer comes without the rest being sent.
    const declared = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${server.url}/v1/datasets`, {
        method: 'POST',
        headers: { ...authHeaders, 'content-length': String(101 * 1024 * 1024) },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body });
          req.destroy();
        });
      });
      req.on('error', reject);
      req.write('{"name": "x", ');
    });
    expect(declared.status).toBe(413);
    expect(JSON.parse(declared.body).error.code).toBe('payload_too_large');
    // A multipart file past the limit, streamed: refused as soon as it passes 100 MB.
    const big = new FormData();
    big.set('name', 'big');
    big.set('type', 'eval_set');
    big.set('file', new Blob([new Uint8Array(101 * 1024 * 1024).fill(0x61)]), 'big.txt');
    const r = await fetch(`${server.url}/v1/datasets`, { method: 'POST', headers: { 'x-api-key': API_KEY }, body: big }).catch(() => undefined);
    if (r) expect(r.status).toBe(413);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it('lists with type filter, limit and an opaque cursor; GraphQL agrees', async () => {
    for (let i = 0; i < 3; i++) await create({ name: `page-${i}`, type: 'rag_corpus', records: [{ text: `doc ${i}` }] });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = `/v1/datasets?type=rag_corpus&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const page: any = await (await fetch(server.url + q, { headers: authHeaders })).json();
      expect(page.data.length).toBeLessThanOrEqual(2);
      for (const d of page.data) {
        expect(d.type).toBe('rag_corpus');
        seen.push(d.dataset_id);
      }
      cursor = page.next_cursor;
    } while (cursor);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBeGreaterThanOrEqual(4);
    const g = await gql(server.url, '{ datasets(type: RAG_CORPUS, first: 100) { nodes { datasetId type recordCount } pageInfo { hasNextPage } } }');
    expect(g.json.data.datasets.nodes.map((n: any) => n.datasetId)).toEqual(seen);
    // Paged as a relay connection: pageInfo.endCursor or any edge's cursor continues after that item.
    const pageQuery = 'query($after: String) { datasets(type: RAG_CORPUS, first: 2, after: $after) { edges { cursor node { datasetId } } pageInfo { hasNextPage endCursor } } }';
    const paged: string[] = [];
    let after: string | null = null;
    for (;;) {
      const conn: any = (await gql(server.url, pageQuery, { after })).json.data.datasets;
      paged.push(...conn.edges.map((e: any) => e.node.datasetId));
      if (!conn.pageInfo.hasNextPage) break;
      after = conn.pageInfo.endCursor;
    }
    expect(paged).toEqual(seen);
    const first: any = (await gql(server.url, pageQuery, { after: null })).json.data.datasets;
    const fromEdge: any = (await gql(server.url, pageQuery, { after: first.edges[0].cursor })).json.data.datasets;
    expect(fromEdge.edges[0].node.datasetId).toBe(seen[1]);
    const badAfter = await gql(server.url, '{ datasets(after: "garbage") { nodes { datasetId } } }');
    expect(badAfter.json.errors[0].extensions.code).toBe('invalid_request');
    const badFirst = await gql(server.url, '{ datasets(first: 101) { nodes { datasetId } } }');
    expect(badFirst.json.errors[0].extensions).toMatchObject({ code: 'invalid_request', details: { field: 'first' } });
    // Forward paging only: relay's last/before are not arguments here.
    const backward = await gql(server.url, '{ datasets(last: 2) { nodes { datasetId } } }');
    expect(backward.json.errors[0].extensions.code).toBe('invalid_request');
    const bad = await fetch(`${server.url}/v1/datasets?cursor=garbage`, { headers: authHeaders });
    expect(bad.status).toBe(400);
    const badLimit = await fetch(`${server.url}/v1/datasets?limit=101`, { headers: authHeaders });
    expect(badLimit.status).toBe(400);
  });

  it('deletes; unknown ids are 404', async () => {
    const r = await create({ name: 'temp', type: 'eval_set', records: [evalRecord(1)] });
    const del = await fetch(`${server.url}/v1/datasets/${r.json.dataset_id}`, { method: 'DELETE', headers: authHeaders });
    expect(del.status).toBe(200);
    const again = await fetch(`${server.url}/v1/datasets/${r.json.dataset_id}`, { headers: authHeaders });
    expect(again.status).toBe(404);
    expect((await again.json()).error.code).toBe('not_found');
  });

  it('GraphQL createDataset reports record errors; deleteDataset', async () => {
    const g = await gql(
      server.url,
      'mutation($input: CreateDatasetInput!) { createDataset(input: $input) { dataset { datasetId recordCount type } rejectedRecords recordErrors { index code path } } }',
      { input: { name: 'gql', type: 'EVAL_SET', records: [evalRecord(1), { record_id: 'z' }] } },
    );
    expect(g.json.data.createDataset.dataset.recordCount).toBe(1);
    expect(g.json.data.createDataset.recordErrors[0]).toMatchObject({ index: 1, code: 'missing_required_field' });
    const id = g.json.data.createDataset.dataset.datasetId;
    const d = await gql(server.url, 'mutation($id: String!) { deleteDataset(id: $id) }', { id });
    expect(d.json.data.deleteDataset).toBe(true);
    const missing = await gql(server.url, 'query($id: String!) { dataset(id: $id) { name } }', { id });
    expect(missing.json.errors[0].extensions.code).toBe('not_found');
  });
});
