import type { BatchBackend } from './batch-backend.js';
import { ModelRunError } from './errors.js';

/**
 * The backend as the scheduler drives it: every model run (prefill, prefill
 * chunk, decode step) is numbered from 1, and one that throws comes out as
 * ModelRunError, reported once to `onFailure` however many sequences were in
 * it. For fault drills only, the runs numbered in `failingRuns`
 * (FAULT_INJECT_FAILING_RUNS) throw instead of running; nothing else differs.
 */
export class GuardedBackend implements BatchBackend {
  private runs = 0;
  /** Present exactly when the inner backend extends rows (the scheduler's chunking policy reads that). */
  readonly extend?: (row: number, tokens: readonly number[]) => Promise<Float32Array>;

  constructor(
    private readonly inner: BatchBackend,
    private readonly opts: { failingRuns?: ReadonlySet<number>; onFailure?: (err: ModelRunError) => void } = {},
  ) {
    const extend = inner.extend?.bind(inner);
    if (extend) this.extend = (row, tokens) => this.run('prefill', () => extend(row, tokens));
  }

  get capacity(): number {
    return this.inner.capacity;
  }

  get size(): number {
    return this.inner.size;
  }

  append(prompts: readonly (readonly number[])[]): Promise<Float32Array[]> {
    return this.run('prefill', () => this.inner.append(prompts));
  }

  step(tokens: readonly (number | null)[]): Promise<(Float32Array | null)[]> {
    return this.run('decode', () => this.inner.step(tokens));
  }

  remove(rows: readonly number[]): number[] {
    return this.inner.remove(rows);
  }

  reset(): void {
    this.inner.reset();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private async run<T>(kind: 'prefill' | 'decode', call: () => Promise<T>): Promise<T> {
    const ordinal = ++this.runs;
    try {
      if (this.opts.failingRuns?.has(ordinal)) {
        throw new Error(`injected fault: model run ${ordinal} made to fail by FAULT_INJECT_FAILING_RUNS (testing only)`);
      }
      return await call();
    } catch (err) {
      const failure = new ModelRunError(kind, ordinal, { cause: err });
      this.opts.onFailure?.(failure);
      throw failure;
    }
  }
}
