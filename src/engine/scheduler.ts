import { decodes, nextChunk, planAdmission, type AdmissionLimits } from './admission.js';
import type { BatchBackend } from './batch-backend.js';
import { EngineOverloadedError, GenerationCancelledError } from './errors.js';
import { SeededRng } from './rng.js';
import { processLogits, tokenLogprob } from './logits-processors.js';
import { SamplingScratch, drawToken } from './sampling.js';
import { IncrementalDecoder, StopMatcher, type Tokenizer } from './tokenizer.js';
import type { FinishReason, GenerateOptions, SamplingParams, TokenLogprob } from './types.js';

export interface SchedulerLimits {
  /** Most sequences decoded together. */
  maxBatchSize: number;
  /** Most requests waiting to join the batch; beyond it, 503 at once. */
  maxWaiting: number;
  /**
   * Prompt tokens prefilled per step. A longer prompt is prefilled in chunks
   * of this size, one per step, between decode steps (where the backend can
   * extend a row; otherwise it is prefilled whole, alone in its step).
   */
  maxPrefillTokens: number;
}

export interface SequenceOutcome {
  text: string;
  completionTokens: number;
  finishReason: FinishReason;
  /** Per generated token, when the parameters asked for them. */
  logprobs: TokenLogprob[] | null;
  /** performance.now() timestamps. */
  admittedAt: number;
  firstTokenAt: number | null;
  lastTokenAt: number | null;
}

/** Computes the next-token masks of the constrained rows among these (the grammar matcher answers asynchronously). */
async function prepareMasks(seqs: readonly Sequence[]): Promise<void> {
  let pending: Array<Promise<void>> | null = null;
  for (const s of seqs) {
    const c = s.opts.constraint;
    if (c && !s.finished) (pending ??= []).push(c.prepare());
  }
  // Unconstrained batches never wait on a promise.
  if (pending) await Promise.all(pending);
}

/** One request's life in the scheduler: its sampler, its text, its consumer. */
class Sequence {
  readonly ids: number[];
  readonly rng: SeededRng;
  readonly seen: Set<number>;
  /** How often each token was generated (the frequency and presence penalties count these). */
  readonly generated = new Map<number, number>();
  readonly logprobs: TokenLogprob[] | null;
  readonly decoder: IncrementalDecoder;
  readonly stopper: StopMatcher;
  text = '';
  completionTokens = 0;
  admittedAt = 0;
  firstTokenAt: number | null = null;
  lastTokenAt: number | null = null;
  finished: FinishReason | null = null;
  /** Prompt tokens not yet prefilled (a long prompt is prefilled in chunks, one per step). */
  pending: number[] = [];

  constructor(
    readonly promptIds: readonly number[],
    readonly params: SamplingParams,
    readonly opts: GenerateOptions,
    tokenizer: Tokenizer,
    readonly resolve: (o: SequenceOutcome) => void,
    readonly reject: (e: unknown) => void,
  ) {
    this.ids = [...promptIds];
    this.rng = new SeededRng(params.seed);
    this.seen = new Set(promptIds);
    this.logprobs = params.logprobs === undefined ? null : [];
    this.decoder = new IncrementalDecoder(tokenizer, this.ids);
    this.stopper = new StopMatcher(params.stop);
  }

  get cancelled(): boolean {
    return this.opts.signal?.aborted ?? false;
  }

  /** Hands released text on; returns it (for the token callback). */
  emit(piece: string): string {
    if (piece.length === 0) return piece;
    this.text += piece;
    this.opts.onText?.(piece);
    return piece;
  }

  finish(reason: FinishReason): void {
    if (this.finished) return;
    this.finished = reason;
    if (reason !== 'cancelled' && !this.stopper.stopped) {
      this.emit(this.stopper.push(this.decoder.flush()));
      this.emit(this.stopper.flush());
    }
    this.resolve({
      text: this.text,
      completionTokens: this.completionTokens,
      finishReason: reason,
      logprobs: this.logprobs,
      admittedAt: this.admittedAt,
      firstTokenAt: this.firstTokenAt,
      lastTokenAt: this.lastTokenAt,
    });
  }
}

/**
 * Continuous batching over one running batch. Each step it admits waiting
 * requests (prefilled together, within a token budget), runs one decode step
 * for every row, samples each row with its own parameters and RNG, hands the
 * new text to the row's consumer, and drops finished or cancelled rows.
 * A request's tokens depend only on its own prompt, parameters and seed.
 * What each step does is decided by the pure policy in admission.ts; this
 * class applies it to its sequences and makes the backend calls.
 */
export class Scheduler {
  private readonly waiting: Sequence[] = [];
  /** Parallel to the backend's rows. */
  private rows: Sequence[] = [];
  private loopRunning = false;
  private readonly policy: AdmissionLimits;
  private readonly scratch = new SamplingScratch();

  constructor(
    private readonly backend: BatchBackend,
    private readonly tokenizer: Tokenizer,
    private readonly eos: ReadonlySet<number>,
    private readonly limits: SchedulerLimits,
  ) {
    this.policy = {
      capacity: Math.min(limits.maxBatchSize, backend.capacity),
      maxPrefillTokens: limits.maxPrefillTokens,
      chunking: backend.extend !== undefined,
    };
  }

  get depth(): number {
    return this.waiting.length;
  }

  get running(): number {
    return this.rows.length;
  }

  /** Queues a prompt; resolves when it finishes. Refuses at once (503) when the waiting list is full. */
  submit(promptIds: readonly number[], params: SamplingParams, opts: GenerateOptions): Promise<SequenceOutcome> {
    if (opts.signal?.aborted) return Promise.reject(new GenerationCancelledError());
    if (this.waiting.length >= this.limits.maxWaiting) return Promise.reject(new EngineOverloadedError(this.limits.maxWaiting));
    return new Promise((resolve, reject) => {
      this.waiting.push(new Sequence(promptIds, params, opts, this.tokenizer, resolve, reject));
      if (!this.loopRunning) void this.loop();
    });
  }

  private async loop(): Promise<void> {
    this.loopRunning = true;
    try {
      while (this.waiting.length > 0 || this.rows.length > 0) {
        try {
          const chunkRow = this.rows.findIndex((s) => s.pending.length > 0);
          const chunked = chunkRow >= 0 ? await this.prefillChunk(chunkRow) : 0;
          if (this.waiting.length > 0) await this.admit(chunked);
          this.dropFinished();
          if (decodes(this.rows.map((s) => s.pending.length > 0))) {
            const logits = await this.backend.step(this.rows.map((s) => (s.pending.length > 0 ? null : s.ids[s.ids.length - 1]!)));
            // The per-step path: no allocation or await unless a row is constrained.
            if (this.rows.some((s) => s.opts.constraint)) await prepareMasks(this.rows.filter((_, r) => logits[r]));
            this.rows.forEach((s, r) => {
              const l = logits[r];
              if (l) this.accept(s, l);
            });
            this.dropFinished();
          }
        } catch (err) {
          // A failed run leaves the caches unknown: fail the rows in it, keep serving the rest.
          for (const s of this.rows) s.reject(err);
          this.rows = [];
          this.backend.reset();
        }
        // Let I/O (new requests, disconnects, streamed writes) run between steps.
        await new Promise<void>((r) => setImmediate(r));
      }
    } finally {
      this.loopRunning = false;
    }
  }

  /**
   * Prefills the next chunk of the one row being prefilled in chunks; returns
   * the prompt tokens it used of this step's budget.
   */
  private async prefillChunk(row: number): Promise<number> {
    const s = this.rows[row]!;
    const chunk = s.pending.splice(0, nextChunk(s.pending.length, this.policy));
    const logits = await this.backend.extend!(row, chunk);
    if (s.pending.length === 0) {
      await prepareMasks([s]);
      this.accept(s, logits);
    }
    return chunk.length;
  }

  /** Moves the waiting requests the policy admits into the batch; `chunked`: what this step's chunk took of its prefill budget. */
  private async admit(chunked: number): Promise<void> {
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const s = this.waiting[i]!;
      if (s.cancelled) {
        this.waiting.splice(i, 1);
        s.reject(new GenerationCancelledError());
      }
    }
    const plan = planAdmission(
      {
        waiting: this.waiting.map((s) => s.promptIds.length),
        running: this.rows.length,
        chunked,
        prefilling: this.rows.some((s) => s.pending.length > 0),
      },
      this.policy,
    );
    if (plan.length === 0) return;
    const admitted = this.waiting.splice(0, plan.length);
    const prompts = admitted.map((s, i) => {
      const { prefill } = plan[i]!;
      s.pending = s.promptIds.slice(prefill);
      s.admittedAt = performance.now();
      return s.promptIds.slice(0, prefill);
    });
    let logits: Float32Array[];
    try {
      logits = await this.backend.append(prompts);
    } catch (err) {
      for (const s of admitted) s.reject(err);
      throw err;
    }
    this.rows.push(...admitted);
    await prepareMasks(admitted.filter((s) => s.pending.length === 0));
    admitted.forEach((s, i) => {
      if (s.pending.length === 0) this.accept(s, logits[i]!);
    });
  }

  /** Processes one row's logits, samples its next token and hands its text on. */
  private accept(s: Sequence, logits: Float32Array): void {
    if (s.finished) return;
    if (s.cancelled) return s.finish('cancelled');
    const p = s.params;
    // Log-probabilities are of the model's own distribution: read before the processors change the row.
    const raw = s.logprobs ? logits.slice() : null;
    const constraint = s.opts.constraint;
    processLogits(logits, p, { seen: s.seen, generated: s.generated, count: s.completionTokens }, this.eos, constraint);
    const token = drawToken(logits, p, s.rng, this.scratch);
    s.lastTokenAt = performance.now();
    s.firstTokenAt ??= s.lastTokenAt;
    s.completionTokens++;
    // The grammar allows an end token only where the document is complete; the matcher records that it ended.
    if (constraint && !constraint.accept(token)) return s.finish('stop');
    if (this.eos.has(token) && (!p.ignoreEos || constraint)) return s.finish('stop');
    const logprob = raw ? tokenLogprob(raw, token, p.logprobs ?? 0) : null;
    if (logprob) s.logprobs!.push(logprob);
    s.ids.push(token);
    s.seen.add(token);
    s.generated.set(token, (s.generated.get(token) ?? 0) + 1);
    const text = s.emit(s.stopper.push(s.decoder.next()));
    s.opts.onToken?.({ id: token, text, logprob });
    if (s.stopper.stopped) return s.finish('stop');
    if (s.completionTokens >= p.maxNewTokens) s.finish('length');
  }

  /** Frees the rows of finished and cancelled sequences. */
  private dropFinished(): void {
    const gone: number[] = [];
    this.rows.forEach((s, r) => {
      if (!s.finished && s.cancelled) s.finish('cancelled');
      if (s.finished) gone.push(r);
    });
    if (gone.length === 0) return;
    const order = this.backend.remove(gone);
    this.rows = order.map((old) => this.rows[old]!);
  }
}
