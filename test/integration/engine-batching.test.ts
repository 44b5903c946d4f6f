/**
 * The engine's continuous batching on the real stories260K model: golden
 * outputs, and each request's text the same batched as alone. The policy
 * itself is tested without a model in test/unit/admission.test.ts and
 * test/unit/scheduler.test.ts.
 */
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/engine.js';
import { resolveCheckpointModel } from '../../src/engine/model-dir.js';
import type { SamplingParams } from '../../src/engine/types.js';
import { GOLDEN } from '../helpers/golden.js';
import { STORIES_CHECKPOINT, storiesModel } from '../helpers/models.js';

const params = (p: Partial<SamplingParams>): SamplingParams => ({
  maxNewTokens: 60,
  temperature: 0,
  topP: 1,
  topK: 0,
  repetitionPenalty: 1,
  seed: 0,
  stop: [],
  ...p,
});

/** Sixteen requests of mixed prompts, lengths and sampling settings. */
const MIXED: Array<[string, SamplingParams]> = [
  ...GOLDEN.map(([prompt]) => [prompt, params({ maxNewTokens: 120 })] as [string, SamplingParams]),
  ['Tom had a red car', params({ temperature: 0.8, topP: 0.95, seed: 11, maxNewTokens: 90 })],
  ['The sun was hot and the', params({ temperature: 1.0, topK: 40, seed: 12, maxNewTokens: 30 })],
  ['Once upon a time, in a small town, there lived a kind old man who', params({ temperature: 0.7, seed: 13 })],
  ['Sue', params({ maxNewTokens: 5 })],
  ['Ben and Mia went to the park to play. They saw a', params({ temperature: 0.9, topP: 0.8, seed: 14, maxNewTokens: 100 })],
  ['The cat', params({ repetitionPenalty: 1.3, maxNewTokens: 80 })],
  ['A little bird', params({ temperature: 1.2, seed: 15, maxNewTokens: 45, stop: ['.'] })],
  ['Lily wanted to', params({ temperature: 0.5, seed: 16, maxNewTokens: 70 })],
  ['One day', params({ temperature: 0, maxNewTokens: 20, stop: ['park'] })],
  ['Max the dog', params({ temperature: 0.8, seed: 17, maxNewTokens: 120 })],
  ['It was a sunny day and', params({ temperature: 0.8, seed: 18, topK: 10, maxNewTokens: 64 })],
  ['Anna found a box', params({ temperature: 0, maxNewTokens: 33 })],
  ['The big tree', params({ temperature: 0.6, seed: 19, maxNewTokens: 50 })],
];

describe.skipIf(!storiesModel.present).each(['fused', 'plain'] as const)(storiesModel.title('scheduler on the %s graph: results do not depend on company'), (graph) => {
  let engine: Engine;
  beforeAll(async () => {
    const dir = await resolveCheckpointModel(STORIES_CHECKPOINT, undefined, path.join(os.tmpdir(), 'inference-server-test-cache', 'llama2c'));
    engine = await Engine.load(dir, {
      name: 'stories260K',
      source: dir,
      threads: 1,
      graph: graph === 'plain' ? 'plain' : 'auto',
      limits: { maxBatchSize: 16, maxWaiting: 64, maxPrefillTokens: 64 },
    });
  });
  afterAll(async () => {
    await engine?.close();
  });

  it('runs the intended graph', () => {
    expect(engine.info.graph).toBe(graph);
  });

  it('each of 16 mixed requests gives the same text batched as alone; golden prompts match', async () => {
    const alone: Awaited<ReturnType<Engine["generate"]>>[] = [];
    for (const [prompt, p] of MIXED) alone.push(await engine.generate(prompt, p));
    const together = await Promise.all(MIXED.map(([prompt, p]) => engine.generate(prompt, p)));
    MIXED.forEach(([prompt], i) => {
      expect(together[i]!.text, prompt).toBe(alone[i]!.text);
      expect(together[i]!.completionTokens, prompt).toBe(alone[i]!.completionTokens);
      expect(together[i]!.finishReason, prompt).toBe(alone[i]!.finishReason);
    });
    GOLDEN.forEach(([prompt, reference], i) => expect((prompt + together[i]!.text).startsWith(reference)).toBe(true));
  });

  it('requests joining a batch already running get the same text as alone', async () => {
    const [prompt, p] = MIXED[3]!;
    const alone = await engine.generate(prompt, p);
    const long = engine.generate('Once upon a time', params({ maxNewTokens: 200, temperature: 0.9, seed: 1 }));
    await new Promise((r) => setTimeout(r, 20));
    const late = await engine.generate(prompt, p);
    await long;
    expect(late.text).toBe(alone.text);
  });

  it('a cancelled request frees its row within a step and the others are unaffected', async () => {
    const controller = new AbortController();
    const keep = MIXED[0]!;
    const alone = await engine.generate(keep[0], keep[1]);
    let pieces = 0;
    const cancelled = engine.generate('Once upon a time', params({ maxNewTokens: 400 }), {
      signal: controller.signal,
      onText: () => {
        if (++pieces === 5) controller.abort();
      },
    });
    const other = engine.generate(keep[0], keep[1]);
    const c = await cancelled;
    expect(c.finishReason).toBe('cancelled');
    // Aborted after the 5th piece: at most one more step ran for it.
    expect(c.completionTokens).toBeLessThanOrEqual(pieces + 1);
    expect((await other).text).toBe(alone.text);
    expect(engine.load.running).toBe(0);
  });
});

describe.skipIf(!storiesModel.present)(storiesModel.title('scheduler: long prompts are prefilled in chunks between decode steps'), () => {
  let engine: Engine;
  let whole: Engine;
  beforeAll(async () => {
    const dir = await resolveCheckpointModel(STORIES_CHECKPOINT, undefined, path.join(os.tmpdir(), 'inference-server-test-cache', 'llama2c'));
    const opts = (maxPrefillTokens: number) => ({
      name: 'stories260K',
      source: dir,
      threads: 1,
      limits: { maxBatchSize: 16, maxWaiting: 64, maxPrefillTokens },
    });
    engine = await Engine.load(dir, opts(4));
    whole = await Engine.load(dir, opts(4096));
  });
  afterAll(async () => {
    await engine?.close();
    await whole?.close();
  });

  it('golden prompts still match when prefilled 4 tokens at a time; batched = alone', async () => {
    const alone: Awaited<ReturnType<Engine["generate"]>>[] = [];
    for (const [prompt, p] of MIXED) alone.push(await engine.generate(prompt, p));
    const together = await Promise.all(MIXED.map(([prompt, p]) => engine.generate(prompt, p)));
    MIXED.forEach(([prompt], i) => expect(together[i]!.text, prompt).toBe(alone[i]!.text));
    GOLDEN.forEach(([prompt, reference], i) => expect((prompt + together[i]!.text).startsWith(reference)).toBe(true));
    // And the same text as an engine that prefills prompts whole.
    for (const [prompt, p] of MIXED.slice(0, 3)) expect((await whole.generate(prompt, p)).text).toBe((await engine.generate(prompt, p)).text);
  });

  it('a running request keeps getting tokens while a long prompt is prefilled', async () => {
    const events: string[] = [];
    let aTokens = 0;
    const a = engine.generate('Once upon a time', params({ maxNewTokens: 300, temperature: 0.9, seed: 4, stop: ['zzzz'] }), {
      onText: () => {
        aTokens++;
        events.push('a');
      },
    });
    while (aTokens < 3) await new Promise((r) => setTimeout(r, 1));
    const long = 'Lily and Ben went to the park to play with a ball. '.repeat(12);
    expect(engine.encode(long).length).toBeGreaterThan(100);
    let bFirst = false;
    const b = engine.generate(long, params({ maxNewTokens: 5 }), {
      onText: () => {
        if (!bFirst) events.push('B');
        bFirst = true;
      },
    });
    await Promise.all([a, b]);
    // While B's ~130 prompt tokens went in 4 at a time, A went on decoding: many of A's tokens precede B's first.
    const before = events.slice(events.indexOf('a', 3)).indexOf('B');
    expect(before).toBeGreaterThan(20);
  });
});
