import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeaders, gql, postJson, startServer, type RunningServer } from '../helpers/server.js';

const API_KEY_2 = 'test-key-2';
import { parseExposition, sampleValue, type Family } from '../helpers/prometheus-text.js';
import { storiesModel } from '../helpers/models.js';

describe.skipIf(!storiesModel.present)(storiesModel.title('contract section 6: metrics'), () => {
  let server: RunningServer;
  beforeAll(async () => {
    // Room for every request below within one minute's limit.
    server = await startServer({ RATE_LIMIT_PER_MINUTE: '10000' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  async function scrape(): Promise<{ res: Response; text: string; families: Map<string, Family> }> {
    const res = await fetch(`${server.url}/v1/metrics?format=prometheus`, { headers: authHeaders });
    expect(res.status).toBe(200);
    const text = await res.text();
    // Throws on any line the exposition format does not allow.
    return { res, text, families: parseExposition(text) };
  }

  /** Scrapes until `done` holds (a response's metrics are recorded when it has finished), then returns that scrape. */
  async function scrapeUntil(done: (f: Map<string, Family>) => boolean): Promise<Map<string, Family>> {
    for (let i = 0; ; i++) {
      const { families } = await scrape();
      if (done(families) || i >= 20) return families;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('needs the key', async () => {
    expect((await fetch(`${server.url}/v1/metrics`)).status).toBe(401);
    expect((await fetch(`${server.url}/v1/metrics?format=prometheus`)).status).toBe(401);
  });

  it('Prometheus output parses strictly and its counters match the requests sent', async () => {
    const before = (await scrape()).families;
    const v0 = (name: string, labels: Record<string, string> = {}) => sampleValue(before, name, labels);

    const N = 3;
    const chats = [];
    for (let i = 0; i < N; i++) {
      // Distinct greedy prompts: each is generated, none answered from the response cache.
      const r = await postJson(`${server.url}/v1/chat`, { prompt: `Once upon a time, number ${i} saw`, temperature: 0, max_new_tokens: 6 + i });
      expect(r.status).toBe(200);
      chats.push(r.json);
    }
    // The first request again: answered from the response cache, so no generation and no new tokens.
    const again = await postJson(`${server.url}/v1/chat`, { prompt: 'Once upon a time, number 0 saw', temperature: 0, max_new_tokens: 6 });
    expect(again.json.cache_hit).toBe(true);
    const M = 2;
    for (const path of ['/v1/datasets-nope/ds_abc123', '/v1/no/such/route']) {
      expect((await fetch(server.url + path, { headers: authHeaders })).status).toBe(404);
    }
    // Refused before routing: still counted under its route template, never its raw path.
    expect((await postJson(`${server.url}/v1/chat`, { prompt: 'x' }, { 'content-type': 'application/json' })).status).toBe(401);
    // A route that matched and answered 404 keeps its template.
    expect((await fetch(`${server.url}/v1/datasets/ds_doesnotexist42`, { headers: authHeaders })).status).toBe(404);
    const q = await gql(server.url, '{ health { status } }');
    expect(q.status).toBe(200);
    const bad = await gql(server.url, '{ health { status ');
    expect(bad.json.errors[0].extensions.code).toBe('invalid_request');

    const chatRoute = { route: '/v1/chat', method: 'POST' };
    const after = await scrapeUntil(
      (f) => sampleValue(f, 'http_requests_total', { route: 'unmatched', status_class: '4xx' }) - v0('http_requests_total', { route: 'unmatched', status_class: '4xx' }) >= M,
    );
    const delta = (name: string, labels: Record<string, string> = {}) => sampleValue(after, name, labels) - v0(name, labels);

    expect(delta('http_requests_total', { ...chatRoute, status_class: '2xx' })).toBe(N + 1);
    expect(delta('cache_misses_total')).toBe(N);
    expect(delta('cache_hits_total')).toBe(1);
    expect(delta('http_requests_total', { ...chatRoute, status_class: '4xx' })).toBe(1);
    expect(delta('http_requests_total', { route: 'unmatched', method: 'GET', status_class: '4xx' })).toBe(M);
    expect(delta('http_requests_total', { route: '/v1/datasets/:id', method: 'GET', status_class: '4xx' })).toBe(1);
    expect(delta('http_requests_total', { route: '/graphql', method: 'POST', status_class: '2xx', operation_type: 'query' })).toBe(1);
    expect(delta('http_requests_total', { route: '/graphql', method: 'POST' })).toBe(2);
    // The first scrape itself, counted once it finished.
    expect(delta('http_requests_total', { route: '/v1/metrics', method: 'GET', status_class: '2xx' })).toBeGreaterThanOrEqual(1);
    // The histogram counts every request the counter does.
    expect(delta('http_request_duration_seconds_count', { ...chatRoute, status_class: '2xx' })).toBe(N + 1);

    const completion = chats.reduce((s, c) => s + c.completion_tokens, 0);
    const prompt = chats.reduce((s, c) => s + c.prompt_tokens, 0);
    expect(completion).toBeGreaterThan(0);
    expect(delta('inference_tokens_completion_total')).toBe(completion);
    expect(delta('inference_tokens_prompt_total')).toBe(prompt);
    expect(delta('inference_requests_total')).toBe(N);
    expect(delta('inference_requests_total', { finish_reason: 'length' }) + delta('inference_requests_total', { finish_reason: 'stop' })).toBe(N);
    expect(delta('inference_time_to_first_token_seconds_count')).toBe(N);
    expect(delta('inference_queue_wait_seconds_count')).toBe(N);
    expect(delta('inference_inter_token_latency_seconds_count')).toBe(chats.filter((c) => c.completion_tokens > 1).length);

    expect(delta('errors_total', { code: 'not_found' })).toBe(M + 1);
    expect(delta('errors_total', { code: 'unauthorized' })).toBe(1);
    expect(delta('errors_total', { code: 'invalid_request' })).toBe(1);
    expect(delta('errors_total', { code: 'internal_error' })).toBe(0);

    expect(sampleValue(after, 'model_load_seconds')).toBeGreaterThan(0);
    expect(after.get('inference_queue_depth')?.type).toBe('gauge');
    expect(after.get('inference_running_batch')?.type).toBe('gauge');
    expect(after.get('process_resident_memory_bytes')?.type).toBe('gauge');
    for (const name of ['cache_hits_total', 'cache_misses_total', 'rate_limit_rejections_total']) {
      expect(after.get(name)?.type, name).toBe('counter');
    }

    // Bounded label values: route templates or `unmatched`, never raw ids or paths.
    const routes = new Set<string>();
    for (const f of after.values()) {
      for (const s of f.samples) {
        for (const v of Object.values(s.labels)) {
          expect(v).not.toMatch(/ds_|nope|no\/such|test-key/);
        }
        if (s.labels.route !== undefined) routes.add(s.labels.route);
      }
    }
    for (const r of routes) expect(r === 'unmatched' || /^\/[a-z0-9/:_-]*$/.test(r), r).toBe(true);
    expect([...routes].sort()).toEqual(expect.arrayContaining(['/graphql', '/readyz', '/v1/chat', '/v1/datasets/:id', '/v1/metrics', 'unmatched']));
  });

  it('serves the text exposition content type', async () => {
    const { res, text } = await scrape();
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.headers.get('x-request-id')).toBeTruthy();
    expect(text).toContain('# TYPE http_request_duration_seconds histogram');
  });

  it('JSON figures, and the same through GraphQL', async () => {
    const r = await fetch(`${server.url}/v1/metrics`, { headers: authHeaders });
    expect(r.status).toBe(200);
    const j = await r.json();
    expect(typeof j.request_id).toBe('string');
    expect(j.requests.total).toBeGreaterThan(0);
    expect(j.requests.by_status_class['2xx']).toBeGreaterThan(0);
    expect(j.requests.latency_ms.p50).toBeGreaterThanOrEqual(0);
    expect(j.requests.latency_ms.p99).toBeGreaterThanOrEqual(j.requests.latency_ms.p50);
    const chatRoute = j.requests.routes.find((x: any) => x.route === '/v1/chat' && x.method === 'POST');
    expect(chatRoute.by_status_class['2xx']).toBeGreaterThanOrEqual(4);
    expect(j.cache.hits).toBeGreaterThanOrEqual(1);
    expect(j.errors.by_code.not_found).toBeGreaterThanOrEqual(3);
    expect(j.cache.hit_rate).toBeCloseTo(j.cache.hits / (j.cache.hits + j.cache.misses), 3);
    expect(typeof j.rate_limit.rejections).toBe('number');
    expect(j.inference.completion_tokens).toBeGreaterThan(0);
    expect(j.inference.prompt_tokens).toBeGreaterThan(0);
    expect(j.inference.time_to_first_token_ms.samples).toBeGreaterThanOrEqual(3);
    expect(j.inference.time_to_first_token_ms.p50).toBeGreaterThan(0);
    expect(j.inference.queue_depth).toBe(0);
    expect(j.inference.running_batch).toBe(0);
    expect(j.model.load_seconds).toBeGreaterThan(0);

    const bad = await fetch(`${server.url}/v1/metrics?format=xml`, { headers: authHeaders });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.details.field).toBe('format');

    const g = await gql(
      server.url,
      `{ metrics { requests { total byStatusClass { label count } latencyMs { p50 p95 p99 samples } routes { route method total } }
          errors { total byCode { label count } } cache { hits misses hitRate } rateLimitRejections
          inference { promptTokens completionTokens requests timeToFirstTokenMs { p50 p95 p99 } queueDepth runningBatch }
          modelLoadSeconds percentileWindow } }`,
    );
    expect(g.json.errors).toBeUndefined();
    const m = g.json.data.metrics;
    expect(m.inference.completionTokens).toBe(j.inference.completion_tokens);
    expect(m.inference.promptTokens).toBe(j.inference.prompt_tokens);
    expect(m.errors.byCode.find((c: any) => c.label === 'not_found').count).toBe(j.errors.by_code.not_found);
    expect(m.requests.routes.some((x: any) => x.route === '/v1/chat')).toBe(true);
    expect(m.modelLoadSeconds).toBe(j.model.load_seconds);
    expect(m.percentileWindow).toBe(1000);
  });
});

describe.skipIf(!storiesModel.present)(storiesModel.title('metrics: rate-limit rejections'), () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({ RATE_LIMIT_PER_MINUTE: '2' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('counts every 429, under the route it was refused on', async () => {
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await fetch(`${server.url}/v1/datasets`, { headers: authHeaders })).status);
    expect(statuses).toEqual([200, 200, 429, 429]);
    // The limit is per key: the other key can still scrape.
    const other = { 'x-api-key': API_KEY_2 };
    const res = await fetch(`${server.url}/v1/metrics?format=prometheus`, { headers: other });
    expect(res.status).toBe(200);
    const f = parseExposition(await res.text());
    expect(sampleValue(f, 'rate_limit_rejections_total')).toBe(2);
    expect(sampleValue(f, 'errors_total', { code: 'rate_limited' })).toBe(2);
    expect(sampleValue(f, 'http_requests_total', { route: '/v1/datasets', method: 'GET', status_class: '4xx' })).toBe(2);
    expect(sampleValue(f, 'http_requests_total', { route: '/v1/datasets', method: 'GET', status_class: '2xx' })).toBe(2);
  });
});

describe.skipIf(!storiesModel.present)(storiesModel.title('metrics: errors that end a stream'), () => {
  let server: RunningServer;
  beforeAll(async () => {
    // One running row and one waiting place, so that a stream's later phase can be refused.
    server = await startServer({ MAX_BATCH_SIZE: '1', MAX_WAITING_REQUESTS: '1', RATE_LIMIT_PER_MINUTE: '10000' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  const errorsByCode = async (): Promise<Record<string, number>> =>
    (await (await fetch(`${server.url}/v1/metrics`, { headers: authHeaders })).json()).errors.by_code;

  /**
   * Reads a refine-mode stream. Once its first token is out, another chat takes the one waiting
   * place; when the stream's answer phase ends, its critique phase finds the waiting list full
   * (service_unavailable), so the stream, long since opened with 200, ends with an error.
   */
  async function failedStream(open: () => Promise<Response>): Promise<{ text: string; otherStatus: number }> {
    const res = await open();
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    let other: Promise<number> | undefined;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      if (!other && text.includes('token')) other = postJson(`${server.url}/v1/chat`, { prompt: 'Once upon a time', max_new_tokens: 3 }).then((r) => r.status);
    }
    return { text, otherStatus: await other! };
  }
  // Long enough (about 250 tokens, no stop) for the other request to queue behind it; short enough for its critique prompt to fit.
  const long = { prompt: 'Once upon a time', temperature: 0.8, seed: 1 };

  it('a REST stream ended by an `error` event counts in errors_total, once', async () => {
    const before = await errorsByCode();
    const { text, otherStatus } = await failedStream(() =>
      fetch(`${server.url}/v1/chat`, { method: 'POST', headers: authHeaders, body: JSON.stringify({ ...long, max_new_tokens: 250, mode: 'refine', stream: true }) }),
    );
    expect(otherStatus).toBe(200);
    const last = text.trim().split('\n\n').at(-1)!;
    expect(last).toMatch(/^event: error\n/);
    expect(JSON.parse(last.split('\n')[1]!.slice('data: '.length)).error.code).toBe('service_unavailable');
    const after = await errorsByCode();
    expect(after.service_unavailable! - before.service_unavailable!).toBe(1);
    expect(after.internal_error).toBe(before.internal_error);
  });

  it('a GraphQL chatStream subscription ended by an error counts in errors_total, once', async () => {
    const before = await errorsByCode();
    const { text, otherStatus } = await failedStream(() =>
      fetch(`${server.url}/graphql`, {
        method: 'POST',
        headers: { ...authHeaders, accept: 'text/event-stream' },
        body: JSON.stringify({
          query: 'subscription S($input: ChatInput!) { chatStream(input: $input) { token done } }',
          variables: { input: { ...long, maxNewTokens: 250, mode: 'REFINE' } },
        }),
      }),
    );
    expect(otherStatus).toBe(200);
    const events = text.split('\n\n').filter((b) => b.startsWith('event: next'));
    const last = JSON.parse(events.at(-1)!.split('\n')[1]!.slice('data: '.length));
    expect(last.errors[0].extensions.code).toBe('service_unavailable');
    expect(typeof last.extensions.request_id).toBe('string');
    const after = await errorsByCode();
    expect(after.service_unavailable! - before.service_unavailable!).toBe(1);
    expect(after.internal_error).toBe(before.internal_error);
  });
});
