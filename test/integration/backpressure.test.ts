import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeaders, postJson, startServer, type RunningServer } from '../helpers/server.js';
import { storiesModel } from '../helpers/models.js';

async function runningBatch(url: string): Promise<number> {
  return (await (await fetch(`${url}/v1/health`)).json()).running_batch;
}

async function waitFor(cond: () => Promise<boolean>, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

describe.skipIf(!storiesModel.present)(storiesModel.title('backpressure and cancellation'), () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({ MAX_BATCH_SIZE: '1', MAX_WAITING_REQUESTS: '1' });
  });
  afterAll(async () => {
    await server?.stop();
  });
  const long = { prompt: 'Once upon a time', temperature: 0.9, seed: 1, max_new_tokens: 500, stop: ['zzzz'] };

  it('beyond the waiting limit answers 503 service_unavailable at once', async () => {
    const first = postJson(`${server.url}/v1/chat`, long);
    await waitFor(async () => (await runningBatch(server.url)) === 1);
    const second = postJson(`${server.url}/v1/chat`, long);
    await new Promise((r) => setTimeout(r, 50));
    const third = await postJson(`${server.url}/v1/chat`, long);
    expect(third.status).toBe(503);
    expect(third.json.error.code).toBe('service_unavailable');
    expect(third.json.request_id).toBeTruthy();
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
  });

  for (const surface of ['REST stream', 'REST', 'GraphQL subscription'] as const) {
    it(`a ${surface} client that disconnects frees its row`, async () => {
      const controller = new AbortController();
      const request =
        surface === 'GraphQL subscription'
          ? fetch(`${server.url}/graphql`, {
              method: 'POST',
              headers: { ...authHeaders, accept: 'text/event-stream' },
              body: JSON.stringify({
                query: 'subscription S($input: ChatInput!) { chatStream(input: $input) { token done } }',
                variables: { input: { prompt: long.prompt, maxNewTokens: 1000, temperature: 0.9, seed: 2, stop: ['zzzz'] } },
              }),
              signal: controller.signal,
            })
          : fetch(`${server.url}/v1/chat`, {
              method: 'POST',
              headers: authHeaders,
              body: JSON.stringify({ ...long, max_new_tokens: 1000, stream: surface === 'REST stream' }),
              signal: controller.signal,
            });
      expect(await waitFor(async () => (await runningBatch(server.url)) === 1)).toBe(true);
      controller.abort();
      await request.catch(() => undefined);
      expect(await waitFor(async () => (await runningBatch(server.url)) === 0, 2000)).toBe(true);
      // Freed when the client left, long before the ~500 tokens the window allows
      // (the log line may follow the freed row by a moment on a loaded machine).
      await waitFor(async () => server.logs.some((l) => l.includes('generation cancelled')), 2000);
      const line = server.logs.filter((l) => l.includes('generation cancelled')).at(-1);
      expect(line, 'a cancellation was logged').toBeTruthy();
      server.logs.length = 0;
      expect(JSON.parse(line!).completion_tokens).toBeLessThan(400);
      const after = await postJson(`${server.url}/v1/chat`, { prompt: 'Hi', max_new_tokens: 3 });
      expect(after.status).toBe(200);
    });
  }
});
