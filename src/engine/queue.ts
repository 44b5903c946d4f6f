import { serviceUnavailable, AppError } from '../errors.js';

/**
 * Runs jobs one at a time, with a bounded number waiting. Beyond the bound a
 * job is refused at once (503), never queued without limit. A waiting job
 * whose signal aborts leaves the queue.
 */
export class SerialQueue {
  private readonly waiting: Array<() => void> = [];
  private busy = false;

  constructor(private readonly maxWaiting: number) {}

  get depth(): number {
    return this.waiting.length;
  }

  get running(): number {
    return this.busy ? 1 : 0;
  }

  async run<T>(job: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.busy) {
      if (this.waiting.length >= this.maxWaiting) {
        throw serviceUnavailable('Server is at capacity; retry shortly', { max_waiting_requests: this.maxWaiting });
      }
      await new Promise<void>((resolve, reject) => {
        const start = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = () => {
          const i = this.waiting.indexOf(start);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(new AppError('invalid_request', 'Request cancelled by the client'));
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        this.waiting.push(start);
      });
    }
    this.busy = true;
    try {
      return await job();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.busy = false;
    }
  }
}
