import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, authHeaders, gql, postJson, startServer, type RunningServer } from '../helpers/server.js';
import { storiesModel } from '../helpers/models.js';

function expectEnvelope(json: any, code: string) {
  expect(json.error.code).toBe(code);
  expect(typeof json.error.message).toBe('string');
  expect(typeof json.request_id).toBe('string');
}

describe.skipIf(!storiesModel.present)(storiesModel.title('contract sections 1-3: auth, ids, errors'), () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await server?.stop();
  });
  const chat = (body: unknown, headers: Record<string, string> = authHeaders) => postJson(`${server.url}/v1/chat`, body, headers);

  it('probes need no key', async () => {
    for (const p of ['/healthz', '/readyz', '/v1/health', '/health']) {
      const r = await fetch(server.url + p);
      expect(r.status, p).toBe(200);
      expect((await r.json()).request_id).toBeTruthy();
    }
    const h = await (await fetch(`${server.url}/v1/health`)).json();
    expect(h).toMatchObject({ status: 'ok', model: 'stories260K', device: 'cpu', model_loaded: true });
    expect(typeof h.uptime_s).toBe('number');
    expect(typeof h.version).toBe('string');
  });

  it('missing or wrong key is 401 unauthorized; both header styles work', async () => {
    const body = { prompt: 'hi', max_new_tokens: 2 };
    const none = await chat(body, { 'content-type': 'application/json' });
    expect(none.status).toBe(401);
    expectEnvelope(none.json, 'unauthorized');
    const wrong = await chat(body, { 'content-type': 'application/json', 'x-api-key': 'nope' });
    expect(wrong.status).toBe(401);
    const bearer = await chat(body, { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` });
    expect(bearer.status).toBe(200);
    const second = await chat(body, { 'content-type': 'application/json', 'x-api-key': 'test-key-2' });
    expect(second.status).toBe(200);
  });

  it('uses the client request id, or makes one; every response has timing', async () => {
    const mine = await chat({ prompt: 'hi', max_new_tokens: 1 }, { ...authHeaders, 'x-request-id': 'abc-123' });
    expect(mine.res.headers.get('x-request-id')).toBe('abc-123');
    expect(mine.json.request_id).toBe('abc-123');
    const err = await chat({}, { ...authHeaders, 'x-request-id': 'err-1' });
    expect(err.json.request_id).toBe('err-1');
    expect(err.res.headers.get('x-latency-ms')).not.toBeNull();
    const made = await chat({ prompt: 'hi', max_new_tokens: 1 });
    expect(made.json.request_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('unknown route is 404 in the envelope', async () => {
    const r = await fetch(`${server.url}/v1/nothing`, { headers: authHeaders });
    expect(r.status).toBe(404);
    expectEnvelope(await r.json(), 'not_found');
    const anon = await fetch(`${server.url}/nowhere`);
    expect([401, 404]).toContain(anon.status);
    expect((await anon.json()).error).toBeTruthy();
  });

  it('malformed JSON is 400 invalid_request', async () => {
    const r = await chat('{"prompt": ');
    expect(r.status).toBe(400);
    expectEnvelope(r.json, 'invalid_request');
  });

  it('oversized body is 413 payload_too_large', async () => {
    const r = await chat({ prompt: 'x'.repeat(3 * 1024 * 1024) });
    expect(r.status).toBe(413);
    expectEnvelope(r.json, 'payload_too_large');
  });

  it.each([
    [{}, 'prompt'],
    [{ prompt: '' }, 'prompt'],
    [{ prompt: '   ' }, 'prompt'],
    [{ prompt: 5 }, 'prompt'],
    [{ prompt: 'x'.repeat(200_001) }, 'prompt'],
    [{ prompt: 'hi', max_new_tokens: 0 }, 'max_new_tokens'],
    [{ prompt: 'hi', max_new_tokens: 1025 }, 'max_new_tokens'],
    [{ prompt: 'hi', max_new_tokens: 1.5 }, 'max_new_tokens'],
    [{ prompt: 'hi', max_new_tokens: '5' }, 'max_new_tokens'],
    [{ prompt: 'hi', temperature: -0.1 }, 'temperature'],
    [{ prompt: 'hi', temperature: 2.1 }, 'temperature'],
    [{ prompt: 'hi', top_p: 1.5 }, 'top_p'],
    [{ prompt: 'hi', top_k: -1 }, 'top_k'],
    [{ prompt: 'hi', repetition_penalty: 0 }, 'repetition_penalty'],
    [{ prompt: 'hi', seed: -1 }, 'seed'],
    [{ prompt: 'hi', seed: 1.5 }, 'seed'],
    [{ prompt: 'hi', mode: 'other' }, 'mode'],
    [{ prompt: 'hi', refine_steps: 4 }, 'refine_steps'],
    [{ prompt: 'hi', critique_temperature: 3 }, 'critique_temperature'],
    [{ prompt: 'hi', stop: [1] }, 'stop'],
    [{ prompt: 'hi', stop: [''] }, 'stop'],
    [{ prompt: 'hi', stream: 'yes' }, 'stream'],
  ])('validation: %j → 400 naming %s', async (body, field) => {
    const r = await chat(body);
    expect(r.status).toBe(400);
    expectEnvelope(r.json, 'invalid_request');
    expect(String(r.json.error.details.field).split('.')[0]).toBe(field);
  });

  it('a JSON body that is not an object is 400', async () => {
    for (const body of ['[]', '"text"', '42', 'null']) {
      const r = await chat(body);
      expect(r.status, body).toBe(400);
      expectEnvelope(r.json, 'invalid_request');
    }
  });

  it('valid JSON that is not an object says so (not "Malformed JSON body"), on every JSON route', async () => {
    for (const path of ['/v1/chat', '/v1/evaluate', '/v1/batch-evals', '/v1/datasets']) {
      for (const body of ['"hello"', '[]', '123', 'null', 'true']) {
        const r = await postJson(`${server.url}${path}`, body);
        expect(r.status, `${path} ${body}`).toBe(400);
        expectEnvelope(r.json, 'invalid_request');
        expect(r.json.error.message, `${path} ${body}`).toBe('request body must be a JSON object');
      }
    }
    for (const body of ['{"prompt": ', 'hello', '"unterminated']) {
      expect((await chat(body)).json.error.message, body).toBe('Malformed JSON body');
    }
  });

  it('validation messages name the field once, in each surface\'s own idiom', async () => {
    const range = await chat({ prompt: 'hi', max_new_tokens: 0 });
    expect(range.json.error).toMatchObject({ message: 'max_new_tokens must be between 1 and 1024', details: { field: 'max_new_tokens' } });
    expect((await chat({})).json.error.message).toBe('prompt is required');
    expect((await chat({ prompt: 'hi', top_p: 'x' })).json.error.message).toBe('top_p must be a number');
    const g = await gql(server.url, 'mutation { chat(input: {prompt: "hi", maxNewTokens: 0}) { response } }');
    expect(g.json.errors[0].message).toBe('input.maxNewTokens must be between 1 and 1024');
    expect(g.json.errors[0].extensions).toMatchObject({ code: 'invalid_request', details: { field: 'input.maxNewTokens' } });
    const topP = await gql(server.url, 'mutation { chat(input: {prompt: "hi", topP: 2}) { response } }');
    expect(topP.json.errors[0].message).toBe('input.topP must be between 0 and 1');
    const blank = await gql(server.url, 'mutation { chat(input: {prompt: "  "}) { response } }');
    expect(blank.json.errors[0].message).toBe('input.prompt must be non-empty');
    // A message that does not start with its field gets the field in front, once.
    const stops = await chat({ prompt: 'hi', stop: Array.from({ length: 17 }, (_, i) => `s${i}`) });
    expect(stops.json.error.message).toMatch(/^stop: /);
    expect(stops.json.error.details.field).toBe('stop');
  });

  it('GraphQL syntax, validation and variable errors carry extensions.request_id, as executed ones do', async () => {
    const headers = { ...authHeaders, 'x-request-id': 'gql-err-1' };
    for (const query of ['{ health { status ', '{ nope }', 'mutation($i: ChatInput!) { chat(input: $i) { response } }']) {
      const r = await postJson(`${server.url}/graphql`, { query, variables: { i: { maxNewTokens: 1 } } }, headers);
      expect(r.json.errors[0].extensions.code, query).toBe('invalid_request');
      expect(r.json.extensions?.request_id, query).toBe('gql-err-1');
      expect(r.res.headers.get('x-request-id')).toBe('gql-err-1');
    }
    const ok = await gql(server.url, '{ __typename }', undefined, headers);
    expect(ok.json.extensions.request_id).toBe('gql-err-1');
  });

  it('no GraphQL error exposes internals (originalError, stacks); a body that is not JSON stays 400', async () => {
    const r = await postJson(`${server.url}/graphql`, '{"query": "{ __typename }", ');
    expect(r.status).toBe(400);
    expect(r.json.errors[0].extensions.code).toBe('invalid_request');
    expect(r.json.errors[0].extensions.originalError).toBeUndefined();
    expect(r.text).not.toMatch(/SyntaxError|originalError|stack/);
    // A variable that fails coercion wraps GraphQL's own error: the client's to read, not internal_error.
    const v = await gql(server.url, 'mutation($i: ChatInput!) { chat(input: $i) { response } }', { i: { prompt: 5 } });
    expect(v.json.errors[0].extensions.code).toBe('invalid_request');
    expect(v.json.errors[0].message).toMatch(/String cannot represent/);
    expect(v.text).not.toMatch(/originalError|stack/);
  });

  it('an unknown batch artifact is 404 not_found, not an unhandled 500', async () => {
    server.logs.length = 0;
    const r = await fetch(`${server.url}/v1/batch-evals/be_unknown/artifacts/nope.txt`, { headers: authHeaders });
    expect(r.status).toBe(404);
    const body = await r.json();
    expectEnvelope(body, 'not_found');
    expect(body.error.message).toMatch(/nope\.txt/);
    expect(server.logs.filter((l) => l.includes('unhandled error'))).toEqual([]);
  });

  it('the process survives all of the above', async () => {
    const r = await fetch(`${server.url}/healthz`);
    expect(r.status).toBe(200);
  });
});

describe('start-up failures', () => {
  it('a model that fails to load leaves the server up, not ready, and degraded', async () => {
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'broken-model-'));
    fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type":"llama"}');
    const server = await startServer({ MODEL_PATH: dir }, { waitReady: false });
    try {
      let health: any;
      for (let i = 0; i < 100; i++) {
        health = await (await fetch(`${server.url}/v1/health`)).json();
        if (health.status !== 'loading') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(health.status).toBe('degraded');
      expect(health.model_loaded).toBe(false);
      expect(health.reason).toContain('config.json');
      const ready = await fetch(`${server.url}/readyz`);
      expect(ready.status).toBe(503);
      const body = await ready.json();
      expectEnvelope(body, 'service_unavailable');
      expect(body.error.details.reason).toBeTruthy();
      const chat = await postJson(`${server.url}/v1/chat`, { prompt: 'hi' });
      expect(chat.status).toBe(503);
      expectEnvelope(chat.json, 'service_unavailable');
    } finally {
      await server.stop();
    }
  });

  it('offline with nothing local, the server exits with an error naming MODEL_PATH', async () => {
    const { spawnSync } = await import('node:child_process');
    const { REPO } = await import('../helpers/server.js');
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? '', PORT: '0', MODEL_NAME: 'no-such-org/no-such-model', MODEL_CACHE_DIR: '/tmp/empty-model-cache-test', LOG_LEVEL: 'silent' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('MODEL_PATH');
  });

  it('a MODEL_PATH that does not exist exits at once naming it', async () => {
    const { spawnSync } = await import('node:child_process');
    const { REPO } = await import('../helpers/server.js');
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? '', PORT: '0', MODEL_PATH: '/nonexistent/model.bin' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('MODEL_PATH');
  });
});
