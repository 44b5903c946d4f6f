import fs from 'node:fs';
import path from 'node:path';
import { printSchema } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enumName } from '../../src/schema/enums.js';
import { schema } from '../../src/schema/index.js';
import { authHeaders, gql, postJson, readSse, REPO, startServer, type RunningServer } from '../helpers/server.js';
import { GOLDEN } from '../helpers/golden.js';
import { storiesModel } from '../helpers/models.js';

const CHAT = `mutation Chat($input: ChatInput!) {
  chat(input: $input) {
    response latencyMs promptTokens completionTokens totalTokens model requestId finishReason cacheHit
    contextWindow contextUsedPct modelType attentionMasking attentionHeads hiddenSize estimatedAttentionOps
    outputToInputRatio refined originalResponse critique refineStepsUsed seed timeToFirstTokenMs
  }
}`;

describe('schema.graphql', () => {
  it('is the schema printed from the code (run npm run print-schema after changing it)', () => {
    const committed = fs.readFileSync(path.join(REPO, 'schema.graphql'), 'utf8');
    expect(committed).toBe(`${printSchema(schema)}\n`);
  });
});

describe.skipIf(!storiesModel.present)(storiesModel.title('GraphQL with stories260K'), () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it.each(GOLDEN)('chat mutation, greedy %j, reproduces the reference output', async (prompt, reference) => {
    const { status, json } = await gql(server.url, CHAT, { input: { prompt, temperature: 0, maxNewTokens: 120 } });
    expect(status).toBe(200);
    expect(json.errors).toBeUndefined();
    expect((prompt + json.data.chat.response).startsWith(reference)).toBe(true);
  });

  it('gives the same result as REST for the same request', async () => {
    const input = { prompt: 'Lily and Ben', temperature: 0.7, seed: 5, maxNewTokens: 40 };
    const g = await gql(server.url, CHAT, { input });
    const r = await postJson(`${server.url}/v1/chat`, { prompt: input.prompt, temperature: 0.7, seed: 5, max_new_tokens: 40 });
    const c = g.json.data.chat;
    expect(c.response).toBe(r.json.response);
    expect(c.promptTokens).toBe(r.json.prompt_tokens);
    expect(c.completionTokens).toBe(r.json.completion_tokens);
    expect(c.contextUsedPct).toBe(r.json.context_used_pct);
    // GraphQL serves statuses as enum names (STOP), REST as the contract's strings (stop).
    expect(c.finishReason).toBe(enumName(r.json.finish_reason));
  });

  it('chat takes messages in place of prompt, as REST does', async () => {
    const messages = [{ role: 'SYSTEM', content: 'Tell a story.' }, { role: 'USER', content: 'Once upon a time' }];
    const g = await gql(server.url, 'mutation($input: ChatInput!) { chat(input: $input) { response promptTokens } }', {
      input: { messages, temperature: 0, maxNewTokens: 10 },
    });
    expect(g.json.errors).toBeUndefined();
    const r = await postJson(`${server.url}/v1/chat`, {
      messages: messages.map((m) => ({ ...m, role: m.role.toLowerCase() })),
      temperature: 0,
      max_new_tokens: 10,
    });
    expect(g.json.data.chat).toEqual({ response: r.json.response, promptTokens: r.json.prompt_tokens });
    const neither = await gql(server.url, 'mutation { chat(input: { maxNewTokens: 3 }) { response } }');
    expect(neither.json.errors[0].extensions).toMatchObject({ code: 'invalid_request', details: { field: 'input.prompt' } });
  });

  it('health and model queries', async () => {
    const { json } = await gql(server.url, '{ health { status model modelLoaded device version } model { name state contextWindow attentionHeads kvHeads hiddenSize layers vocabSize } }');
    expect(json.data.health).toMatchObject({ status: 'OK', model: 'stories260K', modelLoaded: true, device: 'cpu' });
    expect(json.data.model).toMatchObject({ name: 'stories260K', state: 'READY', contextWindow: 512, attentionHeads: 8, kvHeads: 4, hiddenSize: 64, layers: 5, vocabSize: 512 });
    expect(json.extensions.request_id).toBeTruthy();
  });

  it('models lists the chat model, then the embedding model once loaded, as GET /v1/models does', async () => {
    const deadline = Date.now() + 60_000;
    while ((await gql(server.url, '{ model { embedding { state } } }')).json.data.model.embedding.state === 'LOADING' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
    }
    const { json } = await gql(server.url, '{ models { id kind created ownedBy contextWindow dimensions } }');
    expect(json.errors).toBeUndefined();
    const rest = await fetch(`${server.url}/v1/models`, { headers: authHeaders }).then((r) => r.json() as Promise<{ data: Array<Record<string, unknown>> }>);
    // Without an encoder here, the embedding model is the decoder itself, mean-pooled.
    expect(json.data.models).toEqual([
      { id: 'stories260K', kind: 'CHAT', created: expect.any(Number), ownedBy: 'inference-server', contextWindow: 512, dimensions: null },
      { id: 'stories260K:mean-pool', kind: 'EMBEDDING', created: expect.any(Number), ownedBy: 'inference-server', contextWindow: 512, dimensions: 64 },
    ]);
    expect(rest.data.map((m) => [m.id, m.created, m.owned_by, m.context_window])).toEqual(
      json.data.models.map((m: Record<string, unknown>) => [m.id, m.created, m.ownedBy, m.contextWindow]),
    );
  });

  it('needs the key: 401 with extensions.code unauthorized', async () => {
    const r = await gql(server.url, '{ health { status } }', undefined, { 'content-type': 'application/json' });
    expect(r.status).toBe(401);
    expect(r.json.errors[0].extensions.code).toBe('unauthorized');
    const bearer = await gql(server.url, '{ health { status } }', undefined, { 'content-type': 'application/json', authorization: 'Bearer test-key-1' });
    expect(bearer.json.data.health.status).toBe('OK');
  });

  it('validation errors carry invalid_request and the field', async () => {
    const r = await gql(server.url, CHAT, { input: { prompt: '  ' } });
    expect(r.json.errors[0].extensions.code).toBe('invalid_request');
    expect(r.json.errors[0].extensions.details.field).toBe('input.prompt');
    const t = await gql(server.url, CHAT, { input: { prompt: 'hi', temperature: 5 } });
    expect(t.json.errors[0].extensions.details.field).toBe('input.temperature');
    const ctx = await gql(server.url, CHAT, { input: { prompt: 'dog '.repeat(600) } });
    expect(ctx.json.errors[0].extensions.code).toBe('invalid_request');
    expect(ctx.json.errors[0].extensions.details.context_window).toBe(512);
  });

  it('GraphQL syntax and type errors carry invalid_request', async () => {
    const bad = await gql(server.url, '{ health { nope } }');
    expect(bad.json.errors[0].extensions.code).toBe('invalid_request');
    const syntax = await gql(server.url, '{ health ');
    expect(syntax.json.errors[0].extensions.code).toBe('invalid_request');
  });

  it('chatStream subscription streams tokens over SSE, ending with the whole result', async () => {
    const input = { prompt: 'Once upon a time', temperature: 0, maxNewTokens: 40 };
    const plain = await gql(server.url, CHAT, { input });
    const res = await fetch(`${server.url}/graphql`, {
      method: 'POST',
      headers: { ...authHeaders, accept: 'text/event-stream' },
      body: JSON.stringify({
        query: 'subscription S($input: ChatInput!) { chatStream(input: $input) { token index phase done result { response completionTokens } } }',
        variables: { input },
      }),
    });
    expect(res.status).toBe(200);
    const events = (await readSse(res)).filter((e) => e.event === 'next').map((e) => e.data.data.chatStream);
    const last = events.at(-1);
    expect(last.done).toBe(true);
    const tokens = events.filter((e) => !e.done).map((e) => e.token);
    expect(tokens.length).toBeGreaterThan(1);
    expect(tokens.join('')).toBe(plain.json.data.chat.response);
    expect(last.result.response).toBe(plain.json.data.chat.response);
  });

  it("the web console's reads: a dataset's records, batch evaluations newest first, the database in health", async () => {
    const records = ['Once upon a time', 'Tom had a red ball', 'The sun was hot'].map((prompt, i) => ({ record_id: `r${i}`, input: { prompt } }));
    const created = await gql(server.url, 'mutation($input: CreateDatasetInput!) { createDataset(input: $input) { dataset { datasetId } } }', {
      input: { name: 'console reads', type: 'EVAL_SET', records },
    });
    const datasetId: string = created.json.data.createDataset.dataset.datasetId;
    const recordsQuery = `query($id: String!, $after: String) { dataset(id: $id) { records(first: 2, after: $after) {
      nodes { index recordId data } pageInfo { hasNextPage endCursor } } } }`;
    const first = (await gql(server.url, recordsQuery, { id: datasetId })).json.data.dataset.records;
    expect(first.nodes.map((n: any) => [n.index, n.recordId])).toEqual([[0, 'r0'], [1, 'r1']]);
    expect(first.nodes[0].data).toMatchObject({ record_id: 'r0', input: { prompt: 'Once upon a time' } });
    expect(first.pageInfo.hasNextPage).toBe(true);
    const second = (await gql(server.url, recordsQuery, { id: datasetId, after: first.pageInfo.endCursor })).json.data.dataset.records;
    expect(second.nodes.map((n: any) => n.recordId)).toEqual(['r2']);
    expect(second.pageInfo.hasNextPage).toBe(false);

    const start = 'mutation($input: StartBatchEvalInput!) { startBatchEval(input: $input) { batchEvalId } }';
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await gql(server.url, start, { input: { datasetId, criteria: ['CLARITY'], maxNewTokens: 2 } });
      expect(r.json.errors).toBeUndefined();
      ids.push(r.json.data.startBatchEval.batchEvalId);
    }
    const list = `query($after: String, $datasetId: String, $status: BatchStatus) { batchEvals(first: 1, after: $after, datasetId: $datasetId, status: $status) {
      nodes { batchEvalId datasetId } pageInfo { hasNextPage endCursor } } }`;
    const page1 = (await gql(server.url, list, { datasetId })).json.data.batchEvals;
    expect(page1.nodes.map((n: any) => n.batchEvalId)).toEqual([ids[1]]);
    expect(page1.pageInfo.hasNextPage).toBe(true);
    const page2 = (await gql(server.url, list, { datasetId, after: page1.pageInfo.endCursor })).json.data.batchEvals;
    expect(page2.nodes.map((n: any) => n.batchEvalId)).toEqual([ids[0]]);
    expect(page2.pageInfo.hasNextPage).toBe(false);
    expect((await gql(server.url, list, { datasetId: 'ds_none' })).json.data.batchEvals.nodes).toEqual([]);
    const bad = await gql(server.url, list, { after: 'nope' });
    expect(bad.json.errors[0].extensions.code).toBe('invalid_request');

    const health = (await gql(server.url, '{ health { database { kind state latencyMs reason } } }')).json.data.health;
    expect(health.database).toMatchObject({ kind: 'SQLITE', state: 'OK', reason: null });
    expect(health.database.latencyMs).toBeGreaterThanOrEqual(0);
  });

  it('GraphiQL loads in a browser without a key', async () => {
    const r = await fetch(`${server.url}/graphql`, { headers: { accept: 'text/html' } });
    expect(r.status).toBe(200);
    expect(await r.text()).toContain('GraphiQL');
  });
});
