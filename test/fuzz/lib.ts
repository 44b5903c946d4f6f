/**
 * The fuzzer's pieces: arbitraries biased towards the contract's field
 * names and towards nasty values, and the check every answer must pass.
 * Runs per property: FUZZ_RUNS (default 250: a few thousand cases over all
 * routes; `FUZZ_RUNS=20000 npx vitest run test/fuzz` for a long run); the seed: FUZZ_SEED (default fixed, so CI is reproducible).
 */
import fc from 'fast-check';
import { expect } from 'vitest';

export const RUNS = Number(process.env.FUZZ_RUNS ?? 250);
export const SEED = Number(process.env.FUZZ_SEED ?? 20261202);
export const fuzzParams = { numRuns: RUNS, seed: SEED, endOnFailure: true } as const;

const CONTRACT_CODES = ['invalid_request', 'unauthorized', 'forbidden', 'not_found', 'conflict', 'payload_too_large', 'rate_limited', 'service_unavailable'];

/** Strings a parser or a database may choke on. */
export const nastyString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    'a\u0000b',
    '\ud800',
    '\udfff x',
    '\u202eevil\u202c',
    '👩‍👩‍👧‍👦🏳️‍🌈',
    "' OR 1=1 --",
    '"; DROP TABLE datasets; --',
    '../../../../etc/passwd',
    '%2e%2e%2f%2e%2e%2f',
    '=cmd|\' /C calc\'!A0',
    '+1+1',
    '@SUM(1)',
    '__proto__',
    'constructor',
    'NaN',
    'Infinity',
    '-0',
    '1e309',
    '9007199254740993',
    'null',
    'true',
    '{"$ne": null}',
    'x'.repeat(5000),
  ),
);

/** Numbers at and past every edge. */
export const nastyNumber = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true }),
  fc.constantFrom(0, -0, 1, -1, 0.5, 2 ** 31, 2 ** 32, 2 ** 53 + 1, -(2 ** 63), 1e308, -1e308, 5e-324, 1024, 1025, 4294967295, 4294967296),
);

export const nastyValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    nastyString,
    nastyNumber,
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(nastyString, tie('value'), { maxKeys: 4 }),
  ),
})).value;

/** An object whose keys are mostly the route's own fields (so some requests pass validation and go deeper). */
export function fieldObject(fields: readonly string[], values: fc.Arbitrary<unknown> = nastyValue): fc.Arbitrary<Record<string, unknown>> {
  return fc.dictionary(fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...fields) }, { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'prototype', 'extra') }), values, { maxKeys: fields.length + 1 });
}

/** A JSON body: the route's fields, any JSON at all, or text that is not JSON. */
export function jsonBody(fields: readonly string[], values?: fc.Arbitrary<unknown>): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: fieldObject(fields, values).map((o) => JSON.stringify(o)) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 60 }) },
  );
}

/** Percent-encoding that never throws: a lone surrogate (which encodeURIComponent refuses) goes as its UTF-8 replacement's bytes. */
export function pct(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    return [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
  }
}

export interface Answer {
  status: number;
  contentType: string;
  body: string;
}

/** Answers by route and status, printed at the end of a file: how deep the cases went (2xx got past validation). */
export const tally = new Map<string, Map<number, number>>();

/** Sends a request and reads its whole answer (an event stream to its end). */
export async function send(url: string, init: RequestInit): Promise<Answer> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(60_000) });
  const route = `${init.method ?? 'GET'} ${new URL(url).pathname.replace(/\/(?:ds|be|ri|ev)_[^/]*|\/v1\/models\/.+/g, (m) => (m.startsWith('/v1/models') ? '/v1/models/:id' : '/:id')).slice(0, 60)}`;
  const byStatus = tally.get(route) ?? new Map<number, number>();
  byStatus.set(res.status, (byStatus.get(res.status) ?? 0) + 1);
  tally.set(route, byStatus);
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: await res.text() };
}

/** The tally as lines, routes with the most answers first. */
export function tallyReport(): string {
  return [...tally.entries()]
    .filter(([, m]) => [...m.values()].reduce((a, b) => a + b, 0) >= 20)
    .map(([route, m]) => `${route}: ${[...m.entries()].sort((a, b) => a[0] - b[0]).map(([st, n]) => `${st}×${n}`).join(' ')}`)
    .join('\n');
}

/** The OpenAI-compatible routes answer errors in OpenAI's envelope ({error: {message, type, param, code}}). */
const OPENAI_ROUTE = /^(?:POST|GET|DELETE) \/v1\/(?:chat\/completions|completions|models)\b/;

/** Every REST answer: 2xx or 4xx, never 5xx; a 4xx is the contract's envelope (OpenAI's on its routes); a 2xx is JSON, an event stream or JSONL. */
export function checkRest(what: string, a: Answer): void {
  const where = `${what} → ${a.status} ${a.body.slice(0, 300)}`;
  expect(a.status, where).toBeLessThan(500);
  expect(a.status, where).toBeGreaterThanOrEqual(200);
  if (a.status >= 400) {
    const j = JSON.parse(a.body);
    expect(typeof j.error.message, where).toBe('string');
    if (OPENAI_ROUTE.test(what)) {
      expect(typeof j.error.type, where).toBe('string');
      return;
    }
    expect(CONTRACT_CODES, where).toContain(j.error.code);
    expect(typeof j.request_id, where).toBe('string');
  } else if (a.contentType.startsWith('application/json')) {
    expect(() => JSON.parse(a.body), where).not.toThrow();
  } else if (a.contentType.startsWith('text/event-stream')) {
    expect(a.body, where).not.toMatch(/internal_error/);
  }
}

/** Every GraphQL answer: never 5xx, JSON (or an event stream) whose errors carry contract codes, never internal_error. */
export function checkGraphql(what: string, a: Answer): void {
  const where = `${what} → ${a.status} ${a.body.slice(0, 300)}`;
  expect(a.status, where).toBeLessThan(500);
  const results = a.contentType.startsWith('text/event-stream')
    ? a.body.split('\n').filter((l) => l.startsWith('data:') && l.length > 5).map((l) => JSON.parse(l.slice(5)))
    : [JSON.parse(a.body)];
  for (const r of results) {
    if (r === null || typeof r !== 'object') continue;
    for (const e of (r as { errors?: Array<{ extensions?: { code?: string } }> }).errors ?? []) {
      expect(CONTRACT_CODES, where).toContain(e.extensions?.code);
    }
  }
}
