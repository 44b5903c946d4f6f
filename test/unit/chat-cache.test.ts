import { describe, expect, it } from 'vitest';
import { chatCacheKey, isDeterministic } from '../../src/services/chat-cache.js';
import { ChatRequestSchema } from '../../src/services/chat-schema.js';

const req = (over: Record<string, unknown> = {}) => ChatRequestSchema.parse({ prompt: 'Once upon a time', ...over });

describe('response cache keys', () => {
  it('caches greedy and seeded requests only', () => {
    expect(isDeterministic(req({ temperature: 0 }))).toBe(true);
    expect(isDeterministic(req({ temperature: 0.8, seed: 3 }))).toBe(true);
    expect(isDeterministic(req({ temperature: 0.8 }))).toBe(false);
    expect(isDeterministic(req())).toBe(false); // default temperature 0.2, no seed
    // Refine mode samples its critique at critique_temperature.
    expect(isDeterministic(req({ temperature: 0, mode: 'refine' }))).toBe(false);
    expect(isDeterministic(req({ temperature: 0, mode: 'refine', critique_temperature: 0 }))).toBe(true);
    expect(isDeterministic(req({ mode: 'refine', seed: 1 }))).toBe(true);
  });

  it('covers the model and every parameter that changes the output, and nothing else', () => {
    const base = req({ temperature: 0 });
    const k = chatCacheKey('m', base);
    expect(k).toMatch(/^[0-9a-f]{64}$/);
    expect(chatCacheKey('m', req({ temperature: 0 }))).toBe(k);
    expect(chatCacheKey('m', { ...base, stream: true })).toBe(k);
    expect(chatCacheKey('other-model', base)).not.toBe(k);
    const changes: Record<string, unknown> = {
      prompt: 'Once upon a time.',
      max_new_tokens: 161,
      temperature: 0.5,
      top_p: 0.9,
      top_k: 5,
      repetition_penalty: 1.1,
      seed: 1,
      stop: ['.'],
      mode: 'refine',
      refine_steps: 2,
      critique_temperature: 0.3,
    };
    const keys = new Set([k]);
    for (const [field, value] of Object.entries(changes)) {
      const other = chatCacheKey('m', { ...base, [field]: value });
      expect(keys.has(other), field).toBe(false);
      keys.add(other);
    }
  });

  it('is derived from the request: a field it does not know yet changes the key too; key order does not', () => {
    const base = req({ temperature: 0 });
    const k = chatCacheKey('m', base);
    expect(chatCacheKey('m', { ...base, min_p: 0.1 } as typeof base)).not.toBe(k);
    const reversed = Object.fromEntries(Object.entries(base).reverse()) as typeof base;
    expect(chatCacheKey('m', reversed)).toBe(k);
  });
});
