/**
 * A running batch of sequences on the model: rows 0..size-1, each with its
 * own KV cache and length. The scheduler decides what to run; a backend
 * decides how the caches are laid out.
 */
export interface BatchBackend {
  /** Most rows the batch holds. */
  readonly capacity: number;
  /** Rows now in the batch. */
  readonly size: number;
  /** Prefills prompts as new rows size..size+k-1; returns each new row's next-token logits. */
  append(prompts: readonly (readonly number[])[]): Promise<Float32Array[]>;
  /**
   * One decode step: feeds one token per row (in row order); returns each
   * row's next-token logits. A null token skips its row (a row still being
   * prefilled in chunks); its logits come back null.
   */
  step(tokens: readonly (number | null)[]): Promise<(Float32Array | null)[]>;
  /**
   * Appends known tokens to an existing row (the next chunk of a long
   * prompt) and returns its new next-token logits. Backends that cannot
   * leave it undefined, and long prompts are then prefilled whole.
   */
  extend?(row: number, tokens: readonly number[]): Promise<Float32Array>;
  /**
   * Drops rows. Returns, for each row index after the call, the index that
   * row had before, so the caller can keep its own per-row state aligned.
   */
  remove(rows: readonly number[]): number[];
  /** Drops every row (after a failed run). */
  reset(): void;
  close(): Promise<void>;
}
