import { Ajv2020 } from 'ajv/dist/2020.js';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storiesModel } from '../helpers/models.js';
import { API_KEY, authHeaders, gql, postJson, readSse, startServer, type RunningServer } from '../helpers/server.js';
import { STRUCTURED_CASES, type StructuredCase } from '../helpers/structured-schemas.js';

// ajv's JSON Schema 2020-12 build: prefixItems, $defs.
const ajv = new Ajv2020({ strict: false });

const MESSAGES = [{ role: 'user', content: 'Tell me about the little dog.' }];

/** The request body's constraint for a case, as OpenAI's response_format (or vLLM's guided_choice). */
function formatFields(c: StructuredCase): Record<string, unknown> {
  if (c.constraint.type === 'json_schema') return { response_format: { type: 'json_schema', json_schema: { name: 'case', schema: c.constraint.schema, strict: true } } };
  if (c.constraint.type === 'choice') return { guided_choice: c.constraint.choices };
  return { response_format: c.constraint };
}

/** Parses (a choice is the text itself) and validates with ajv; the failure message says which text and why. */
function check(c: StructuredCase, text: string): string | null {
  let value: unknown = text;
  if (c.constraint.type !== 'choice') {
    try {
      value = JSON.parse(text);
    } catch (err) {
      return `${JSON.stringify(text)} does not parse: ${(err as Error).message}`;
    }
  }
  const validate = ajv.compile(c.validate);
  return validate(value) ? null : `${JSON.stringify(text)} is invalid: ${ajv.errorsText(validate.errors)}`;
}

/** Reads an OpenAI stream (data: lines, ending with [DONE]) into its chunks. */
async function openAiChunks(res: Response): Promise<any[]> {
  const text = await res.text();
  const lines = text.split('\n').filter((l) => l.startsWith('data: '));
  expect(lines.at(-1)).toBe('data: [DONE]');
  return lines.slice(0, -1).map((l) => JSON.parse(l.slice(6)));
}

describe.skipIf(!storiesModel.present)(storiesModel.title('structured output (stories260K)'), () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({ RATE_LIMIT_PER_MINUTE: '0', MAX_BATCH_SIZE: '20' });
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
  });

  // 20 samples at temperature 1.0 of each case (4 requests of n = 5, all in the batch together).
  it.each(STRUCTURED_CASES.map((c) => [c.name, c] as const))(
    '%s: 20 samples at temperature 1 parse and validate',
    async (_name, c) => {
      const responses = await Promise.all(
        [0, 1, 2, 3].map((k) =>
          postJson(`${server.url}/v1/chat/completions`, { messages: MESSAGES, temperature: 1, n: 5, seed: 1000 + 5 * k, max_tokens: 600, ...formatFields(c) }),
        ),
      );
      const problems: string[] = [];
      let count = 0;
      for (const r of responses) {
        expect(r.status, r.text).toBe(200);
        for (const choice of r.json.choices) {
          count++;
          if (choice.finish_reason !== 'stop') problems.push(`finish_reason ${choice.finish_reason}: ${JSON.stringify(choice.message.content)}`);
          const bad = check(c, choice.message.content);
          if (bad) problems.push(bad);
        }
      }
      expect(count).toBe(20);
      expect(problems).toEqual([]);
    },
    120_000,
  );

  it('greedy golden: a trivial schema gives the same document on /v1/chat/completions, /v1/chat and GraphQL', async () => {
    const schema = { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'], additionalProperties: false };
    const rf = { type: 'json_schema', json_schema: { name: 'trivial', schema } };
    const a = await postJson(`${server.url}/v1/chat/completions`, { messages: MESSAGES, temperature: 0, max_tokens: 50, response_format: rf });
    expect(a.status, a.text).toBe(200);
    // Greedy decoding of stories260K under {"ok": boolean}: the golden, fixed by this run.
    expect(a.json.choices[0].message.content).toBe('{"ok": false}');
    expect(a.json.choices[0].finish_reason).toBe('stop');
    const b = await postJson(`${server.url}/v1/chat`, { messages: MESSAGES, temperature: 0, max_new_tokens: 50, response_format: rf });
    expect(b.status, b.text).toBe(200);
    expect(b.json.response).toBe('{"ok": false}');
    expect(b.json.structured).toEqual({ type: 'json_schema', complete: true });
    const g = await gql(
      server.url,
      `mutation($input: ChatInput!) { chat(input: $input) { response finishReason structured { type complete } } }`,
      { input: { messages: [{ role: 'USER', content: MESSAGES[0]!.content }], temperature: 0, maxNewTokens: 50, responseFormat: { type: 'JSON_SCHEMA', jsonSchema: { name: 'trivial', schema } } } },
    );
    expect(g.json.errors).toBeUndefined();
    expect(g.json.data.chat).toEqual({ response: '{"ok": false}', finishReason: 'STOP', structured: { type: 'JSON_SCHEMA', complete: true } });
  });

  it('json_object, choice and regex on /v1/chat', async () => {
    const obj = await postJson(`${server.url}/v1/chat`, { prompt: 'Once', temperature: 1, seed: 3, max_new_tokens: 300, response_format: { type: 'json_object' } });
    expect(obj.status, obj.text).toBe(200);
    if (obj.json.finish_reason === 'stop') {
      const v = JSON.parse(obj.json.response);
      expect(typeof v === 'object' && v !== null && !Array.isArray(v)).toBe(true);
      expect(obj.json.structured).toEqual({ type: 'json_object', complete: true });
    } else {
      expect(obj.json.structured).toEqual({ type: 'json_object', complete: false });
    }
    const choice = await postJson(`${server.url}/v1/chat`, { prompt: 'Once', temperature: 1, seed: 4, response_format: { type: 'choice', choices: ['yes', 'no'] } });
    expect(['yes', 'no']).toContain(choice.json.response);
    const regex = await postJson(`${server.url}/v1/chat`, { prompt: 'Once', temperature: 1, seed: 5, response_format: { type: 'regex', pattern: '[A-C]{2}-[0-9]{3}' } });
    expect(regex.json.response).toMatch(/^[A-C]{2}-[0-9]{3}$/);
    // vLLM's guided_* on the legacy completions route, one constraint per prompt and choice.
    const legacy = await postJson(`${server.url}/v1/completions`, { prompt: ['Once', 'One day'], n: 2, temperature: 1, seed: 6, max_tokens: 20, guided_regex: '(red|blue) [0-9]{2}' });
    expect(legacy.status, legacy.text).toBe(200);
    expect(legacy.json.choices).toHaveLength(4);
    for (const c of legacy.json.choices) expect(c.text).toMatch(/^(red|blue) [0-9]{2}$/);
  });

  it('max_tokens cutting a document: finish_reason length and the response says it is incomplete', async () => {
    const c = STRUCTURED_CASES[1]!;
    const a = await postJson(`${server.url}/v1/chat/completions`, { messages: MESSAGES, temperature: 1, seed: 9, max_tokens: 5, ...formatFields(c) });
    expect(a.json.choices[0].finish_reason).toBe('length');
    expect(() => JSON.parse(a.json.choices[0].message.content)).toThrow();
    const b = await postJson(`${server.url}/v1/chat`, {
      messages: MESSAGES,
      temperature: 1,
      seed: 9,
      max_new_tokens: 5,
      response_format: { type: 'json_schema', json_schema: { schema: (c.constraint as { schema: object }).schema } },
    });
    expect(b.json.finish_reason).toBe('length');
    expect(b.json.structured).toEqual({ type: 'json_schema', complete: false });
  });

  it('streaming with n = 3: each choice is constrained, and the streamed text is the whole document', async () => {
    const c = STRUCTURED_CASES[2]!;
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: authHeaders,
      body: JSON.stringify({ messages: MESSAGES, temperature: 1, seed: 77, n: 3, max_tokens: 600, stream: true, ...formatFields(c) }),
    });
    expect(res.status).toBe(200);
    const texts = ['', '', ''];
    const finish: string[] = [];
    for (const chunk of await openAiChunks(res)) {
      for (const ch of chunk.choices) {
        if (ch.delta?.content) texts[ch.index] += ch.delta.content;
        if (ch.finish_reason) finish[ch.index] = ch.finish_reason;
      }
    }
    expect(finish).toEqual(['stop', 'stop', 'stop']);
    for (const t of texts) expect(check(c, t)).toBeNull();
    // Choices differ (own seeds), and the non-streamed answer is the same text.
    expect(new Set(texts).size).toBeGreaterThan(1);
    const whole = await postJson(`${server.url}/v1/chat/completions`, { messages: MESSAGES, temperature: 1, seed: 77, n: 3, max_tokens: 600, ...formatFields(c) });
    expect(whole.json.choices.map((ch: { message: { content: string } }) => ch.message.content)).toEqual(texts);
  });

  it('streaming on /v1/chat: the tokens spell the constrained answer', async () => {
    const c = STRUCTURED_CASES[0]!;
    const res = await fetch(`${server.url}/v1/chat`, {
      method: 'POST',
      headers: authHeaders,
      body: JSON.stringify({ prompt: 'Once', temperature: 1, seed: 8, stream: true, response_format: formatFields(c).response_format }),
    });
    const events = await readSse(res);
    const done = events.find((e) => e.event === 'done')!.data;
    expect(events.filter((e) => e.event === 'token').map((e) => e.data.token).join('')).toBe(done.response);
    expect(check(c, done.response)).toBeNull();
  });

  it('a batch run with the model judge: every record scored, none unscored with parse_error', async () => {
    const records = ['Once upon a time', 'Tom had a red ball', 'One day, a big bear'].map((prompt, i) => ({
      record_id: `r${i}`,
      input: { prompt },
      reference: { answer: 'there was a little girl named Lily' },
    }));
    const ds = await postJson(`${server.url}/v1/datasets`, { name: 'judge', type: 'eval_set', records });
    expect(ds.status, ds.text).toBe(201);
    const start = await postJson(`${server.url}/v1/batch-evals`, {
      dataset_id: ds.json.dataset_id,
      criteria: ['accuracy', 'overall'],
      judge: 'model',
      max_new_tokens: 24,
      temperature: 0,
    });
    expect(start.status, start.text).toBe(202);
    const id = start.json.batch_eval_id;
    for (let t = Date.now(); ; ) {
      const r = await (await fetch(`${server.url}/v1/batch-evals/${id}`, { headers: authHeaders })).json();
      if (!['queued', 'running'].includes(r.status)) break;
      if (Date.now() - t > 120_000) throw new Error(`batch still ${r.status}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    const lines = (await (await fetch(`${server.url}/v1/batch-evals/${id}/artifacts/predictions.jsonl`, { headers: authHeaders })).text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    for (const line of lines) {
      expect(line.scores, JSON.stringify(line)).toHaveLength(2);
      for (const sc of line.scores) {
        expect(sc.evaluator_error ?? null, JSON.stringify(sc)).toBeNull();
        expect(sc.score, JSON.stringify(sc)).toBeGreaterThanOrEqual(1);
      }
    }
  }, 150_000);

  it('unsupported keywords: 400 naming the keyword (contract envelope on /v1/chat, OpenAI shape on /v1/chat/completions, GraphQL code)', async () => {
    const schema = { type: 'object', properties: { email: { type: 'string', format: 'email' } } };
    const rest = await postJson(`${server.url}/v1/chat`, { prompt: 'Once', response_format: { type: 'json_schema', json_schema: { schema } } });
    expect(rest.status).toBe(400);
    expect(rest.json.error.code).toBe('invalid_request');
    expect(rest.json.error.message).toContain('"format"');
    expect(rest.json.error.details.field).toBe('response_format.json_schema.schema');
    expect(rest.json.request_id).toBeTruthy();

    const client = new OpenAI({ apiKey: API_KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
    for (const [bad, keyword] of [
      [{ type: 'number', multipleOf: 2 }, 'multipleOf'],
      [{ type: 'object', patternProperties: { '^a': { type: 'string' } } }, 'patternProperties'],
      [{ type: 'number', minimum: 0.5 }, 'minimum'],
      [{ type: 'string', pattern: '^(?=a)b$' }, 'pattern'],
      [{ $ref: 'https://example.com/schema.json' }, '$ref'],
    ] as const) {
      const err = await client.chat.completions
        .create({ model: 'stories260K', messages: [{ role: 'user', content: 'hi' }], response_format: { type: 'json_schema', json_schema: { name: 'x', schema: bad as Record<string, unknown> } } })
        .catch((x: unknown) => x);
      expect(err, JSON.stringify(bad)).toBeInstanceOf(OpenAI.BadRequestError);
      expect((err as Error).message, JSON.stringify(bad)).toContain(keyword);
      expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('response_format.json_schema.schema');
    }
    const raw = await postJson(`${server.url}/v1/chat/completions`, {
      messages: MESSAGES,
      response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'array', uniqueItems: true } } },
    });
    expect(raw.status).toBe(400);
    expect(raw.json).toEqual({
      error: { message: expect.stringContaining('"uniqueItems"'), type: 'invalid_request_error', param: 'response_format.json_schema.schema', code: null },
    });
    const g = await gql(server.url, `mutation($input: ChatInput!) { chat(input: $input) { response } }`, {
      input: { prompt: 'Once', responseFormat: { type: 'JSON_SCHEMA', jsonSchema: { schema } } },
    });
    expect(g.json.errors[0].extensions.code).toBe('invalid_request');
    expect(g.json.errors[0].message).toContain('"format"');
    // Two constraints at once are refused too.
    const both = await postJson(`${server.url}/v1/chat/completions`, { messages: MESSAGES, response_format: { type: 'json_object' }, guided_choice: ['a'] });
    expect(both.status).toBe(400);
  });
});
