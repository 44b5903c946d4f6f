import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeaders, gql, postJson, startServer, type RunningServer } from '../helpers/server.js';
import { storiesModel } from '../helpers/models.js';

const STORIES = ['Once upon a time', "Lily's mom said", 'One day, a big bear', 'Tom had a red ball', 'The sun was hot'];
/** 200 records: references that agree with the model's greedy answers for some prompts, unrelated text for others. */
function records(n: number) {
  return Array.from({ length: n }, (_, i) => ({
    record_id: `rec-${i}`,
    input: { prompt: STORIES[i % STORIES.length]! },
    reference: { answer: i % 2 === 0 ? 'there was a little girl named Lily. She loved to play outside in the park.' : 'Quantum chromodynamics describes the strong interaction.' },
    tags: [i % 2 === 0 ? 'related' : 'unrelated'],
    expected: { required_criteria: ['accuracy'] },
  }));
}

async function waitDone(url: string, id: string, timeoutMs = 120_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await (await fetch(`${url}/v1/batch-evals/${id}`, { headers: authHeaders })).json();
    if (!['queued', 'running'].includes(r.status)) return r;
    if (Date.now() > deadline) throw new Error(`batch ${id} still ${r.status}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

const get = async (url: string, p: string) => (await fetch(url + p, { headers: authHeaders })).json() as Promise<any>;

describe.skipIf(!storiesModel.present)(storiesModel.title('batch evaluations (contract section 5)'), () => {
  let server: RunningServer;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'batch-test-'));
  beforeAll(async () => {
    server = await startServer({ DATA_DIR: dataDir });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('200 records: upload → run → result, distribution and failures, the same through REST and GraphQL, and after a restart', async () => {
    const ds = await postJson(`${server.url}/v1/datasets`, { name: 'two hundred', type: 'eval_set', records: records(200) });
    expect(ds.status).toBe(201);
    const start = await postJson(`${server.url}/v1/batch-evals`, {
      dataset_id: ds.json.dataset_id,
      criteria: ['accuracy', 'clarity', 'overall'],
      concurrency: 8,
      max_new_tokens: 24,
      temperature: 0,
    });
    expect(start.status).toBe(202);
    expect(start.json.status).toBe('queued');
    const id = start.json.batch_eval_id;
    const run = await waitDone(server.url, id);
    expect(run.progress).toEqual({ total: 200, completed: 200, failed: 0 });
    expect(run.status).toBe('completed');
    expect(run.started_at).toBeTruthy();
    expect(run.completed_at).toBeTruthy();

    const result = await get(server.url, `/v1/batch-evals/${id}/result`);
    const s = result.summary;
    expect(s.total_items).toBe(200);
    expect(s.failed_items).toBe(0);
    expect(s.pass_rate).toBeGreaterThan(0);
    expect(s.pass_rate).toBeLessThan(1);
    expect(s.pass_rate_ci95_lower).toBeLessThan(s.pass_rate);
    expect(s.pass_rate_ci95_upper).toBeGreaterThan(s.pass_rate);
    expect(s.latency_p95_ms).toBeGreaterThanOrEqual(s.latency_p50_ms);
    expect(s.total_output_tokens).toBeGreaterThan(0);
    expect(Object.keys(s.mean_scores).sort()).toEqual(['accuracy', 'clarity', 'overall']);

    const dist = await get(server.url, `/v1/batch-evals/${id}/distribution?criterion=accuracy`);
    const sum = Object.values(dist.buckets as Record<string, number>).reduce((a, b) => a + b, 0);
    expect(sum).toBe(dist.summary.count);
    expect(dist.summary.count).toBe(200);
    expect(dist.summary.mean).toBeCloseTo(s.mean_scores.accuracy, 6);

    // Unrelated references fail on accuracy: every one of them is a failure, paged by cursor.
    const failed: any[] = [];
    let cursor: string | null = null;
    do {
      const page: any = await get(server.url, `/v1/batch-evals/${id}/failures?limit=30${cursor ? `&cursor=${cursor}` : ''}`);
      failed.push(...page.data);
      cursor = page.next_cursor;
      expect(page.count).toBe(Math.round(200 * (1 - s.pass_rate)));
    } while (cursor);
    expect(failed.length).toBe(Math.round(200 * (1 - s.pass_rate)));
    for (const f of failed) {
      expect(f.reason).toBe('below_threshold');
      expect(typeof f.response).toBe('string');
      expect(f.scores.length).toBe(3);
    }
    expect(failed.filter((f) => Number(f.record_id.split('-')[1]) % 2 === 1).length).toBe(100);

    const artifact = await fetch(`${server.url}/v1/batch-evals/${id}/artifacts/predictions.jsonl`, { headers: authHeaders });
    expect(artifact.status).toBe(200);
    const lines = (await artifact.text()).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(200);
    const failuresArtifact = (await (await fetch(`${server.url}/v1/batch-evals/${id}/artifacts/failures.jsonl`, { headers: authHeaders })).text()).trim().split('\n');
    expect(failuresArtifact).toHaveLength(failed.length);

    const query = `query($id: String!) { batchEval(id: $id) { status progress { total completed failed }
      result { totalItems failedItems passRate passRateCi95Lower passRateCi95Upper latencyP50Ms meanScores totalOutputTokens }
      distribution(criterion: ACCURACY) { count mean buckets { score count } }
      failures(first: 100) { count nodes { recordId reason } hasNextPage } } }`;
    const g = (await gql(server.url, query, { id })).json.data.batchEval;
    expect(g.result.passRate).toBe(s.pass_rate);
    expect(g.result.passRateCi95Lower).toBe(s.pass_rate_ci95_lower);
    expect(g.result.latencyP50Ms).toBe(s.latency_p50_ms);
    expect(g.result.meanScores).toEqual(s.mean_scores);
    expect(g.distribution.mean).toBe(dist.summary.mean);
    expect(g.failures.count).toBe(failed.length);

    // The same failures as a relay connection, paged forward by first/after: the same records and fields as REST.
    const pageQuery = `query($id: String!, $after: String) { batchEval(id: $id) { failures(first: 30, after: $after) {
      count edges { cursor node { recordId status reason promptTokens completionTokens } } nodes { recordId } pageInfo { hasNextPage endCursor } } } }`;
    const nodes: any[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const conn: any = (await gql(server.url, pageQuery, { id, after })).json.data.batchEval.failures;
      expect(conn.nodes.map((n: any) => n.recordId)).toEqual(conn.edges.map((e: any) => e.node.recordId));
      expect(conn.pageInfo.endCursor).toBe(conn.edges.at(-1)?.cursor ?? null);
      nodes.push(...conn.edges.map((e: any) => e.node));
      pages++;
      if (!conn.pageInfo.hasNextPage) break;
      after = conn.pageInfo.endCursor;
    }
    expect(pages).toBe(Math.ceil(failed.length / 30));
    expect(nodes.map((n) => n.recordId)).toEqual(failed.map((f) => f.record_id));
    expect(nodes.map((n) => [n.promptTokens, n.completionTokens])).toEqual(failed.map((f) => [f.prompt_tokens, f.completion_tokens]));
    expect(new Set(nodes.map((n) => `${n.status} ${n.reason}`))).toEqual(new Set(['SUCCEEDED BELOW_THRESHOLD']));

    // Deleting a dataset while no run uses it works; the run's results stay.
    await server.stop();
    server = await startServer({ DATA_DIR: dataDir });
    const again = await get(server.url, `/v1/batch-evals/${id}/result`);
    expect(again.summary).toEqual(s);
  });

  it('GraphQL starts a run; cancel stops it; a dataset in use cannot be deleted', async () => {
    const ds = await postJson(`${server.url}/v1/datasets`, { name: 'cancel me', type: 'eval_set', records: records(120) });
    const g = await gql(
      server.url,
      'mutation($input: StartBatchEvalInput!) { startBatchEval(input: $input) { batchEvalId status } }',
      { input: { datasetId: ds.json.dataset_id, criteria: ['OVERALL'], concurrency: 1, maxNewTokens: 400, temperature: 0.9 } },
    );
    const id = g.json.data.startBatchEval.batchEvalId;
    expect(g.json.data.startBatchEval.status).toBe('QUEUED');
    const del = await fetch(`${server.url}/v1/datasets/${ds.json.dataset_id}`, { method: 'DELETE', headers: authHeaders });
    expect(del.status).toBe(409);
    expect((await del.json()).error.code).toBe('conflict');
    const c = await postJson(`${server.url}/v1/batch-evals/${id}/cancel`, {});
    expect(c.status).toBe(200);
    expect(c.json.status).toBe('cancelled');
    await new Promise((r) => setTimeout(r, 300));
    const after = await get(server.url, `/v1/batch-evals/${id}`);
    expect(after.status).toBe('cancelled');
    expect(after.progress.completed).toBeLessThan(120);
    const twice = await postJson(`${server.url}/v1/batch-evals/${id}/cancel`, {});
    expect(twice.status).toBe(409);
    const del2 = await fetch(`${server.url}/v1/datasets/${ds.json.dataset_id}`, { method: 'DELETE', headers: authHeaders });
    expect(del2.status).toBe(200);
  });

  it('a run interrupted by a crash resumes after restart and completes', async () => {
    const ds = await postJson(`${server.url}/v1/datasets`, { name: 'resume', type: 'eval_set', records: records(60) });
    const start = await postJson(`${server.url}/v1/batch-evals`, { dataset_id: ds.json.dataset_id, concurrency: 2, max_new_tokens: 60, temperature: 0 });
    const id = start.json.batch_eval_id;
    for (;;) {
      const r = await get(server.url, `/v1/batch-evals/${id}`);
      if (r.progress.completed >= 5) break;
      await new Promise((res) => setTimeout(res, 20));
    }
    await server.stop('SIGKILL');
    server = await startServer({ DATA_DIR: dataDir });
    const run = await waitDone(server.url, id);
    expect(run.status).toBe('completed');
    expect(run.progress.completed).toBe(60);
    const lines = (await (await fetch(`${server.url}/v1/batch-evals/${id}/artifacts/predictions.jsonl`, { headers: authHeaders })).text()).trim().split('\n');
    expect(lines).toHaveLength(60);
  });

  it('validation and unknown ids', async () => {
    expect((await postJson(`${server.url}/v1/batch-evals`, { dataset_id: 'ds_nope' })).status).toBe(404);
    const bad = await postJson(`${server.url}/v1/batch-evals`, { dataset_id: 'x', criteria: ['speed'] });
    expect(bad.status).toBe(400);
    expect(bad.json.error.details.field).toBe('criteria.0');
    expect((await fetch(`${server.url}/v1/batch-evals/be_nope`, { headers: authHeaders })).status).toBe(404);
    expect((await fetch(`${server.url}/v1/batch-evals/be_nope/artifacts/predictions.jsonl`, { headers: authHeaders })).status).toBe(404);
  });
});
