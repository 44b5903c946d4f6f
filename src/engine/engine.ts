import path from 'node:path';
import type { BatchBackend } from './batch-backend.js';
import { ContextOverflowError, type ModelRunError } from './errors.js';
import { FusedBackend } from './fused-backend.js';
import { GuardedBackend } from './guarded-backend.js';
import { findFusedOnnxFile, findOnnxFile, modelFingerprint, readDecoderConfig, type DecoderConfig } from './model-config.js';
import { PlainBackend } from './plain-backend.js';
import { ModelRunner } from './runner.js';
import { ConstraintCompiler, type CompiledConstraint } from './constraint-compiler.js';
import type { OutputConstraint } from './response-format.js';
import { Scheduler, type SchedulerLimits } from './scheduler.js';
import { readTokenVocabularyFile } from './token-vocabulary.js';
import { Tokenizer } from './tokenizer.js';
import type { GenerateOptions, GenerationResult, ModelInfo, SamplingParams } from './types.js';

export interface EngineOptions {
  /** Model name reported to clients. */
  name: string;
  /** Where the model came from (a path or hub id), for health and logs. */
  source: string;
  threads: number;
  /**
   * Whether ONNX Runtime's intra-op threads spin between kernels (default
   * false: they sleep). Spinning saves a wake-up per parallel kernel on an
   * idle machine and costs 2-3x per decode step when other work shares the
   * cores (bench/decode-ab.ts; see the notes in onnx-graph-fused.ts).
   */
  spinning?: boolean;
  limits: SchedulerLimits;
  /** `auto` runs the fused graph when the directory has one, else the plain graph. */
  graph?: 'auto' | 'plain';
  /** Called with every finished generation (cancelled ones included), e.g. to record metrics. */
  onGeneration?: (result: GenerationResult) => void;
  /** Called once for each model run that threw (every sequence in its batch fails with it), e.g. to log it. */
  onRunFailure?: (err: ModelRunError) => void;
  /** Testing only (FAULT_INJECT_FAILING_RUNS): the model runs, numbered from 1, that throw instead of running. */
  failingRuns?: readonly number[];
}

/**
 * The shared inference engine: one model, one ONNX Runtime session, and the
 * queue in front of it. Services call `generate`; nothing here knows HTTP.
 */
export class Engine {
  private readonly scheduler: Scheduler;
  private readonly onGeneration: ((result: GenerationResult) => void) | undefined;
  private readonly eos: ReadonlySet<number>;
  /** Built on the first constrained request: the vocabulary's preprocessing is the costly part. */
  private constraintCompiler: Promise<ConstraintCompiler> | undefined;
  readonly info: ModelInfo;

  private constructor(
    private readonly backend: BatchBackend,
    readonly tokenizer: Tokenizer,
    config: DecoderConfig,
    opts: EngineOptions,
    fingerprint: string,
    private readonly dir: string,
  ) {
    // The configuration's end tokens and the chat format's end-of-turn tokens: a turn ends the answer.
    this.eos = new Set([...config.eosTokenIds, ...tokenizer.endOfTurnIds()]);
    const guarded = new GuardedBackend(backend, { failingRuns: new Set(opts.failingRuns ?? []), onFailure: opts.onRunFailure });
    this.scheduler = new Scheduler(guarded, tokenizer, this.eos, opts.limits);
    this.onGeneration = opts.onGeneration;
    this.info = {
      name: opts.name,
      architecture: config.modelType,
      contextWindow: config.contextWindow,
      attentionHeads: config.attentionHeads,
      kvHeads: config.kvHeads,
      hiddenSize: config.hiddenSize,
      layers: config.layers,
      vocabSize: config.vocabSize,
      source: opts.source,
      graph: backend instanceof FusedBackend ? 'fused' : 'plain',
      fingerprint,
      // Only the fused graph carries quantized weights; the plain one is always fp32.
      quantization: backend instanceof FusedBackend ? config.quantization : null,
    };
  }

  /** Loads a transformers.js-style model directory (config.json, tokenizer.json, onnx/). */
  static async load(dir: string, opts: EngineOptions): Promise<Engine> {
    const config = readDecoderConfig(dir);
    const tokenizer = await Tokenizer.fromDirectory(path.resolve(dir));
    const fused = opts.graph === 'plain' ? undefined : findFusedOnnxFile(dir);
    const backend: BatchBackend = fused
      ? await FusedBackend.create(fused, config, opts.limits.maxBatchSize, opts.threads, opts.spinning ?? false)
      : new PlainBackend(await ModelRunner.create(findOnnxFile(dir), config, opts.threads, opts.spinning ?? false), opts.limits.maxBatchSize);
    return new Engine(backend, tokenizer, config, opts, modelFingerprint(dir), dir);
  }

  /** The structured-output compiler over this model's tokenizer (its vocabulary preprocessed on first use). */
  constraints(): Promise<ConstraintCompiler> {
    this.constraintCompiler ??= ConstraintCompiler.create(readTokenVocabularyFile(this.dir, this.info.vocabSize), [...this.eos]);
    // A failed build is not kept: the next request tries again.
    this.constraintCompiler.catch(() => (this.constraintCompiler = undefined));
    return this.constraintCompiler;
  }

  /**
   * Compiles a structured-output constraint for this model (cached by its
   * hash); its `matcher()` goes in GenerateOptions.constraint, one per
   * generation. Throws UnsupportedConstraintError for what cannot be enforced.
   */
  async compileConstraint(c: OutputConstraint): Promise<CompiledConstraint> {
    return (await this.constraints()).compile(c);
  }

  /** Requests waiting for the model, and sequences running now. */
  get load(): { waiting: number; running: number } {
    return { waiting: this.scheduler.depth, running: this.scheduler.running };
  }

  /** Token ids the model would read for this prompt (BOS included). */
  encode(text: string): number[] {
    return this.tokenizer.encode(text);
  }

  /**
   * Generates a continuation of `prompt`. The prompt must leave room in the
   * context window (else ContextOverflowError); `maxNewTokens` is cut at the
   * window, which then finishes with `length`. A generation whose signal
   * aborts midway resolves with `cancelled` and what it had made; one
   * aborted before it started rejects with GenerationCancelledError, and a
   * full waiting list with EngineOverloadedError.
   */
  async generate(prompt: string | readonly number[], params: SamplingParams, opts: GenerateOptions = {}): Promise<GenerationResult> {
    const submitted = performance.now();
    // Text is encoded as a plain prompt (BOS added); ids (a rendered chat template) are read as they are.
    const promptIds = typeof prompt === 'string' ? this.encode(prompt) : [...prompt];
    const window = this.info.contextWindow;
    if (promptIds.length >= window) {
      opts.constraint?.dispose();
      throw new ContextOverflowError(promptIds.length, window);
    }
    const room = window - promptIds.length;
    const bounded = { ...params, maxNewTokens: Math.min(params.maxNewTokens, room) };
    let outcome;
    let complete: boolean | null = null;
    try {
      outcome = await this.scheduler.submit(promptIds, bounded, opts);
      if (opts.constraint) complete = opts.constraint.terminated;
    } finally {
      opts.constraint?.dispose();
    }
    const { firstTokenAt, lastTokenAt, completionTokens } = outcome;
    const result: GenerationResult = {
      text: outcome.text,
      promptTokens: promptIds.length,
      completionTokens,
      finishReason: outcome.finishReason,
      logprobs: outcome.logprobs,
      constraintComplete: complete,
      timeToFirstTokenMs: firstTokenAt === null ? null : firstTokenAt - submitted,
      queueMs: outcome.admittedAt - submitted,
      interTokenMs:
        firstTokenAt !== null && lastTokenAt !== null && completionTokens > 1
          ? (lastTokenAt - firstTokenAt) / (completionTokens - 1)
          : null,
    };
    this.onGeneration?.(result);
    return result;
  }

  async close(): Promise<void> {
    await this.backend.close();
  }
}
