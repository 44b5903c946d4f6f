import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeaders, postJson, readSse, startServer, type RunningServer } from '../helpers/server.js';
import { storiesModel } from '../helpers/models.js';

/** batchEvalProgress in one process (ROLE=all, no Redis): events in process memory. */
describe.skipIf(!storiesModel.present)(storiesModel.title('batchEvalProgress subscription, single process'), () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('streams a run from its start to its end, progress never going backwards', async () => {
    const records = Array.from({ length: 40 }, (_, i) => ({
      record_id: `r${i}`,
      input: { prompt: i % 2 ? 'Once upon a time' : 'Tom had a red ball' },
      reference: { answer: 'there was a little girl' },
      expected: { required_criteria: ['accuracy'] },
    }));
    const ds = await postJson(`${server.url}/v1/datasets`, { name: 'forty', type: 'eval_set', records });
    expect(ds.status, ds.text).toBe(201);
    const start = await postJson(`${server.url}/v1/batch-evals`, { dataset_id: ds.json.dataset_id, criteria: ['accuracy'], concurrency: 4, max_new_tokens: 16, temperature: 0 });
    expect(start.status, start.text).toBe(202);
    const res = await fetch(`${server.url}/graphql`, {
      method: 'POST',
      headers: { ...authHeaders, accept: 'text/event-stream' },
      body: JSON.stringify({
        query: 'subscription P($id: ID!) { batchEvalProgress(id: $id) { batchEvalId status progress { total completed failed } } }',
        variables: { id: start.json.batch_eval_id },
      }),
    });
    expect(res.status).toBe(200);
    const events = (await readSse(res)).filter((e) => e.event === 'next').map((e) => e.data.data.batchEvalProgress);
    expect(events.at(-1)).toEqual({ batchEvalId: start.json.batch_eval_id, status: 'COMPLETED', progress: { total: 40, completed: 40, failed: 0 } });
    const seen = events.map((e) => e.progress.completed);
    expect(new Set(seen).size).toBeGreaterThan(3);
    expect(seen).toEqual([...seen].sort((x, y) => x - y));
  }, 60_000);

  it('an unknown run is a not_found error', async () => {
    const res = await fetch(`${server.url}/graphql`, {
      method: 'POST',
      headers: { ...authHeaders, accept: 'text/event-stream' },
      body: JSON.stringify({ query: 'subscription { batchEvalProgress(id: "be_nope") { status } }' }),
    });
    const events = await readSse(res);
    const errors = events.flatMap((e) => e.data?.errors ?? []);
    expect(errors[0]?.extensions?.code).toBe('not_found');
  });
});
