import { describe, expect, it } from 'vitest';
import { authHeaders, postJson, startServer } from '../helpers/server.js';
import { storiesModel } from '../helpers/models.js';

describe.skipIf(!storiesModel.present)(storiesModel.title('logs and graceful shutdown'), () => {
  it('one JSON log line per request with route template, status, key id and tokens; never a key or the prompt', async () => {
    const server = await startServer({ API_KEYS: 'secret-key-abc,test-key-1' });
    try {
      const prompt = 'A very private prompt about Lily';
      await postJson(`${server.url}/v1/chat`, { prompt, max_new_tokens: 5, temperature: 0 }, { 'content-type': 'application/json', 'x-api-key': 'secret-key-abc' });
      await fetch(`${server.url}/v1/datasets/ds_123456`, { headers: authHeaders });
      await new Promise((r) => setTimeout(r, 100));
      const lines = server.logs.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
      const chat = lines.find((l) => l.msg === 'request' && l.route === '/v1/chat');
      expect(chat).toMatchObject({ method: 'POST', status: 200, completion_tokens: 5, cache_hit: false });
      expect(chat.key_id).toMatch(/^[0-9a-f]{12}$/);
      expect(typeof chat.request_id).toBe('string');
      expect(typeof chat.latency_ms).toBe('number');
      const ds = lines.find((l) => l.msg === 'request' && l.status === 404);
      expect(ds.route).toBe('/v1/datasets/:id');
      const all = server.logs.join('\n');
      expect(all).not.toContain('secret-key-abc');
      expect(all).not.toContain(prompt);
      const start = lines.find((l) => l.msg === 'starting');
      expect(start.config.api_key_ids).toHaveLength(2);
    } finally {
      await server.stop();
    }
  });

  it('SIGTERM during a long generation: the request completes and the process exits 0', async () => {
    const server = await startServer({ SHUTDOWN_GRACE_SECONDS: '20' });
    const pending = postJson(`${server.url}/v1/chat`, { prompt: 'Once upon a time', max_new_tokens: 1000, temperature: 0.9, seed: 3, stop: ['zzzz'] });
    // Wait until it is generating.
    for (let i = 0; i < 200; i++) {
      const h = await (await fetch(`${server.url}/v1/health`)).json();
      if (h.running_batch === 1) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    const exit = server.stop('SIGTERM');
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.json.completion_tokens).toBeGreaterThan(100);
    expect(await exit).toBe(0);
    expect(server.logs.some((l) => l.includes('all requests finished'))).toBe(true);
  });
});
