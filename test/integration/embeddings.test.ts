import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GOLDEN } from '../helpers/golden.js';
import { minilmFiles, storiesModel, testEncoderDir } from '../helpers/models.js';
import { gql, postJson, startServer, type RunningServer } from '../helpers/server.js';

const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const maxDiff = (a: number[], b: number[]) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

/** Polls /v1/health until the embedding model has left `loading`. */
async function embeddingSettled(url: string, ms = 60_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const h = (await (await fetch(`${url}/v1/health`)).json()) as { embedding: Record<string, unknown> };
    if (h.embedding.state !== 'loading' || Date.now() > deadline) return h.embedding;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const EMBED = `query Embed($input: EmbedInput!) {
  embed(input: $input) { model requestId usage { promptTokens inputTokens totalTokens } data { index embedding embeddingBase64 } }
}`;

describe.skipIf(!storiesModel.present || !minilmFiles.present)(
  minilmFiles.title(storiesModel.title('POST /v1/embeddings with a MiniLM-shaped encoder (EMBEDDING_MODEL_PATH)')),
  () => {
    let server: RunningServer;
    let dir: string;
    const post = (body: unknown) => postJson(`${server.url}/v1/embeddings`, body);

    beforeAll(async () => {
      dir = testEncoderDir();
      server = await startServer({
        EMBEDDING_MODEL_PATH: dir,
        // Wide enough that concurrent test requests meet in one batch on a loaded machine.
        EMBEDDING_MAX_WAIT_MS: '25',
        EMBEDDING_MAX_WAITING: '300',
        RATE_LIMIT_PER_MINUTE: '0',
      });
      expect(await embeddingSettled(server.url)).toMatchObject({ state: 'ready' });
    });
    afterAll(async () => {
      await server?.stop();
    });

    it('health and the GraphQL model query say which source is live and its dimensions', async () => {
      const h = await (await fetch(`${server.url}/v1/health`)).json();
      expect(h.status).toBe('ok');
      expect(h.embedding).toMatchObject({ state: 'ready', model: path.basename(dir), source: 'path', dimensions: 384, max_tokens: 512, reason: null });
      const g = await gql(server.url, '{ model { embedding { state model source dimensions maxTokens } } health { embedding { source dimensions } } }');
      expect(g.json.data.model.embedding).toEqual({ state: 'READY', model: path.basename(dir), source: 'PATH', dimensions: 384, maxTokens: 512 });
      expect(g.json.data.health.embedding).toEqual({ source: 'PATH', dimensions: 384 });
    });

    it("answers in OpenAI's shape with the contract's usage", async () => {
      const r = await post({ input: 'hello' });
      expect(r.status).toBe(200);
      expect(r.res.headers.get('x-request-id')).toBe(r.json.request_id);
      expect(r.json).toMatchObject({
        object: 'list',
        model: path.basename(dir),
        // [CLS] hello [SEP]
        usage: { prompt_tokens: 3, input_tokens: 3, total_tokens: 3 },
      });
      expect(r.json.data).toHaveLength(1);
      expect(r.json.data[0]).toMatchObject({ object: 'embedding', index: 0 });
      expect(r.json.data[0].embedding).toHaveLength(384);
      expect(norm(r.json.data[0].embedding)).toBeCloseTo(1, 5);
      const many = await post({ input: ['a b c', 'hello'] });
      expect(many.json.data.map((d: { index: number }) => d.index)).toEqual([0, 1]);
      expect(many.json.usage).toEqual({ prompt_tokens: 8, input_tokens: 8, total_tokens: 8 });
    });

    it('gives identical texts identical vectors', async () => {
      const r = await post({ input: ['The same sentence.', 'The same sentence.'] });
      expect(r.json.data[0].embedding).toEqual(r.json.data[1].embedding);
      const a = await post({ input: 'The same sentence.' });
      const b = await post({ input: 'The same sentence.' });
      expect(a.json.data[0].embedding).toEqual(b.json.data[0].embedding);
    });

    it('gives a batch the vectors of its items sent one by one', async () => {
      const texts = ['A cat sat on the mat.', 'Short.', 'Rain again today, and the river is rising over the old stone bridge.'];
      const batch = await post({ input: texts });
      for (const [i, text] of texts.entries()) {
        const alone = await post({ input: text });
        expect(maxDiff(batch.json.data[i].embedding, alone.json.data[0].embedding)).toBeLessThan(1e-5);
      }
    });

    it('normalize: false gives the raw mean-pooled vector, whose direction is the normalised one', async () => {
      const raw = await post({ input: 'Lily went to the park.', normalize: false });
      const unit = await post({ input: 'Lily went to the park.' });
      const v = raw.json.data[0].embedding as number[];
      expect(Math.abs(norm(v) - 1)).toBeGreaterThan(1e-3);
      expect(maxDiff(v.map((x) => x / norm(v)), unit.json.data[0].embedding)).toBeLessThan(1e-6);
    });

    it('takes 256 inputs; 257, none or a blank one is a 400 naming the field', async () => {
      const ok = await post({ input: Array.from({ length: 256 }, (_, i) => `item ${i}`) });
      expect(ok.status).toBe(200);
      expect(ok.json.data).toHaveLength(256);
      expect(ok.json.data[255].index).toBe(255);
      const tooMany = await post({ input: Array.from({ length: 257 }, () => 'x') });
      expect(tooMany.status).toBe(400);
      expect(tooMany.json.error).toMatchObject({ code: 'invalid_request', message: 'input must have at most 256 items', details: { field: 'input' } });
      expect((await post({ input: [] })).json.error.details.field).toBe('input');
      const blank = await post({ input: ['fine', '  '] });
      expect(blank.json.error).toMatchObject({ code: 'invalid_request', message: 'input[1] must be non-empty', details: { field: 'input[1]' } });
      expect((await post({})).json.error.message).toBe('input is required');
      expect((await post({ input: 'x', encoding_format: 'hex' })).json.error.details.field).toBe('encoding_format');
    });

    it('refuses an input over the token limit with its index and counts, and truncates on request', async () => {
      const long = 'word '.repeat(600); // 602 tokens
      const r = await post({ input: ['fine', long] });
      expect(r.status).toBe(400);
      expect(r.json.error.code).toBe('invalid_request');
      expect(r.json.error.details).toEqual({ field: 'input[1]', input_tokens: 602, max_tokens: 512 });
      expect(r.json.error.message).toContain('truncate');
      const single = await post({ input: long });
      expect(single.json.error.details.field).toBe('input');
      const cut = await post({ input: ['fine', long], truncate: true });
      expect(cut.status).toBe(200);
      expect(cut.json.usage.total_tokens).toBe(3 + 512);
    });

    it("checks model against the live model's names (404 not_found otherwise) and accepts its own dimensions only", async () => {
      expect((await post({ input: 'x', model: path.basename(dir) })).status).toBe(200);
      expect((await post({ input: 'x', model: dir })).status).toBe(200);
      const other = await post({ input: 'x', model: 'text-embedding-3-small' });
      expect(other.status).toBe(404);
      expect(other.json.error).toMatchObject({ code: 'not_found', details: { field: 'model', model: path.basename(dir) } });
      expect((await post({ input: 'x', dimensions: 384 })).status).toBe(200);
      const dims = await post({ input: 'x', dimensions: 128 });
      expect(dims.status).toBe(400);
      expect(dims.json.error.details.field).toBe('dimensions');
    });

    it("encoding_format: base64 is the float32 vector's little-endian bytes", async () => {
      const f = await post({ input: 'bytes please' });
      const b = await post({ input: 'bytes please', encoding_format: 'base64' });
      const buf = Buffer.from(b.json.data[0].embedding as string, 'base64');
      const decoded = Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4));
      expect(decoded).toEqual(f.json.data[0].embedding);
    });

    it('batches concurrent requests into shared encoder runs', async () => {
      const before = (await (await fetch(`${server.url}/v1/metrics`, { headers: { 'x-api-key': 'test-key-1' } })).json()).embeddings;
      const texts = Array.from({ length: 16 }, (_, i) => `concurrent request number ${i}`);
      const answers = await Promise.all(texts.map((t) => post({ input: t })));
      expect(answers.every((a) => a.status === 200)).toBe(true);
      const after = (await (await fetch(`${server.url}/v1/metrics`, { headers: { 'x-api-key': 'test-key-1' } })).json()).embeddings;
      expect(after.requests - before.requests).toBe(16);
      expect(after.inputs - before.inputs).toBe(16);
      // 16 single-input requests in fewer than 16 batches: some ran together.
      expect(after.batches - before.batches).toBeLessThan(16);
      expect(after.batch_size.p99).toBeGreaterThan(1);
      const prom = await (await fetch(`${server.url}/v1/metrics?format=prometheus`, { headers: { 'x-api-key': 'test-key-1' } })).text();
      expect(prom).toMatch(/^embedding_batch_size_count \d+/m);
      expect(prom).toMatch(/^embedding_requests_total \d+/m);
    });

    it('beyond the waiting limit answers 503 at once', async () => {
      // About 14,000 tokens: seconds of work on one thread, so the first is still queued when the second comes.
      const big = Array.from({ length: 256 }, (_, i) => `queued text ${i} ${'word '.repeat(50)}`);
      const first = post({ input: big });
      await new Promise((r) => setTimeout(r, 150));
      const second = await post({ input: big.slice(0, 100) });
      expect(second.status).toBe(503);
      expect(second.json.error).toMatchObject({ code: 'service_unavailable', details: { max_waiting_inputs: 300 } });
      expect((await first).status).toBe(200);
    });

    it('GraphQL embed gives what REST gives', async () => {
      const texts = ['GraphQL and REST', 'share one service'];
      const g = await gql(server.url, EMBED, { input: { input: texts } });
      expect(g.json.errors).toBeUndefined();
      const r = await post({ input: texts });
      const e = g.json.data.embed;
      expect(e.model).toBe(r.json.model);
      expect(e.usage).toEqual({ promptTokens: r.json.usage.prompt_tokens, inputTokens: r.json.usage.input_tokens, totalTokens: r.json.usage.total_tokens });
      expect(e.data.map((d: { embedding: number[] }) => d.embedding)).toEqual(r.json.data.map((d: { embedding: number[] }) => d.embedding));
      const b = await post({ input: texts, encoding_format: 'base64' });
      expect(e.data.map((d: { embeddingBase64: string }) => d.embeddingBase64)).toEqual(b.json.data.map((d: { embedding: string }) => d.embedding));
      const bad = await gql(server.url, EMBED, { input: { input: ['ok', ''] } });
      expect(bad.json.errors[0].extensions).toMatchObject({ code: 'invalid_request', details: { field: 'input.input[1]' } });
      const long = await gql(server.url, EMBED, { input: { input: ['word '.repeat(600)] } });
      expect(long.json.errors[0].extensions).toMatchObject({ code: 'invalid_request', details: { field: 'input[0]', max_tokens: 512 } });
    });
  },
);

describe.skipIf(!storiesModel.present)(storiesModel.title('embeddings without an encoder: the decoder fallback (stories260K)'), () => {
  let server: RunningServer;
  beforeAll(async () => {
    // No EMBEDDING_MODEL_PATH, and the hub model is not in the cache of an offline machine (HF_HUB_OFFLINE).
    server = await startServer({ RATE_LIMIT_PER_MINUTE: '0' });
    expect(await embeddingSettled(server.url)).toMatchObject({ state: 'ready' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('serves stories260K:mean-pool, 64 dimensions, and says why in health and logs', async () => {
    const h = await (await fetch(`${server.url}/v1/health`)).json();
    expect(h.embedding).toMatchObject({ state: 'ready', model: 'stories260K:mean-pool', source: 'decoder', dimensions: 64, max_tokens: 512 });
    expect(server.logs.some((l) => l.includes('falling back to the served decoder'))).toBe(true);
    const g = await gql(server.url, '{ model { name embedding { model source dimensions } } }');
    expect(g.json.data.model).toEqual({ name: 'stories260K', embedding: { model: 'stories260K:mean-pool', source: 'DECODER', dimensions: 64 } });
  });

  it('embeds with the decoder: unit vectors, BOS counted, the decoder name accepted as model', async () => {
    const r = await postJson(`${server.url}/v1/embeddings`, { input: ['Once upon a time', 'Lily and Ben'], model: 'stories260K' });
    expect(r.status).toBe(200);
    expect(r.json.model).toBe('stories260K:mean-pool');
    for (const d of r.json.data) {
      expect(d.embedding).toHaveLength(64);
      expect(norm(d.embedding)).toBeCloseTo(1, 5);
    }
    expect(maxDiff(r.json.data[0].embedding, r.json.data[1].embedding)).toBeGreaterThan(1e-3);
    const alone = await postJson(`${server.url}/v1/embeddings`, { input: 'Once upon a time' });
    expect(maxDiff(alone.json.data[0].embedding, r.json.data[0].embedding)).toBeLessThan(1e-5);
  });

  it('leaves chat exact while embeddings run beside it', async () => {
    const [prompt, reference] = GOLDEN[0]!;
    const embeds = Array.from({ length: 8 }, (_, i) => postJson(`${server.url}/v1/embeddings`, { input: `story ${i}` }));
    const chat = await postJson(`${server.url}/v1/chat`, { prompt, temperature: 0, max_new_tokens: 60 });
    expect((prompt + chat.json.response).startsWith(reference.slice(0, prompt.length + chat.json.response.length))).toBe(true);
    expect((await Promise.all(embeds)).every((e) => e.status === 200)).toBe(true);
  });
});
