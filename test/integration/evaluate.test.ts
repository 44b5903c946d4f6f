import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { authHeaders, gql, postJson, startServer, type RunningServer } from '../helpers/server.js';
import { storiesModel } from '../helpers/models.js';

describe.skipIf(!storiesModel.present)(storiesModel.title('single evaluation (contract section 3)'), () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({ DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'evaluate-test-')) });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('scores, stores, and reads back; /evaluate alias; GraphQL agrees', async () => {
    const body = {
      prompt: 'What is the capital of France?',
      response: 'The capital of France is Paris.',
      reference: 'Paris is the capital of France.',
      criteria: ['accuracy', 'clarity', 'reasoning', 'factuality', 'overall'],
    };
    const r = await postJson(`${server.url}/v1/evaluate`, body);
    expect(r.status).toBe(200);
    expect(r.json.scores.map((s: any) => s.criterion)).toEqual(body.criteria);
    for (const s of r.json.scores) {
      expect(Number.isInteger(s.score)).toBe(true);
      expect(s.score).toBeGreaterThanOrEqual(1);
      expect(s.score).toBeLessThanOrEqual(5);
      expect(s.rationale.length).toBeGreaterThan(0);
    }
    const stored = await (await fetch(`${server.url}/v1/evals/${r.json.run_id}`, { headers: authHeaders })).json();
    expect(stored).toMatchObject({ run_id: r.json.run_id, prompt: body.prompt, response: body.response, criteria: body.criteria });
    expect(stored.scores).toEqual(r.json.scores);
    expect(typeof stored.created_at).toBe('string');
    const alias = await postJson(`${server.url}/evaluate`, body);
    expect(alias.json.scores).toEqual(r.json.scores);
    const g = await gql(server.url, 'query($id: String!) { evalRun(runId: $id) { runId scores { criterion score rationale } } }', { id: r.json.run_id });
    expect(g.json.data.evalRun.scores.map((s: any) => s.score)).toEqual(r.json.scores.map((s: any) => s.score));
  });

  it('accuracy rises and falls with agreement to the reference', async () => {
    const reference = 'The cat sat on the warm mat near the door.';
    const score = async (response: string) =>
      (await postJson(`${server.url}/v1/evaluate`, { prompt: 'Where did the cat sit?', response, reference, criteria: ['accuracy'] })).json.scores[0].score;
    const same = await score(reference);
    const close = await score('The cat sat on the mat near the door.');
    const far = await score('Dogs enjoy running in the park on sunny days.');
    expect(same).toBe(5);
    expect(close).toBeLessThanOrEqual(same);
    expect(close).toBeGreaterThan(far);
    expect(far).toBeLessThanOrEqual(2);
  });

  it('without a reference accuracy is unscored, never invented', async () => {
    const r = await postJson(`${server.url}/v1/evaluate`, { prompt: 'p', response: 'r', criteria: ['accuracy'] });
    expect(r.json.scores[0].score).toBeNull();
    expect(r.json.scores[0].evaluator_error).toBe('no_reference');
  });

  it('model judge: scores from the model, never parse_error (its reply is decoded under the reply schema)', async () => {
    const r = await postJson(`${server.url}/v1/evaluate`, {
      prompt: 'Tell a story',
      response: 'Once upon a time there was a dog.',
      reference: 'A story about a dog.',
      criteria: ['clarity', 'accuracy', 'overall'],
      judge: 'model',
    });
    expect(r.status).toBe(200);
    // stories260K never writes JSON by itself; constrained, every criterion gets a 1..5 from attempt 1.
    for (const s of r.json.scores) {
      expect(s.evaluator_error ?? null, JSON.stringify(s)).toBeNull();
      expect(Number.isInteger(s.score) && s.score >= 1 && s.score <= 5, JSON.stringify(s)).toBe(true);
      expect(s.rationale).toMatch(/^model judge \(attempt 1\): [A-Za-z0-9]/);
    }
  });

  it('validation errors name the field; unknown run is 404', async () => {
    for (const [body, field] of [
      [{ response: 'r' }, 'prompt'],
      [{ prompt: 'p' }, 'response'],
      [{ prompt: 'p', response: 'r', criteria: ['speed'] }, 'criteria.0'],
      [{ prompt: 'p', response: 'r', criteria: [] }, 'criteria'],
      [{ prompt: 'p', response: 'r', judge: 'human' }, 'judge'],
    ] as const) {
      const r = await postJson(`${server.url}/v1/evaluate`, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.error.details.field).toBe(field);
    }
    const missing = await fetch(`${server.url}/v1/evals/ev_nope`, { headers: authHeaders });
    expect(missing.status).toBe(404);
  });
});
