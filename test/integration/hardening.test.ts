/**
 * Issue 15, the limits: GraphQL operation limits decided before any
 * resolver runs, generating fields against the rate limit, introspection
 * off, batching off, security headers, CORS, prototype keys in JSON bodies,
 * and slow clients (200 connections sending headers a byte a second).
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storiesModel } from '../helpers/models.js';
import { API_KEY, authHeaders, gql, postJson, startServer, type RunningServer } from '../helpers/server.js';

const CHAT = (alias: string) => `${alias}: chat(input: { prompt: "Once upon a time", maxNewTokens: 2, temperature: 0 }) { response }`;
const metricTokens = async (url: string) => {
  const text = await (await fetch(`${url}/v1/metrics?format=prometheus`, { headers: authHeaders })).text();
  const m = /^generated_tokens_total(?:\{[^}]*\})? (\d+(?:\.\d+)?)/m.exec(text) ?? /^completion_tokens_total(?:\{[^}]*\})? (\d+)/m.exec(text);
  return m ? Number(m[1]) : NaN;
};

describe.skipIf(!storiesModel.present)(storiesModel.title('hardening: GraphQL limits, headers, CORS, prototype keys, slow clients'), () => {
  let server: RunningServer;
  let strict: RunningServer;

  beforeAll(async () => {
    [server, strict] = await Promise.all([
      startServer({ RATE_LIMIT_PER_MINUTE: '10', CHAT_CACHE_TTL_SECONDS: '0', HTTP_HEADERS_TIMEOUT_MS: '3000', CORS_ORIGINS: 'https://app.example.com' }),
      startServer({ RATE_LIMIT_PER_MINUTE: '0', GRAPHQL_INTROSPECTION: '0', GRAPHQL_MAX_FIELDS: '12', GRAPHQL_MAX_COST: '60' }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([server?.stop(), strict?.stop()]);
  });

  it('1,000 aliases of chat: 400 invalid_request naming the limit, nothing generated, one request counted', async () => {
    const before = await fetch(`${server.url}/v1/health`);
    expect(before.status).toBe(200);
    const query = `mutation { ${Array.from({ length: 1000 }, (_, i) => CHAT(`a${i}`)).join(' ')} }`;
    const r = await postJson(`${server.url}/graphql`, { query }, { ...authHeaders });
    expect(r.status).toBe(400);
    expect(r.json.errors[0].extensions).toMatchObject({ code: 'invalid_request', details: { limit: expect.stringMatching(/^max_(aliases|tokens)$/) } });
    expect(r.json.data).toBeUndefined();
  });

  it('aliases, tokens and directives each have their limit, named in details', async () => {
    const aliases = await gql(server.url, `query { ${Array.from({ length: 16 }, (_, i) => `h${i}: health { status }`).join(' ')} }`);
    expect(aliases.status).toBe(400);
    expect(aliases.json.errors[0].extensions).toMatchObject({ code: 'invalid_request', details: { limit: 'max_aliases', max: 15, found: 16 } });
    const tokens = await gql(server.url, `query { health { ${Array.from({ length: 2100 }, () => 'status').join(' ')} } }`);
    expect(tokens.status).toBe(400);
    expect(tokens.json.errors[0].extensions).toMatchObject({ code: 'invalid_request', details: { limit: 'max_tokens', max: 2000 } });
    const directives = await gql(server.url, `query { health { status ${Array.from({ length: 21 }, () => '@include(if: true)').join(' ')} } }`);
    expect(directives.status).toBe(400);
    expect(directives.json.errors[0].extensions).toMatchObject({ code: 'invalid_request', details: { limit: 'max_directives', max: 20 } });
  });

  it('at most 4 generating fields per operation, and each counts against the rate limit', async () => {
    const five = await gql(server.url, `mutation { ${['a', 'b', 'c', 'd', 'e'].map(CHAT).join(' ')} }`);
    expect(five.status).toBe(400);
    expect(five.json.errors[0].extensions).toMatchObject({ code: 'invalid_request', details: { limit: 'max_generating_fields', max: 4, found: 5 } });
    // Through a fragment they count the same.
    const viaFragment = await gql(server.url, `mutation { ...F ${CHAT('z')} } fragment F on Mutation { ${['a', 'b', 'c', 'd'].map(CHAT).join(' ')} }`);
    expect(viaFragment.status).toBe(400);
    expect(viaFragment.json.errors[0].extensions.details).toMatchObject({ limit: 'max_generating_fields', found: 5 });

    const key2 = { ...authHeaders, 'x-api-key': 'test-key-2' };
    const three = await gql(server.url, `mutation { ${['a', 'b', 'c'].map(CHAT).join(' ')} }`, undefined, key2);
    expect(three.status, three.text).toBe(200);
    expect(Object.keys(three.json.data)).toEqual(['a', 'b', 'c']);
    // Three generating fields took three of the ten requests a minute.
    expect(three.res.headers.get('x-ratelimit-remaining')).toBe('7');
    const plain = await gql(server.url, '{ health { status } }', undefined, key2);
    expect(plain.res.headers.get('x-ratelimit-remaining')).toBe('6');
  });

  it('batching is off: a JSON array of operations is refused', async () => {
    const r = await postJson(`${server.url}/graphql`, [{ query: '{ health { status } }' }, { query: '{ health { status } }' }]);
    expect(r.status).toBe(400);
    expect(r.json.errors[0].extensions.code).toBe('invalid_request');
  });

  it('fields per operation and cost have their limits (GRAPHQL_MAX_FIELDS, GRAPHQL_MAX_COST)', async () => {
    const many = await gql(strict.url, `{ health { status version modelLoaded queueDepth uptimeSeconds } model { name contextWindow vocabSize } a: health { status } b: health { status } c: health { status } }`);
    expect(many.status).toBe(400);
    expect(many.json.errors[0].extensions.details.limit).toMatch(/^max_(fields|cost)$/);
    const fields = await gql(strict.url, `{ ...F ...F ...F } fragment F on Query { health { status version } model { name } }`);
    expect(fields.status).toBe(400);
    expect(fields.json.errors[0].extensions.details).toMatchObject({ limit: 'max_fields', max: 12 });
    const fine = await gql(strict.url, '{ health { status } }');
    expect(fine.status).toBe(200);
  });

  it('GRAPHQL_INTROSPECTION=0: __schema and __type are refused and errors suggest no field names', async () => {
    const r = await gql(strict.url, '{ __schema { types { name } } }');
    expect(r.status).toBe(400);
    expect(r.json.errors[0].extensions.code).toBe('invalid_request');
    expect(r.json.errors[0].extensions.details).toMatchObject({ limit: 'introspection' });
    const typo = await gql(strict.url, '{ helth { status } }');
    expect(typo.json.errors[0].extensions.code).toBe('invalid_request');
    expect(JSON.stringify(typo.json)).not.toMatch(/Did you mean/i);
    // On by default (GraphiQL needs it).
    expect((await gql(server.url, '{ __type(name: "Query") { name } }')).json.data.__type.name).toBe('Query');
  });

  it('security headers on every answer; CORS only for CORS_ORIGINS', async () => {
    const res = await fetch(`${server.url}/v1/health`, { headers: { origin: 'https://evil.example' } });
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(res.headers.get('access-control-allow-origin')).toBeNull();

    const preflight = await fetch(`${server.url}/v1/chat`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-api-key,content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(preflight.headers.get('access-control-allow-headers')).toContain('x-api-key');
    const allowed = await fetch(`${server.url}/v1/health`, { headers: { origin: 'https://app.example.com' } });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(allowed.headers.get('access-control-expose-headers')).toContain('x-request-id');
    // Without CORS_ORIGINS nobody gets CORS headers.
    const none = await fetch(`${strict.url}/v1/health`, { headers: { origin: 'https://app.example.com' } });
    expect(none.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('__proto__ and constructor.prototype keys in JSON bodies are inert data: never a prototype, never the request', async () => {
    const body = '{"prompt":"Once upon a time","max_new_tokens":2,"temperature":0,"__proto__":{"polluted":"yes","max_new_tokens":900},"constructor":{"prototype":{"polluted":"yes"}}}';
    const chat = await postJson(`${strict.url}/v1/chat`, body);
    expect(chat.status, chat.text).toBe(200);
    expect(chat.json.completion_tokens).toBeLessThanOrEqual(2);
    const records = [
      { record_id: 'r1', input: { prompt: 'Hi' }, reference: { answer: 'x' }, metadata: { k: 1 } },
    ];
    // JSON.stringify would drop a real __proto__ key: write it by hand.
    const raw = JSON.stringify({ name: 'proto', type: 'eval_set', records }).replace('"metadata":{"k":1}', '"metadata":{"k":1,"__proto__":{"polluted":"yes"}}');
    expect(raw).toContain('__proto__');
    const up = await postJson(`${strict.url}/v1/datasets`, raw);
    expect(up.status, up.text).toBe(201);
    const stored = await gql(strict.url, 'query($id: String!) { dataset(id: $id) { records(first: 5) { nodes { data } } } }', { id: up.json.dataset_id });
    // Kept as the client sent it, as an own property (JSON.parse never sets a prototype).
    const data = JSON.stringify(stored.json.data.dataset.records.nodes[0].data);
    expect(data).toContain('"__proto__":{"polluted":"yes"}');
    // The process still answers normally (nothing inherited a polluted field).
    const after = await postJson(`${strict.url}/v1/chat`, { prompt: 'Once upon a time', max_new_tokens: 3, temperature: 0 });
    expect(after.status).toBe(200);
    expect(JSON.stringify(after.json)).not.toContain('polluted');
  });

  it('200 connections sending headers a byte a second do not stop a normal client; they are cut off at HTTP_HEADERS_TIMEOUT_MS', async () => {
    const { port } = new URL(server.url);
    const slow: net.Socket[] = [];
    const closed = new Set<net.Socket>();
    const line = `GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ${'a'.repeat(200)}\r\n\r\n`;
    for (let i = 0; i < 200; i++) {
      const s = net.connect(Number(port), '127.0.0.1');
      s.on('error', () => {});
      s.on('close', () => closed.add(s));
      slow.push(s);
    }
    let sent = 0;
    const drip = setInterval(() => {
      for (const s of slow) if (!s.destroyed) s.write(line[sent % line.length]!);
      sent++;
    }, 1000);
    try {
      await new Promise((r) => setTimeout(r, 1500));
      // A normal client, with all 200 still open and dripping.
      expect(closed.size).toBe(0);
      const ok = await postJson(`${server.url}/v1/chat`, { prompt: 'Once upon a time', max_new_tokens: 4, temperature: 0 }, { ...authHeaders, 'x-api-key': API_KEY });
      expect(ok.status, ok.text).toBe(200);
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      // The server gives up on them (headersTimeout 3 s; Node checks every few seconds).
      const deadline = Date.now() + 20_000;
      while (closed.size < 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      expect(closed.size).toBe(200);
    } finally {
      clearInterval(drip);
      for (const s of slow) s.destroy();
    }
  }, 60_000);
});
