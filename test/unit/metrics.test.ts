import express from 'express';
import { describe, expect, it } from 'vitest';
import { Metrics, Reservoir, methodLabel, statusClass } from '../../src/observability/metrics.js';
import { metricsMiddleware } from '../../src/rest/metrics-middleware.js';
import { metricsJson } from '../../src/rest/metrics-routes.js';
import { parseExposition, parseFloatStrict, sampleValue } from '../helpers/prometheus-text.js';

describe('Reservoir', () => {
  it('gives nearest-rank percentiles over the last values only', () => {
    const r = new Reservoir(100);
    expect(r.percentiles()).toEqual({ samples: 0, p50: null, p95: null, p99: null });
    for (let i = 1; i <= 100; i++) r.add(i);
    expect(r.percentiles()).toEqual({ samples: 100, p50: 50, p95: 95, p99: 99 });
    for (let i = 0; i < 100; i++) r.add(1000);
    expect(r.percentiles()).toEqual({ samples: 100, p50: 1000, p95: 1000, p99: 1000 });
    r.add(Number.NaN);
    expect(r.percentiles().samples).toBe(100);
  });
});

describe('labels', () => {
  it('bounds methods and status classes', () => {
    expect(methodLabel('get')).toBe('GET');
    expect(methodLabel('PROPFIND')).toBe('OTHER');
    expect(statusClass(204)).toBe('2xx');
    expect(statusClass(499)).toBe('4xx');
    expect(statusClass(503)).toBe('5xx');
  });
});

describe('Metrics', () => {
  const source = { engine: { load: { waiting: 3, running: 5 } }, loadSeconds: 1.23456 };

  it('snapshot has every figure, in the JSON shape of GET /v1/metrics', async () => {
    const m = new Metrics({ source, processMetrics: false });
    m.observeRequest({ route: '/v1/chat', method: 'POST', status: 200, durationSeconds: 0.1 });
    m.observeRequest({ route: '/v1/chat', method: 'POST', status: 200, durationSeconds: 0.3 });
    m.observeRequest({ route: 'unmatched', method: 'GET', status: 404, durationSeconds: 0.001 });
    m.observeRequest({ route: '/graphql', method: 'POST', status: 200, durationSeconds: 0.02, operationType: 'query' });
    m.observeGeneration({ promptTokens: 10, completionTokens: 20, timeToFirstTokenMs: 12, interTokenMs: 2, queueMs: 1, finishReason: 'length' });
    m.observeGeneration({ promptTokens: 5, completionTokens: 1, timeToFirstTokenMs: 8, interTokenMs: null, queueMs: 0, finishReason: 'stop' });
    m.cacheHit();
    m.cacheMiss();
    m.cacheMiss();
    m.cacheMiss();
    m.rateLimited();
    m.error('not_found');

    const json = metricsJson(await m.snapshot());
    expect(json).toMatchObject({
      requests: {
        total: 4,
        by_status_class: { '2xx': 3, '4xx': 1 },
        latency_ms: { samples: 4, p50: 20, p95: 300, p99: 300 },
      },
      errors: { total: 1, by_code: { not_found: 1, internal_error: 0, rate_limited: 0 } },
      cache: { hits: 1, misses: 3, hit_rate: 0.25 },
      rate_limit: { rejections: 1 },
      inference: {
        requests: 2,
        by_finish_reason: { stop: 1, length: 1, cancelled: 0 },
        prompt_tokens: 15,
        completion_tokens: 21,
        time_to_first_token_ms: { samples: 2, p50: 8, p95: 12, p99: 12 },
        inter_token_latency_ms: { samples: 1, p50: 2 },
        queue_wait_ms: { samples: 2, p50: 0, p95: 1 },
        queue_depth: 3,
        running_batch: 5,
      },
      model: { load_seconds: 1.235 },
      percentile_window: 1000,
    });
    expect(Object.keys(json.errors.by_code).sort()).toEqual(
      ['conflict', 'forbidden', 'internal_error', 'invalid_request', 'not_found', 'payload_too_large', 'rate_limited', 'service_unavailable', 'unauthorized'],
    );
    expect(json.requests.routes).toEqual([
      { route: '/graphql', method: 'POST', total: 1, by_status_class: { '2xx': 1 }, latency_ms: { samples: 1, p50: 20, p95: 20, p99: 20 } },
      { route: '/v1/chat', method: 'POST', total: 2, by_status_class: { '2xx': 2 }, latency_ms: { samples: 2, p50: 100, p95: 300, p99: 300 } },
      { route: 'unmatched', method: 'GET', total: 1, by_status_class: { '4xx': 1 }, latency_ms: { samples: 1, p50: 1, p95: 1, p99: 1 } },
    ]);
    expect(typeof json.uptime_s).toBe('number');
  });

  it('reports nulls and zeros before anything happened (model still loading)', async () => {
    const json = metricsJson(await new Metrics({ processMetrics: false }).snapshot());
    expect(json.requests).toEqual({ total: 0, by_status_class: {}, latency_ms: { samples: 0, p50: null, p95: null, p99: null }, routes: [] });
    expect(json.cache.hit_rate).toBeNull();
    expect(json.model.load_seconds).toBeNull();
    expect(json.inference.queue_depth).toBe(0);
  });

  it('exposes every declared metric in strict text format, with process metrics', async () => {
    const m = new Metrics({ source });
    m.observeRequest({ route: '/v1/datasets/:id', method: 'GET', status: 200, durationSeconds: 0.004 });
    m.observeRequest({ route: '/v1/datasets/:id', method: 'GET', status: 200, durationSeconds: 7 });
    m.observeGeneration({ promptTokens: 3, completionTokens: 4, timeToFirstTokenMs: 50, interTokenMs: 5, queueMs: 2, finishReason: 'stop' });
    const text = await m.prometheus();
    expect(m.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const families = parseExposition(text);
    const expected: Record<string, string> = {
      http_requests_total: 'counter',
      http_request_duration_seconds: 'histogram',
      inference_tokens_prompt_total: 'counter',
      inference_tokens_completion_total: 'counter',
      inference_time_to_first_token_seconds: 'histogram',
      inference_inter_token_latency_seconds: 'histogram',
      inference_queue_wait_seconds: 'histogram',
      inference_queue_depth: 'gauge',
      inference_running_batch: 'gauge',
      inference_requests_total: 'counter',
      model_load_seconds: 'gauge',
      cache_hits_total: 'counter',
      cache_misses_total: 'counter',
      rate_limit_rejections_total: 'counter',
      errors_total: 'counter',
      process_cpu_seconds_total: 'counter',
      process_resident_memory_bytes: 'gauge',
      nodejs_eventloop_lag_seconds: 'gauge',
    };
    for (const [name, type] of Object.entries(expected)) {
      expect(families.get(name)?.type, name).toBe(type);
      expect(families.get(name)?.help, name).toBeTruthy();
    }
    const route = { route: '/v1/datasets/:id', method: 'GET', status_class: '2xx' };
    expect(sampleValue(families, 'http_requests_total', route)).toBe(2);
    expect(sampleValue(families, 'http_request_duration_seconds_bucket', { ...route, le: '0.005' })).toBe(1);
    expect(sampleValue(families, 'http_request_duration_seconds_bucket', { ...route, le: '+Inf' })).toBe(2);
    expect(sampleValue(families, 'inference_tokens_completion_total')).toBe(4);
    expect(sampleValue(families, 'inference_queue_depth')).toBe(3);
    expect(sampleValue(families, 'inference_running_batch')).toBe(5);
    expect(sampleValue(families, 'model_load_seconds')).toBeCloseTo(1.23456);
    expect(sampleValue(families, 'errors_total', { code: 'service_unavailable' })).toBe(0);
  });

  it('keeps registries apart: two instances in one process do not collide', async () => {
    const a = new Metrics();
    const b = new Metrics();
    a.cacheHit();
    expect((await a.snapshot()).cache.hits).toBe(1);
    expect((await b.snapshot()).cache.hits).toBe(0);
  });
});

describe('metricsMiddleware route labels', () => {
  async function run(paths: Array<[string, string]>) {
    const metrics = new Metrics({ processMetrics: false });
    const app = express();
    app.use(metricsMiddleware(metrics, app));
    app.use((req, res, next) => (req.headers['x-deny'] ? res.status(401).end() : next()));
    const router = express.Router();
    router.get('/v1/things/:id', (_req, res) => void res.json({}));
    router.get('/v1/things/:id/missing', (_req, res) => void res.status(404).json({}));
    router.post(['/v1/chat', '/chat'], (_req, res) => void res.json({}));
    app.use(router);
    app.use((_req, res) => void res.status(404).end());
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const addr = server.address();
    const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    try {
      for (const [method, path] of paths) {
        const deny = path.startsWith('!');
        const res = await fetch(base + (deny ? path.slice(1) : path), { method, headers: deny ? { 'x-deny': '1' } : {} });
        await res.arrayBuffer();
      }
      // 'finish' fires after the client has the response; give it a turn.
      await new Promise((r) => setTimeout(r, 50));
      return (await metrics.snapshot()).requests.routes.map((r) => `${r.method} ${r.route} ${JSON.stringify(r.byStatusClass)}`);
    } finally {
      server.close();
    }
  }

  it('labels by template, alias, refusal before routing, or unmatched; never the raw path', async () => {
    const routes = await run([
      ['GET', '/v1/things/ds_abc123'],
      ['GET', '/v1/things/ds_def456?x=1'],
      ['GET', '/v1/things/ds_def456/missing'],
      ['POST', '/chat'],
      ['POST', '/v1/chat'],
      ['GET', '!/v1/things/ds_secret'],
      ['GET', '!/no/such/route'],
      ['GET', '/no/such/ds_route'],
    ]);
    expect(routes.sort()).toEqual([
      'GET /v1/things/:id {"2xx":2,"4xx":1}',
      'GET /v1/things/:id/missing {"4xx":1}',
      'GET unmatched {"4xx":2}',
      'POST /chat {"2xx":1}',
      'POST /v1/chat {"2xx":1}',
    ]);
  });
});

describe('the strict exposition parser used by the tests', () => {
  const ok = '# HELP a_total A.\n# TYPE a_total counter\na_total{x="1"} 3\n';
  const hist = (buckets: string) =>
    `# TYPE h histogram\n${buckets}h_sum 1\nh_count 2\n`;

  it('accepts valid text, escapes and special floats', () => {
    expect(parseExposition(ok).get('a_total')?.samples[0]).toEqual({ name: 'a_total', labels: { x: '1' }, value: 3 });
    const f = parseExposition('# HELP g Back\\\\slash\\nnew.\ng{v="q\\"\\\\\\n",w="",} NaN 1700000000000\n').get('g')!;
    expect(f.help).toBe('Back\\slash\nnew.');
    expect(f.samples[0]!.labels).toEqual({ v: 'q"\\\n', w: '' });
    expect(f.samples[0]!.timestamp).toBe(1700000000000);
    expect(parseExposition(hist('h_bucket{le="0.1"} 1\nh_bucket{le="+Inf"} 2\n')).get('h')?.samples).toHaveLength(4);
    for (const s of ['1', '-1.5e-3', '+Inf', '-Inf', 'NaN', '.5', '1.', '0x1p-2']) expect(parseFloatStrict(s), s).not.toBeUndefined();
    expect(parseFloatStrict('0x1p-2')).toBe(0.25);
    for (const s of ['', '1,5', 'one', '1e', '--1', '0x10', 'Infinit']) expect(parseFloatStrict(s), s).toBeUndefined();
  });

  it.each([
    ['no final newline', 'a 1'],
    ['bad metric name', '1a 1\n'],
    ['bad label name', 'a{1x="y"} 1\n'],
    ['reserved label', 'a{__name__="y"} 1\n'],
    ['unquoted label value', 'a{x=y} 1\n'],
    ['bad escape in label', 'a{x="\\t"} 1\n'],
    ['bad escape in HELP', '# HELP a \\t\na 1\n'],
    ['unterminated labels', 'a{x="y" 1\n'],
    ['duplicate label', 'a{x="1",x="2"} 1\n'],
    ['bad value', 'a 1,5\n'],
    ['bad timestamp', 'a 1 1.5\n'],
    ['extra field', 'a 1 2 3\n'],
    ['no value', 'a{x="1"}\n'],
    ['unknown type', '# TYPE a countr\na 1\n'],
    ['TYPE after samples', 'a 1\n# TYPE a counter\n'],
    ['second TYPE', '# TYPE a counter\n# TYPE a counter\na 1\n'],
    ['second HELP', '# HELP a x\n# HELP a y\na 1\n'],
    ['interleaved family', 'a{x="1"} 1\nb 1\na{x="2"} 1\n'],
    ['duplicate series', 'a{x="1"} 1\na{x="1"} 2\n'],
    ['negative counter', '# TYPE a counter\na -1\n'],
    ['quantile out of range', '# TYPE s summary\ns{quantile="2"} 1\ns_sum 1\ns_count 1\n'],
    ['missing +Inf bucket', hist('h_bucket{le="0.1"} 1\nh_bucket{le="1"} 2\n')],
    ['non-cumulative buckets', hist('h_bucket{le="0.1"} 2\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\n')],
    ['descending le', hist('h_bucket{le="1"} 1\nh_bucket{le="0.1"} 1\nh_bucket{le="+Inf"} 2\n')],
    ['count differs from +Inf', hist('h_bucket{le="+Inf"} 3\n')],
    ['bucket without le', hist('h_bucket 1\nh_bucket{le="+Inf"} 2\n')],
    ['bad le', hist('h_bucket{le="x"} 1\nh_bucket{le="+Inf"} 2\n')],
    ['histogram without _sum', '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count 1\n'],
  ])('rejects %s', (_why, text) => {
    expect(() => parseExposition(text)).toThrow();
  });
});
