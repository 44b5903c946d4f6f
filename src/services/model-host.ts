import type { Engine } from '../engine/engine.js';
import { ModelNotLoadedError } from '../engine/errors.js';

export type ModelState = 'loading' | 'ready' | 'failed';

/**
 * Holds the engine through its life: loading, then ready or failed. The
 * server listens while the model loads; calls that need it get 503 until then.
 */
export class ModelHost {
  private engineValue: Engine | undefined;
  private stateValue: ModelState = 'loading';
  private reasonValue: string | undefined;
  loadSeconds: number | undefined;
  /** When the model became ready (epoch ms). */
  readyAt: number | undefined;

  constructor(readonly modelName: string) {}

  get state(): ModelState {
    return this.stateValue;
  }
  get reason(): string | undefined {
    return this.reasonValue;
  }
  get engine(): Engine | undefined {
    return this.engineValue;
  }

  ready(engine: Engine, loadSeconds: number): void {
    this.engineValue = engine;
    this.loadSeconds = loadSeconds;
    this.readyAt = Date.now();
    this.stateValue = 'ready';
  }

  failed(reason: string): void {
    this.stateValue = 'failed';
    this.reasonValue = reason;
  }

  /** The engine, or ModelNotLoadedError while loading or after a failed load. */
  require(): Engine {
    if (this.engineValue) return this.engineValue;
    throw new ModelNotLoadedError(this.stateValue === 'failed' ? 'failed' : 'loading', this.reasonValue);
  }
}
