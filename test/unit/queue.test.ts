import { describe, expect, it } from 'vitest';
import { SerialQueue } from '../../src/engine/queue.js';
import { AppError } from '../../src/errors.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('SerialQueue', () => {
  it('runs jobs one at a time in order', async () => {
    const q = new SerialQueue(10);
    const order: string[] = [];
    const job = (name: string) => async () => {
      order.push(`start ${name}`);
      await tick(5);
      order.push(`end ${name}`);
    };
    await Promise.all([q.run(job('a')), q.run(job('b')), q.run(job('c'))]);
    expect(order).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  });

  it('refuses beyond the waiting bound with service_unavailable', async () => {
    const q = new SerialQueue(1);
    const a = q.run(() => tick(20));
    const b = q.run(() => tick(1));
    await expect(q.run(() => tick(1))).rejects.toMatchObject({ code: 'service_unavailable' });
    await Promise.all([a, b]);
  });

  it('drops a waiting job whose signal aborts', async () => {
    const q = new SerialQueue(5);
    const a = q.run(() => tick(20));
    const controller = new AbortController();
    let ran = false;
    const b = q.run(async () => {
      ran = true;
    }, controller.signal);
    expect(q.depth).toBe(1);
    controller.abort();
    await expect(b).rejects.toBeInstanceOf(AppError);
    expect(q.depth).toBe(0);
    await a;
    expect(ran).toBe(false);
  });
});
