import type { Log } from '../observability/log.js';
import { StorageUnavailableError } from '../storage/errors.js';

const FIRST_DELAY_MS = 100;
const MAX_DELAY_MS = 5000;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });

/**
 * Long-running work (batch runs) waiting out a storage outage: a storage
 * call that fails with StorageUnavailableError (the database restarting or
 * unreachable, the data directory read-only or full) is tried again, with a
 * delay doubling from 100 ms to 5 s, until it succeeds or `signal` aborts
 * (cancel, shutdown); then the last error is thrown. Other errors are
 * thrown at once. The work pauses rather than marking records failed for a
 * fault that is not theirs. One warning when a pause begins and one line
 * when storage answers again, however many calls were waiting.
 */
export class StoragePause {
  private pausedSince: number | null = null;

  constructor(
    private readonly log: Log,
    /** What pauses, for the log lines ("batch evaluations"). */
    private readonly what: string,
  ) {}

  /** Whether some call is waiting for storage now. */
  get paused(): boolean {
    return this.pausedSince !== null;
  }

  async run<T>(call: () => Promise<T>, signal: AbortSignal): Promise<T> {
    let delay = FIRST_DELAY_MS;
    for (;;) {
      try {
        const result = await call();
        if (this.pausedSince !== null) {
          this.log.info({ paused_ms: Date.now() - this.pausedSince }, `storage available again; ${this.what} resumed`);
          this.pausedSince = null;
        }
        return result;
      } catch (err) {
        if (!(err instanceof StorageUnavailableError) || signal.aborted) throw err;
        if (this.pausedSince === null) {
          this.pausedSince = Date.now();
          this.log.warn({ reason: err.reason, err: err.cause ?? err }, `storage unavailable; ${this.what} paused until it answers again`);
        }
        await sleep(delay, signal);
        if (signal.aborted) throw err;
        delay = Math.min(delay * 2, MAX_DELAY_MS);
      }
    }
  }
}
