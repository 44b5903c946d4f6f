import { beforeAll, describe, expect, it } from 'vitest';
import { EngineOverloadedError, GenerationCancelledError } from '../../src/engine/errors.js';
import { Scheduler, type SchedulerLimits, type SequenceOutcome } from '../../src/engine/scheduler.js';
import type { Tokenizer } from '../../src/engine/tokenizer.js';
import type { GenerateOptions, SamplingParams } from '../../src/engine/types.js';
import { FakeBackend, syntheticTokenizer } from '../helpers/fake-backend.js';

// The scheduler driving a fake backend: no model files. What it admits and
// when is checked call by call against the policy (test/unit/admission.test.ts);
// the golden outputs on the real model are in test/integration/engine-batching.test.ts.

const EOS = 2;

const params = (p: Partial<SamplingParams> = {}): SamplingParams => ({
  maxNewTokens: 5,
  temperature: 0,
  topP: 1,
  topK: 0,
  repetitionPenalty: 1,
  seed: 0,
  stop: [],
  ...p,
});

let tokenizer: Tokenizer;
/** Tokens of whole words in the synthetic vocabulary: prompts and fake continuations read as text. */
let words: number[];

beforeAll(async () => {
  tokenizer = await syntheticTokenizer();
  words = tokenizer.encode('the big cat saw a red ball and the dog ran to the park').slice(1);
});

/** A prompt of `n` tokens (BOS first); `k` varies its content. */
const prompt = (n: number, k = 0): number[] => [1, ...Array.from({ length: n - 1 }, (_, i) => words[(i + k) % words.length]!)];
/** The fake model: the next word is a function of the row's own tokens; EOS once a row reaches `eosAt` tokens. */
const fakeModel =
  (eosAt = Infinity) =>
  (tokens: readonly number[]): number =>
    tokens.length >= eosAt ? EOS : words[tokens.reduce((a, b) => a + b, 0) % words.length]!;

function setup(opts: { limits?: Partial<SchedulerLimits>; capacity?: number; chunking?: boolean; eosAt?: number } = {}) {
  const backend = new FakeBackend(opts.capacity ?? 16, fakeModel(opts.eosAt), { chunking: opts.chunking ?? true });
  const limits: SchedulerLimits = { maxBatchSize: 8, maxWaiting: 64, maxPrefillTokens: 6, ...opts.limits };
  const scheduler = new Scheduler(backend, tokenizer, new Set([EOS]), limits);
  const submit = (ids: number[], p: Partial<SamplingParams> = {}, o: GenerateOptions = {}): Promise<SequenceOutcome> => scheduler.submit(ids, params(p), o);
  return { backend, scheduler, submit };
}

/** The backend calls with prompts and chunks shown by length, to compare with the policy's plans. */
function shape(backend: FakeBackend): string[] {
  return backend.calls.map((c) => {
    switch (c.op) {
      case 'append':
        return `append ${c.prompts.map((p) => p.length).join(',')}`;
      case 'extend':
        return `extend row ${c.row} +${c.tokens.length}`;
      case 'step':
        return `step ${c.tokens.map((t) => (t === null ? '-' : 't')).join('')}`;
      case 'remove':
        return `remove ${c.rows.join(',')}`;
      case 'reset':
        return 'reset';
    }
  });
}

describe('Scheduler on a fake backend (no model)', () => {
  it('admits, chunks, decodes and removes rows as the policy plans', async () => {
    const { backend, submit } = setup({ limits: { maxBatchSize: 3, maxPrefillTokens: 6 } });
    const a = submit(prompt(4), { maxNewTokens: 3 });
    // Arrive while A is being prefilled: they wait for the next step.
    const b = submit(prompt(5, 1), { maxNewTokens: 2 });
    const c = submit(prompt(14, 2), { maxNewTokens: 2 });
    const d = submit(prompt(2, 3), { maxNewTokens: 2 });
    const out = await Promise.all([a, b, c, d]);
    expect(shape(backend)).toEqual([
      'append 4', // A alone: nothing else was waiting yet
      'step t',
      'append 5', // B fits the budget; C is long and must start alone
      'step tt', // A's 3rd token, B's 2nd: both finish
      'remove 0,1',
      'append 6', // C's first chunk, alone with the whole budget
      // No decode: the only row is still being prefilled.
      'extend row 0 +6', // its chunk takes the whole budget: D waits
      'extend row 0 +2', // C's last chunk (its first token) leaves 4 of the budget: D (2) joins
      'append 2',
      'step tt',
      'remove 0,1',
    ]);
    expect(backend.callsOf('append').map((x) => x.prompts)).toEqual([[prompt(4)], [prompt(5, 1)], [prompt(14, 2).slice(0, 6)], [prompt(2, 3)]]);
    expect(backend.callsOf('extend').map((x) => x.tokens)).toEqual([prompt(14, 2).slice(6, 12), prompt(14, 2).slice(12)]);
    expect(out.map((o) => [o.completionTokens, o.finishReason])).toEqual([
      [3, 'length'],
      [2, 'length'],
      [2, 'length'],
      [2, 'length'],
    ]);
    expect(backend.size).toBe(0);
  });

  it('gives each request the same text batched as alone, with rows moving as others leave', async () => {
    const requests: Array<[number[], Partial<SamplingParams>]> = [
      [prompt(3), { maxNewTokens: 9 }],
      [prompt(17, 1), { maxNewTokens: 4 }],
      [prompt(5, 2), { maxNewTokens: 12 }],
      [prompt(2, 3), { maxNewTokens: 1 }],
      [prompt(9, 4), { maxNewTokens: 7 }],
      [prompt(6, 5), { maxNewTokens: 50 }], // stops at EOS (40 tokens) first
      [prompt(4, 6), { maxNewTokens: 6, temperature: 0.8, seed: 3 }],
      [prompt(30, 7), { maxNewTokens: 3 }],
      [prompt(1, 8), { maxNewTokens: 8 }],
    ];
    for (const chunking of [true, false]) {
      const alone: SequenceOutcome[] = [];
      for (const [ids, p] of requests) alone.push(await setup({ chunking, eosAt: 40 }).submit(ids, p));
      const { backend, submit } = setup({ chunking, eosAt: 40, limits: { maxBatchSize: 4 } });
      const together = await Promise.all(requests.map(([ids, p]) => submit(ids, p)));
      requests.forEach((_, i) => {
        expect(together[i]!.text, `request ${i}`).toBe(alone[i]!.text);
        expect(together[i]!.text.length, `request ${i}`).toBeGreaterThan(0);
        expect(together[i]!.completionTokens, `request ${i}`).toBe(alone[i]!.completionTokens);
        expect(together[i]!.finishReason, `request ${i}`).toBe(alone[i]!.finishReason);
      });
      expect(together[5]!.finishReason).toBe('stop');
      expect(backend.maxSize).toBe(4);
      expect(backend.size).toBe(0);
      // Every prompt went in once, in arrival order: whole, or as fixed-size chunks.
      const prefilled = backend.calls.flatMap((c) => (c.op === 'append' ? c.prompts : c.op === 'extend' ? [c.tokens] : []));
      expect(prefilled.flat()).toEqual(requests.flatMap(([ids]) => ids));
      if (chunking) expect(prefilled.every((p) => p.length <= 6)).toBe(true);
      else expect(backend.callsOf('extend')).toEqual([]);
    }
  });

  it('prefills a long prompt whole and alone when the backend cannot extend a row', async () => {
    const { backend, submit } = setup({ chunking: false, limits: { maxPrefillTokens: 6 } });
    const all = [submit(prompt(3)), submit(prompt(10, 1)), submit(prompt(3, 2)), submit(prompt(2, 3))];
    await Promise.all(all);
    expect(backend.callsOf('append').map((x) => x.prompts.map((p) => p.length))).toEqual([[3], [10], [3, 2]]);
    expect(backend.callsOf('step').every((x) => !x.tokens.includes(null))).toBe(true);
  });

  it('frees a cancelled row at the end of its step; a request cancelled while waiting never reaches the backend', async () => {
    const { backend, scheduler, submit } = setup({ limits: { maxBatchSize: 1 } });
    const stopA = new AbortController();
    let pieces = 0;
    const a = submit(prompt(4), { maxNewTokens: 400 }, {
      signal: stopA.signal,
      onText: () => {
        if (++pieces === 3) stopA.abort();
      },
    });
    const stopB = new AbortController();
    const b = submit(prompt(5, 1), {}, { signal: stopB.signal });
    const c = submit(prompt(3, 2), { maxNewTokens: 2 });
    expect(scheduler.depth).toBe(2);
    stopB.abort();
    await expect(b).rejects.toBeInstanceOf(GenerationCancelledError);
    const outA = await a;
    expect(outA.finishReason).toBe('cancelled');
    expect(outA.completionTokens).toBe(pieces);
    expect((await c).finishReason).toBe('length');
    // A's row went in the same step as its last token; B's prompt was never prefilled.
    const shown = shape(backend);
    expect(shown.slice(shown.indexOf('remove 0') - 1, shown.indexOf('remove 0') + 2)).toEqual(['step t', 'remove 0', 'append 3']);
    expect(backend.callsOf('append').map((x) => x.prompts)).toEqual([[prompt(4)], [prompt(3, 2)]]);
    expect(scheduler.running).toBe(0);
    // A signal already aborted is refused before queueing.
    await expect(submit(prompt(2), {}, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(GenerationCancelledError);
  });

  it('refuses at once with EngineOverloadedError when the waiting list is full, and serves the rest', async () => {
    const { scheduler, submit } = setup({ limits: { maxBatchSize: 1, maxWaiting: 1 } });
    const a = submit(prompt(3), { maxNewTokens: 3 }); // admitted at once
    const b = submit(prompt(3, 1), { maxNewTokens: 3 }); // waits
    expect(scheduler.depth).toBe(1);
    const refused = submit(prompt(3, 2));
    await expect(refused).rejects.toBeInstanceOf(EngineOverloadedError);
    await expect(refused).rejects.toMatchObject({ maxWaiting: 1 });
    expect((await a).finishReason).toBe('length');
    expect((await b).finishReason).toBe('length');
    expect(scheduler.depth).toBe(0);
  });

  it('uses no more rows than the backend has, even when the configured batch is larger', async () => {
    const { backend, submit } = setup({ capacity: 2, limits: { maxBatchSize: 8 } });
    await Promise.all(Array.from({ length: 6 }, (_, k) => submit(prompt(2, k), { maxNewTokens: 4 })));
    expect(backend.maxSize).toBe(2);
  });
});

describe('Scheduler: logprobs, min_tokens, ignore_eos, per-token callback (fake backend)', () => {
  it('reports each token with its logprob and sorted alternatives, the chosen one the best at temperature 0', async () => {
    const { submit } = setup();
    const steps: Array<{ id: number; text: string }> = [];
    const out = await submit(prompt(4), { maxNewTokens: 4, logprobs: 3 }, { onToken: (s) => steps.push(s) });
    expect(out.logprobs).toHaveLength(4);
    for (const lp of out.logprobs!) {
      expect(lp.top).toHaveLength(3);
      expect(lp.top[0]!.id).toBe(lp.id);
      expect(lp.top[0]!.logprob).toBe(lp.logprob);
      expect(lp.top[0]!.logprob).toBeGreaterThanOrEqual(lp.top[1]!.logprob);
      expect(Number.isFinite(lp.logprob)).toBe(true);
    }
    expect(steps.map((s) => s.id)).toEqual(out.logprobs!.map((l) => l.id));
    expect(steps.map((s) => s.text).join('')).toBe(out.text);
    // Not asked: none kept.
    expect((await submit(prompt(4), { maxNewTokens: 2 })).logprobs).toBeNull();
  });

  it('min_tokens holds the end-of-sequence token back; ignore_eos generates through it', async () => {
    const { submit } = setup({ eosAt: 6 });
    const plain = await submit(prompt(4), { maxNewTokens: 8 });
    expect(plain.finishReason).toBe('stop');
    expect(plain.completionTokens).toBe(3);
    const held = await submit(prompt(4), { maxNewTokens: 8, minTokens: 5 });
    expect(held.completionTokens).toBeGreaterThanOrEqual(5);
    const through = await submit(prompt(4), { maxNewTokens: 8, ignoreEos: true });
    expect(through.finishReason).toBe('length');
    expect(through.completionTokens).toBe(8);
  });
});
