/**
 * The corpus of known-nasty inputs (test/fuzz/corpus/, kept in the
 * repository; the 100 MB and 10,000-item cases and the bytes that are not
 * UTF-8 are generated here): every one sent where it can hurt. Every answer is 2xx or 4xx in the contract's
 * envelope, stored data stays as sent, and the process stays up.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storiesModel } from '../helpers/models.js';
import { authHeaders, gql, postJson, startServer, type RunningServer } from '../helpers/server.js';
import { checkGraphql, checkRest, pct, send } from './lib.js';

const CORPUS = path.join(import.meta.dirname, 'corpus');
const read = (name: string) => fs.readFileSync(path.join(CORPUS, name));
/**
 * Bytes that are not UTF-8, built here (a binary file has no place in the
 * repository): a JSON body whose prompt holds an invalid pair, lone
 * continuation bytes, a truncated 3-byte sequence, an encoded surrogate
 * half, a truncated 4-byte sequence, 0xFF 0xFE and an overlong slash.
 */
const INVALID_UTF8 = Buffer.concat([
  Buffer.from('{"prompt": "'),
  Buffer.from([0xc3, 0x28, 0x20, 0xa0, 0xa1, 0x20, 0xe2, 0x28, 0xa1, 0x20, 0xed, 0xa0, 0x80, 0x20, 0xf0, 0x28, 0x8c, 0xbc, 0x20, 0xff, 0xfe, 0x20, 0xc0, 0xaf]),
  Buffer.from('"}'),
]);
const lines = (name: string) => read(name).toString('utf8').split('\n').filter((l, i, all) => l !== '' || i < all.length - 1);

const JSON_ROUTES = ['/v1/chat', '/v1/evaluate', '/v1/batch-evals', '/v1/datasets', '/v1/embeddings', '/v1/rag', '/v1/rag/search', '/v1/rag/indexes', '/v1/chat/completions', '/v1/completions'];

async function upload(url: string, type: string, filename: string, bytes: Buffer | string) {
  const form = new FormData();
  form.set('name', `corpus ${filename}`);
  form.set('type', type);
  form.set('file', new Blob([typeof bytes === 'string' ? bytes : new Uint8Array(bytes)]), filename);
  const res = await fetch(`${url}/v1/datasets`, { method: 'POST', headers: { 'x-api-key': authHeaders['x-api-key'] }, body: form });
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: await res.text() };
}

describe.skipIf(!storiesModel.present)(storiesModel.title('corpus of nasty inputs'), () => {
  let server: RunningServer;
  let runId: string;
  let evalSetId: string;

  beforeAll(async () => {
    server = await startServer({ RATE_LIMIT_PER_MINUTE: '0' });
    const ds = await postJson(`${server.url}/v1/datasets`, { name: 'corpus', type: 'eval_set', records: [{ record_id: 'a', input: { prompt: 'Once' }, reference: { answer: 'upon' } }] });
    evalSetId = ds.json.dataset_id;
    const run = await postJson(`${server.url}/v1/batch-evals`, { dataset_id: evalSetId, max_new_tokens: 2, temperature: 0 });
    runId = run.json.batch_eval_id;
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('json-bodies.txt, nesting 10,000 deep and bytes that are not UTF-8, on every JSON route and /graphql', async () => {
    const bodies: Array<string | Buffer> = [...lines('json-bodies.txt'), read('deep-array-10000.json').toString(), read('deep-object-10000.json').toString(), INVALID_UTF8];
    for (const route of JSON_ROUTES) {
      for (const body of bodies) {
        const a = await send(`${server.url}${route}`, { method: 'POST', headers: authHeaders, body: typeof body === 'string' ? body : new Uint8Array(body) });
        checkRest(`POST ${route} ${String(body).slice(0, 80)}`, a);
      }
    }
    for (const body of [read('deep-array-10000.json').toString(), `{"query": "{ health { status } }", "variables": ${read('deep-object-10000.json')}}`, INVALID_UTF8]) {
      checkGraphql('deep /graphql', await send(`${server.url}/graphql`, { method: 'POST', headers: authHeaders, body }));
    }
  }, 240_000);

  it('NUL, lone surrogates, right-to-left marks and emoji sequences are answered and stored as sent', async () => {
    const prompts = ['a\u0000b', 'lone \ud800 surrogate', '\u202eright-to-left\u202c \u200f', '👩‍👩‍👧‍👦 🏳️‍🌈', '\ufeffBOM'];
    for (const prompt of prompts) {
      const r = await postJson(`${server.url}/v1/chat`, { prompt, max_new_tokens: 2, temperature: 0 });
      expect(r.status, JSON.stringify(prompt)).toBe(200);
    }
    const ds = await postJson(`${server.url}/v1/datasets`, { name: 'unicode', type: 'eval_set', records: prompts.map((p, i) => ({ record_id: `u${i}`, input: { prompt: p } })) });
    expect(ds.status, ds.text).toBe(201);
    // Stored text must be valid UTF-8 without NUL: those two records are refused by code, the rest kept exactly.
    expect(ds.json.record_errors.map((e: any) => [e.record_id, e.code])).toEqual([['u0', 'invalid_encoding'], ['u1', 'invalid_encoding']]);
    const stored = await gql(server.url, 'query($id: String!) { dataset(id: $id) { records(first: 10) { nodes { data } } } }', { id: ds.json.dataset_id });
    expect(stored.json.data.dataset.records.nodes.map((n: any) => n.data.input.prompt)).toEqual(prompts.slice(2));
  });

  it('uploads: the JSON bodies as JSONL, invalid UTF-8 as every format, CSV with formula prefixes and quoted newlines', async () => {
    checkRest('upload json-bodies.jsonl', await upload(server.url, 'eval_set', 'bodies.jsonl', read('json-bodies.txt')));
    for (const name of ['bad.jsonl', 'bad.csv', 'bad.txt', 'bad.json']) {
      for (const type of ['eval_set', 'rag_corpus']) checkRest(`upload invalid utf-8 ${name} ${type}`, await upload(server.url, type, name, INVALID_UTF8));
    }
    const csv = await upload(server.url, 'eval_set', 'formulas.csv', read('formulas-and-newlines.csv'));
    checkRest('upload formulas.csv', csv);
    expect(csv.status, csv.body).toBe(201);
    const id = JSON.parse(csv.body).dataset_id;
    const stored = await gql(server.url, 'query($id: String!) { dataset(id: $id) { records(first: 10) { nodes { data } } } }', { id });
    const byId = Object.fromEntries(stored.json.data.dataset.records.nodes.map((n: any) => [n.data.record_id, n.data]));
    // Stored as text, exactly: formulas are data (nothing here writes CSV back out), quoted newlines stay inside their field.
    expect(byId.f1.input.prompt).toBe('=HYPERLINK("http://evil.example","click")');
    expect(byId.f2.input.prompt).toBe("+cmd|' /C calc'!A0");
    expect(byId.f4.input.prompt).toBe('a quoted\nnewline inside, and "quotes"');
    expect(byId.f5.reference.answer).toBe('line one\r\nline two');
  });

  it('path traversal in artifact names: 404, never a file', async () => {
    for (const name of lines('artifact-names.txt')) {
      const a = await send(`${server.url}/v1/batch-evals/${runId}/artifacts/${name}`, { headers: authHeaders });
      checkRest(`artifact ${name}`, a);
      expect(a.status, name).toBeGreaterThanOrEqual(400);
      expect(a.body).not.toMatch(/SQLite format|root:/);
    }
  });

  it('forged cursors and SQL metacharacters in every list filter', async () => {
    const cursors = lines('cursors.txt');
    // A NUL byte too (built here: it would make the corpus file binary).
    const filters = [...lines('filters.txt'), 'eval_set\u0000'];
    for (const c of cursors) {
      for (const p of ['/v1/datasets', '/v1/rag/indexes', `/v1/batch-evals/${runId}/failures`]) {
        const a = await send(`${server.url}${p}?cursor=${pct(c)}`, { headers: authHeaders });
        checkRest(`GET ${p}?cursor=${c}`, a);
        expect(a.status, `${p} ${c}`).toBe(400);
      }
      for (const [q, v] of [['datasets(first: 5, after: $c) { nodes { datasetId } }', c], ['ragIndexes(first: 5, after: $c) { nodes { indexId } }', c], ['batchEvals(first: 5, after: $c) { nodes { batchEvalId } }', c]] as const) {
        const a = await send(`${server.url}/graphql`, { method: 'POST', headers: authHeaders, body: JSON.stringify({ query: `query($c: String) { ${q} }`, variables: { c: v } }) });
        checkGraphql(`${q} ${c}`, a);
        expect(JSON.parse(a.body).errors?.[0]?.extensions?.code, `${q} ${c}`).toBe('invalid_request');
      }
    }
    for (const f of filters) {
      for (const p of [`/v1/datasets?type=${pct(f)}`, `/v1/rag/indexes?status=${pct(f)}`, `/v1/rag/indexes?dataset_id=${pct(f)}`, `/v1/batch-evals/${runId}/failures?criterion=${pct(f)}`, `/v1/batch-evals/${runId}/failures?reason=${pct(f)}`]) {
        const a = await send(`${server.url}${p}`, { headers: authHeaders });
        checkRest(`GET ${p}`, a);
        // Either refused or an honest, empty answer: a filter never widens what is returned.
        if (a.status === 200) {
          const j = JSON.parse(a.body);
          const items = j.items ?? j.data ?? j.failures ?? j.indexes ?? [];
          expect(items, p).toHaveLength(0);
        }
      }
    }
    // The data is all still there.
    expect((await postJson(`${server.url}/v1/batch-evals`, { dataset_id: evalSetId, max_new_tokens: 1 })).status).toBe(202);
  });

  it('10,000 stop strings and 1,000 aliases of chat are refused before any generation', async () => {
    const stop = Array.from({ length: 10_000 }, (_, i) => `s${i}`);
    for (const [p, body] of [
      ['/v1/chat', { prompt: 'Once', stop }],
      ['/v1/chat/completions', { model: 'any', messages: [{ role: 'user', content: 'Once' }], stop }],
      ['/v1/completions', { model: 'any', prompt: 'Once', stop }],
    ] as const) {
      const a = await send(`${server.url}${p}`, { method: 'POST', headers: authHeaders, body: JSON.stringify(body) });
      checkRest(`POST ${p} 10,000 stops`, a);
      expect(a.status, p).toBe(400);
    }
    const g = await send(`${server.url}/graphql`, { method: 'POST', headers: authHeaders, body: JSON.stringify({ query: 'mutation($s: [String!]) { chat(input: { prompt: "Once", stop: $s }) { response } }', variables: { s: stop } }) });
    checkGraphql('chat 10,000 stops', g);
    expect(JSON.parse(g.body).errors[0].extensions.code).toBe('invalid_request');
    const aliases = await send(`${server.url}/graphql`, { method: 'POST', headers: authHeaders, body: JSON.stringify({ query: read('chat-1000-aliases.graphql').toString() }) });
    expect(aliases.status).toBe(400);
    expect(JSON.parse(aliases.body).errors[0].extensions).toMatchObject({ code: 'invalid_request', details: { limit: expect.any(String) } });
  });

  it('a 100 MB multipart part with no boundary end: refused, and the process lives', async () => {
    const boundary = 'nasty-boundary';
    const head = Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="big.jsonl"\r\ncontent-type: application/octet-stream\r\n\r\n`);
    const chunk = Buffer.alloc(1024 * 1024, 'x');
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === 0) controller.enqueue(head);
        if (sent >= 101) return controller.close();
        sent++;
        controller.enqueue(chunk);
      },
    });
    let status = 0;
    try {
      const res = await fetch(`${server.url}/v1/datasets`, {
        method: 'POST',
        headers: { 'x-api-key': authHeaders['x-api-key'], 'content-type': `multipart/form-data; boundary=${boundary}` },
        body,
        duplex: 'half',
      } as RequestInit);
      status = res.status;
      const text = await res.text();
      expect(JSON.parse(text).error.code).toMatch(/^(payload_too_large|invalid_request)$/);
    } catch {
      // The server may close the connection once it has refused the upload, before the client has sent it all.
      status = -1;
    }
    expect([400, 413, -1]).toContain(status);
    const alive = await fetch(`${server.url}/healthz`).catch((err: unknown) => {
      throw new Error(`server gone after the 100 MB part: ${String(err)}\n${server.logs.slice(-30).join('\n')}`);
    });
    expect(alive.status).toBe(200);
    expect((await postJson(`${server.url}/v1/chat`, { prompt: 'Once', max_new_tokens: 2 })).status).toBe(200);
  }, 120_000);
});
