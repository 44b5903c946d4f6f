/**
 * Property-based fuzzing of every REST route (issue 15): arbitrary JSON and
 * arbitrary bytes, biased towards each route's own fields so some requests
 * get past validation. Every answer must be 2xx or a 4xx in the contract's
 * envelope, never a 5xx, and the process must stay up throughout.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storiesModel } from '../helpers/models.js';
import { authHeaders, postJson, startServer, type RunningServer } from '../helpers/server.js';
import { checkRest, fieldObject, fuzzParams, jsonBody, nastyNumber, nastyString, pct, send, tallyReport } from './lib.js';

const SAMPLING = ['max_new_tokens', 'temperature', 'top_p', 'top_k', 'seed', 'stop', 'repetition_penalty', 'stream'];
/** Each route's fields, and a valid body (given the seeded ids) that the fuzzer mutates, so many cases pass most of validation. */
const ROUTES: Array<{ path: string; fields: string[]; valid: (ids: Record<string, string>) => Record<string, unknown> }> = [
  { path: '/v1/chat', fields: ['prompt', 'mode', 'refine_steps', 'critique_temperature', 'response_format', ...SAMPLING], valid: () => ({ prompt: 'Once upon a time', max_new_tokens: 4, temperature: 0 }) },
  { path: '/v1/evaluate', fields: ['prompt', 'response', 'reference', 'criteria', 'judge', 'max_new_tokens', 'temperature'], valid: () => ({ prompt: 'Once upon a time', response: 'there was a girl', reference: 'there was', criteria: ['accuracy'] }) },
  { path: '/v1/batch-evals', fields: ['dataset_id', 'criteria', 'concurrency', 'max_new_tokens', 'temperature', 'seed', 'judge', 'model'], valid: (ids) => ({ dataset_id: ids.evalSet, max_new_tokens: 2, temperature: 0 }) },
  { path: '/v1/datasets', fields: ['name', 'type', 'records', 'metadata'], valid: () => ({ name: 'fuzzed', type: 'eval_set', records: [{ record_id: 'a', input: { prompt: 'hi' } }] }) },
  { path: '/v1/embeddings', fields: ['input', 'model', 'normalize', 'truncate', 'encoding_format', 'dimensions'], valid: () => ({ input: ['hello', 'world'] }) },
  { path: '/v1/rag', fields: ['query', 'index_id', 'dataset_id', 'top_k', 'mode', 'filter', 'max_new_tokens', 'temperature', 'stream'], valid: (ids) => ({ query: 'red ball', index_id: ids.index, max_new_tokens: 4 }) },
  { path: '/v1/rag/search', fields: ['query', 'index_id', 'dataset_id', 'top_k', 'mode', 'filter'], valid: (ids) => ({ query: 'red ball', index_id: ids.index }) },
  { path: '/v1/rag/indexes', fields: ['dataset_id', 'chunk_tokens', 'chunk_overlap'], valid: (ids) => ({ dataset_id: ids.corpus, chunk_tokens: 64, chunk_overlap: 8 }) },
  { path: '/v1/chat/completions', fields: ['model', 'messages', 'max_tokens', 'max_completion_tokens', 'n', 'stream', 'stream_options', 'logprobs', 'top_logprobs', 'response_format', 'logit_bias', 'presence_penalty', 'frequency_penalty', 'user', ...SAMPLING], valid: (ids) => ({ model: ids.model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 }) },
  { path: '/v1/completions', fields: ['model', 'prompt', 'max_tokens', 'n', 'echo', 'logprobs', 'stream', 'suffix', ...SAMPLING], valid: (ids) => ({ model: ids.model, prompt: 'Once', max_tokens: 4 }) },
];

describe.skipIf(!storiesModel.present)(storiesModel.title('fuzz: every REST route'), () => {
  let server: RunningServer;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    // No rate limit (the fuzzer sends thousands of requests); a small waiting line so a burst of valid generations cannot pile up.
    server = await startServer({ RATE_LIMIT_PER_MINUTE: '0' });
    const evalSet = await postJson(`${server.url}/v1/datasets`, {
      name: 'fuzz evals',
      type: 'eval_set',
      records: [{ record_id: 'a', input: { prompt: 'Once upon a time' }, reference: { answer: 'there was' } }, { record_id: 'b', input: { prompt: 'Tom' } }],
    });
    ids.evalSet = evalSet.json.dataset_id;
    const corpus = await postJson(`${server.url}/v1/datasets`, { name: 'fuzz corpus', type: 'rag_corpus', records: [{ doc_id: 'd1', text: 'Lily had a red ball.' }, { doc_id: 'd2', text: 'Tom ran home.' }] });
    ids.corpus = corpus.json.dataset_id;
    ids.index = corpus.json.index_id;
    const run = await postJson(`${server.url}/v1/batch-evals`, { dataset_id: ids.evalSet, max_new_tokens: 4, temperature: 0 });
    ids.run = run.json.batch_eval_id;
    ids.model = (await (await fetch(`${server.url}/v1/models`, { headers: authHeaders })).json()).data[0].id;
  });
  afterAll(async () => {
    console.log(`REST fuzz answers by route and status:\n${tallyReport()}`);
    await server?.stop();
  });

  /** An id: a real one of the right kind now and then, otherwise anything. */
  const anId = () => fc.oneof({ weight: 1, arbitrary: fc.constantFrom(...Object.values(ids)) }, { weight: 3, arbitrary: nastyString });
  /** Values for body fields: nasty ones, real ids, and plausible ones (so requests pass validation sometimes). */
  const values = () =>
    fc.oneof(
      { weight: 4, arbitrary: fc.oneof(nastyString, nastyNumber, fc.boolean(), fc.constant(null), fc.jsonValue({ maxDepth: 3 })) },
      { weight: 1, arbitrary: fc.constantFrom(...Object.values(ids)) },
      { weight: 2, arbitrary: fc.constantFrom('Once upon a time', 4, 0, 0.5, ['accuracy'], ['Lily'], [{ role: 'user', content: 'Hi' }], 'lexical', 'hybrid', 'eval_set', 'rag_corpus', true, false) },
    );

  /** A valid body with some fields dropped and up to two set to anything. */
  const mutated = (route: (typeof ROUTES)[number]) => {
    const valid = route.valid(ids);
    return fc
      .tuple(fc.subarray(Object.keys(valid)), fc.dictionary(fc.constantFrom(...route.fields, '__proto__'), values(), { maxKeys: 2 }))
      .map(([kept, overrides]) => JSON.stringify({ ...Object.fromEntries(kept.map((k) => [k, valid[k]])), ...overrides }));
  };

  for (const route of ROUTES) {
    it(`POST ${route.path}: arbitrary JSON bodies`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.oneof({ weight: 1, arbitrary: jsonBody(route.fields, values()) }, { weight: 1, arbitrary: mutated(route) }), async (body) => {
          checkRest(`POST ${route.path} ${body.slice(0, 200)}`, await send(`${server.url}${route.path}`, { method: 'POST', headers: authHeaders, body }));
        }),
        fuzzParams,
      );
    }, 300_000);
  }

  it('arbitrary bytes to every JSON route, as JSON, as gzip and with odd content types', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ROUTES.map((r) => r.path), '/graphql'),
        fc.uint8Array({ maxLength: 300 }),
        fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16'),
        fc.constantFrom(undefined, 'gzip', 'deflate', 'br', 'identity'),
        async (path, bytes, type, encoding) => {
          const headers: Record<string, string> = { 'x-api-key': authHeaders['x-api-key'], 'content-type': type, ...(encoding ? { 'content-encoding': encoding } : {}) };
          const a = await send(`${server.url}${path}`, { method: 'POST', headers, body: bytes });
          if (path === '/graphql') expect(a.status).toBeLessThan(500);
          else checkRest(`POST ${path} ${bytes.length} bytes ${type} ${encoding}`, a);
        },
      ),
      fuzzParams,
    );
  }, 300_000);

  it('GET and DELETE with arbitrary ids, names, cursors and query strings', async () => {
    const paths = (id: string, name: string) => [
      `/v1/datasets/${id}`,
      `/v1/evals/${id}`,
      `/v1/batch-evals/${id}`,
      `/v1/batch-evals/${id}/result`,
      `/v1/batch-evals/${id}/distribution`,
      `/v1/batch-evals/${id}/failures`,
      `/v1/batch-evals/${id}/artifacts/${name}`,
      `/v1/rag/indexes/${id}`,
      `/v1/models/${id}`,
      '/v1/datasets',
      '/v1/rag/indexes',
      '/v1/models',
      '/v1/metrics',
      '/v1/health',
    ];
    const query = fieldObject(['limit', 'cursor', 'type', 'status', 'dataset_id', 'criterion', 'reason', 'bins', 'min_score', 'max_score', 'after'], fc.oneof(nastyString, nastyNumber.map(String))).map((q) =>
      Object.entries(q).map(([k, v]) => `${pct(k)}=${pct(String(v))}`).join('&'),
    );
    await fc.assert(
      fc.asyncProperty(anId(), fc.oneof(nastyString, fc.constantFrom('predictions.jsonl', 'failures.jsonl', '..%2F..%2Fserver.db', '%00')), query, fc.nat(13), fc.boolean(), async (id, name, q, which, raw) => {
        // Raw: the string as it is in the path (what a careless client sends), else percent-encoded.
        const enc = (s: string) => (raw ? s.replace(/[?#\s]/g, '') : pct(s));
        const path = paths(enc(id), enc(name))[which]!;
        const url = `${server.url}${path}${q ? `?${q}` : ''}`;
        let a;
        try {
          a = await send(url, { headers: authHeaders });
        } catch (err) {
          // fetch refuses some raw paths itself (invalid URL): nothing reached the server.
          if (raw && err instanceof TypeError) return;
          throw err;
        }
        // Named by the path fetch really sent (it resolves dot segments of a raw path).
        checkRest(`GET ${new URL(url).pathname}?${q}`, a);
      }),
      fuzzParams,
    );
    // Deleting arbitrary ids: 404s (or the index/dataset really named, once: then 200/409).
    await fc.assert(
      fc.asyncProperty(nastyString, fc.constantFrom('/v1/datasets/', '/v1/rag/indexes/'), async (id, base) => {
        checkRest(`DELETE ${base}${id}`, await send(`${server.url}${base}${pct(id)}`, { method: 'DELETE', headers: authHeaders }));
      }),
      { ...fuzzParams, numRuns: Math.ceil(fuzzParams.numRuns / 3) },
    );
  }, 300_000);

  it('the process stayed up and answers normally', async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const chat = await postJson(`${server.url}/v1/chat`, { prompt: 'Once upon a time', max_new_tokens: 4, temperature: 0 });
    expect(chat.status).toBe(200);
    expect(server.proc.exitCode).toBeNull();
  });
});
