import { describe, expect, it } from 'vitest';
import { EngineOverloadedError, GenerationCancelledError, InputTooLongError } from '../../src/engine/errors.js';
import type { PoolingModel } from '../../src/engine/encoder.js';
import { planRuns, takeCount } from '../../src/services/embeddings/batch-plan.js';
import { BatchingEmbedder, type BatcherLimits } from '../../src/services/embeddings/batcher.js';
import { publicError } from '../../src/services/errors.js';

/**
 * A model whose "vector" of a sequence is [length, first id, 3, 4] and whose
 * tokens are the text's characters (codes) between BOS 1 and EOS 2. Records
 * every run and can be held mid-run, so batching is observable.
 */
class FakeModel implements PoolingModel {
  readonly dimensions = 4;
  readonly runs: number[][][] = [];
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  closed = false;

  constructor(readonly maxTokens = 16) {}

  tokenize(text: string, truncateTo?: number): number[] {
    const content = [...text].map((c) => c.charCodeAt(0));
    const room = truncateTo === undefined ? content.length : truncateTo - 2;
    return [1, ...content.slice(0, room), 2];
  }

  /** The next runs wait until release(). */
  hold(): void {
    this.gate = new Promise((r) => (this.open = r));
  }

  release(): void {
    this.open?.();
    this.gate = undefined;
  }

  async embed(rows: readonly (readonly number[])[]): Promise<Float32Array[]> {
    this.runs.push(rows.map((r) => [...r]));
    await this.gate;
    return rows.map((r) => Float32Array.of(r.length, r[1] ?? 0, 3, 4));
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

const INFO = { model: 'fake', source: 'path' as const, dimensions: 4, maxTokens: 16 };

function embedder(limits: Partial<BatcherLimits> = {}, model = new FakeModel()) {
  const batches: number[] = [];
  const requests: Array<[number, number]> = [];
  const e = new BatchingEmbedder(model, INFO, { maxBatchSize: 8, maxWaitMs: 5, maxWaiting: 32, ...limits }, {
    embeddingBatch: (inputs) => batches.push(inputs),
    embeddingRequest: (inputs, tokens) => requests.push([inputs, tokens]),
  });
  return { e, model, batches, requests };
}

const tick = () => new Promise((r) => setTimeout(r, 1));

describe('takeCount', () => {
  it('takes from the head within the size and padded-token budgets, at least one', () => {
    expect(takeCount([3, 3, 3, 3], { maxBatchSize: 3, maxBatchTokens: 100 })).toBe(3);
    expect(takeCount([10, 10, 30, 10], { maxBatchSize: 8, maxBatchTokens: 60 })).toBe(2); // a third would pad 3 × 30 = 90
    expect(takeCount([500, 3], { maxBatchSize: 8, maxBatchTokens: 100 })).toBe(1);
    expect(takeCount([], { maxBatchSize: 8, maxBatchTokens: 100 })).toBe(0);
  });
});

describe('planRuns', () => {
  it('keeps similar lengths in one run', () => {
    expect(planRuns([32, 30, 31, 32], 16)).toEqual([[1, 2, 0, 3]]);
  });

  it('runs a long input apart instead of padding every short one to it', () => {
    const runs = planRuns([20, 500, 21, 19, 22], 16);
    expect(runs).toEqual([[3, 0, 2, 4], [1]]);
  });

  it('covers every input exactly once', () => {
    const lengths = [5, 90, 7, 300, 8, 88, 6, 301];
    const runs = planRuns(lengths, 16);
    expect(runs.flat().sort((a, b) => a - b)).toEqual(lengths.map((_, i) => i));
  });
});

describe('BatchingEmbedder', () => {
  it('answers in input order, counts tokens and normalises by default', async () => {
    const { e, requests } = embedder();
    const r = await e.embed(['abc', 'z']);
    expect(r.tokens).toEqual([5, 3]);
    const [a, z] = r.vectors;
    expect(Math.hypot(...a!)).toBeCloseTo(1, 6);
    expect(a![1]! / a![2]!).toBeCloseTo('a'.charCodeAt(0) / 3, 5);
    expect(z![1]! / z![2]!).toBeCloseTo('z'.charCodeAt(0) / 3, 5);
    expect(requests).toEqual([[2, 8]]);
    const raw = await e.embed(['abc'], { normalize: false });
    expect(Array.from(raw.vectors[0]!)).toEqual([5, 97, 3, 4]);
  });

  it('runs a lone caller at once, without waiting for company', async () => {
    const { e, model } = embedder({ maxWaitMs: 60_000 });
    await e.embed(['a']);
    await e.embed(['b']);
    expect(model.runs).toHaveLength(2);
  });

  it("batches concurrent callers' inputs: what comes during a run, and (once clients are concurrent) what comes within the wait", async () => {
    const { e, model, batches } = embedder({ maxWaitMs: 20 });
    model.hold();
    const first = e.embed(['a']); // the encoder is idle and nobody has been concurrent: runs at once
    await tick();
    const during = ['bb', 'cc', 'd'].map((t) => e.embed([t]));
    await tick();
    model.release();
    expect((await Promise.all([first, ...during])).map((r) => r.tokens[0])).toEqual([3, 4, 4, 3]);
    expect(batches).toEqual([1, 3]);
    // The last batch served 3 callers: once the encoder is idle, the next batch waits up to 20 ms for company.
    await tick();
    const all = await Promise.all(['e', 'f'].map((t) => e.embed([t])).concat([tick().then(() => e.embed(['g']))]));
    expect(all).toHaveLength(3);
    expect(batches).toEqual([1, 3, 3]);
    expect(model.runs).toHaveLength(3);
  });

  it('starts at once when a batch is full, and queues what comes during a run for the next batch', async () => {
    const { e, model, batches } = embedder({ maxBatchSize: 2, maxWaitMs: 10_000 });
    await Promise.all([e.embed(['x']), e.embed(['y'])]); // two callers: from now on batches may wait
    batches.length = 0;
    model.runs.length = 0;
    model.hold();
    const first = e.embed(['a', 'b']); // full: runs now, not after 10 s
    await tick();
    expect(model.runs).toHaveLength(1);
    const later = [e.embed(['c']), e.embed(['d'])];
    await tick();
    expect(model.runs).toHaveLength(1);
    model.release();
    await Promise.all([first, ...later]);
    expect(batches).toEqual([2, 2]);
  });

  it('refuses a request beyond the waiting limit at once (503), but always takes one into an empty queue', async () => {
    const { e, model } = embedder({ maxWaiting: 4, maxBatchSize: 2, maxWaitMs: 50 });
    model.hold();
    const big = e.embed(['a', 'b', 'c', 'd', 'e', 'f']); // more than the limit, but the queue is empty
    await tick(); // a and b run (held); c..f wait
    const refused = e.embed(['g']);
    await expect(refused).rejects.toBeInstanceOf(EngineOverloadedError);
    await expect(refused.catch((err: unknown) => publicError(err))).resolves.toMatchObject({
      code: 'service_unavailable',
      details: { max_waiting_inputs: 4 },
    });
    model.release();
    expect((await big).vectors).toHaveLength(6);
    expect(model.runs).toHaveLength(3);
  });

  it('refuses a too-long input with its index and counts, unless asked to truncate', async () => {
    const { e } = embedder();
    const long = 'x'.repeat(20); // 22 tokens, the model reads 16
    const err = await e.embed(['ok', long]).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(InputTooLongError);
    expect(publicError(err)).toMatchObject({
      code: 'invalid_request',
      details: { field: 'input[1]', input_tokens: 22, max_tokens: 16 },
    });
    const cut = await e.embed(['ok', long], { truncate: true });
    expect(cut.tokens).toEqual([4, 16]);
  });

  it('drops the waiting inputs of a caller that goes away', async () => {
    const { e, model } = embedder({ maxWaitMs: 20 });
    model.hold();
    const running = e.embed(['r']);
    await tick();
    const controller = new AbortController();
    const gone = e.embed(['a', 'b'], { signal: controller.signal });
    const stays = e.embed(['c']);
    controller.abort();
    await expect(gone).rejects.toBeInstanceOf(GenerationCancelledError);
    model.release();
    await Promise.all([running, stays]);
    expect(model.runs.flat()).toHaveLength(2); // r, then c: a and b never ran
    await expect(e.embed(['x'], { signal: controller.signal })).rejects.toBeInstanceOf(GenerationCancelledError);
  });

  it('fails only the callers of a run that throws, and keeps serving', async () => {
    const model = new FakeModel();
    const { e } = embedder({}, model);
    const original = model.embed.bind(model);
    model.embed = async () => {
      throw new Error('boom');
    };
    await expect(e.embed(['a'])).rejects.toThrow('boom');
    model.embed = original;
    expect((await e.embed(['a'])).vectors).toHaveLength(1);
  });

  it('close() refuses what waits and releases the model', async () => {
    const { e, model } = embedder({ maxWaitMs: 1000 });
    model.hold();
    const running = e.embed(['a']);
    await tick();
    const waiting = e.embed(['b']);
    const closing = e.close();
    await expect(waiting).rejects.toBeInstanceOf(GenerationCancelledError);
    expect(model.closed).toBe(false); // the batch in progress finishes first
    model.release();
    await closing;
    await running;
    expect(model.closed).toBe(true);
  });
});
