/**
 * Errors the engine throws on purpose. Like the storage layer's, they are
 * plain Error subclasses that know nothing of HTTP or the contract's codes:
 * the service layer maps them to AppErrors in one place (services/errors.ts).
 */
export class EngineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The prompt leaves no room in the context window for even one new token. */
export class ContextOverflowError extends EngineError {
  constructor(
    readonly promptTokens: number,
    readonly contextWindow: number,
  ) {
    super(`prompt is ${promptTokens} tokens; the context window is ${contextWindow}`);
  }
}

/** The caller's signal aborted before the generation finished. */
export class GenerationCancelledError extends EngineError {
  constructor(
    /** What the model had read and written by then (0 when it never started). */
    readonly usage: { promptTokens: number; completionTokens: number } = { promptTokens: 0, completionTokens: 0 },
  ) {
    super('generation cancelled');
  }
}

/** The waiting list is full: the request was refused at once rather than queued without bound. */
export class EngineOverloadedError extends EngineError {
  constructor(
    readonly maxWaiting: number,
    /** What the list counts: generations wait as requests, embeddings as inputs. */
    readonly unit: 'requests' | 'inputs' = 'requests',
  ) {
    super(`the waiting list is full (${maxWaiting} ${unit})`);
  }
}

/** No engine to run on: the model is still loading, or its load failed. */
export class ModelNotLoadedError extends EngineError {
  constructor(
    readonly state: 'loading' | 'failed',
    readonly reason?: string,
    /** Which model: the served one, or the embedding model. */
    readonly subject: 'model' | 'embedding model' = 'model',
  ) {
    super(state === 'loading' ? `${subject} is loading` : `${subject} failed to load${reason ? `: ${reason}` : ''}`);
  }
}

/** An input has more tokens than the embedding model reads, and the caller did not ask for truncation. */
export class InputTooLongError extends EngineError {
  constructor(
    /** Its position in the caller's list of inputs; null when the caller gave one input, not a list. */
    readonly index: number | null,
    readonly inputTokens: number,
    readonly maxTokens: number,
  ) {
    super(`${index === null ? 'input' : `input[${index}]`} is ${inputTokens} tokens; the embedding model reads at most ${maxTokens}`);
  }
}

/**
 * A structured-output constraint the decoder cannot enforce exactly (a JSON
 * schema keyword outside the supported set, a regular expression beyond the
 * simple kind, a schema the grammar compiler refuses): refused whole rather
 * than half-enforced.
 */
export class UnsupportedConstraintError extends EngineError {
  constructor(
    message: string,
    /** The keyword at fault, when one is (e.g. "format", "pattern"). */
    readonly keyword: string | null,
    /** Where in the schema ("#/properties/a"), or which constraint. */
    readonly path: string,
  ) {
    super(message);
  }
}

/**
 * A model run (a prefill, a prefill chunk or a decode step) threw. The
 * sequences in that run's batch fail with it (their caches are in an
 * unknown state); the scheduler resets the batch and serves what comes next.
 */
export class ModelRunError extends EngineError {
  constructor(
    /** Which kind of run failed. */
    readonly run: 'prefill' | 'decode',
    /** The run's number since the engine started (1 for the first). */
    readonly ordinal: number,
    options?: { cause?: unknown },
  ) {
    super(`model run ${ordinal} (${run}) failed`);
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}
