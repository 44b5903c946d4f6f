import fs from 'node:fs';
import path from 'node:path';
import { AutoModel, AutoTokenizer, Tensor, type PreTrainedModel, type PreTrainedTokenizer } from '@huggingface/transformers';

/**
 * A model that turns token sequences into one vector each: an encoder's
 * last hidden state, or a decoder's final hidden state, mean-pooled over the
 * real (unpadded) tokens. What the embedding batcher runs.
 */
export interface PoolingModel {
  /** Length of every vector. */
  readonly dimensions: number;
  /** Most tokens one sequence may have, special tokens included. */
  readonly maxTokens: number;
  /**
   * Token ids the model reads for `text`, special tokens included. With
   * `truncateTo`, a longer text loses tokens from the end of its content; its
   * special tokens ([CLS] … [SEP], or BOS) stay, as Hugging Face truncation does.
   */
  tokenize(text: string, truncateTo?: number): number[];
  /**
   * One forward pass over `rows` (padded to the longest inside): each row's
   * hidden states averaged over its tokens. Not normalised.
   */
  embed(rows: readonly (readonly number[])[]): Promise<Float32Array[]>;
  close(): Promise<void>;
}

/** How an embedding session's threads wait for work (EMBEDDING_ORT_SPINNING). */
export interface PoolingThreading {
  /**
   * ONNX Runtime's `session.intra_op.allow_spinning` (default false). With
   * spinning, the intra-op threads busy-wait for the next piece of work,
   * during a run and for a while after it; without, they sleep until woken.
   * Off by default: on a machine whose cores are shared (the event loop's
   * own work, SQLite searches that run on it, the chat engine, other
   * processes), the spinning threads take the cores from the work that
   * follows a run (a search's query embedding followed by its SQLite
   * lookups) and from the run itself. `npm run bench:rag -- latency
   * --compare-threading` and `npm run bench:embeddings -- --compare-spinning`
   * measure both.
   */
  spinning?: boolean;
}

/** ONNX Runtime options shared by the embedding sessions (the encoder and the decoder fallback). */
export function poolingSessionOptions(threads: number, threading: PoolingThreading = {}) {
  return {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all' as const,
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    // Session config entries; onnxruntime-node takes their values as strings.
    extra: { session: { intra_op: { allow_spinning: threading.spinning ? '1' : '0' } } },
  };
}

/**
 * Tokenizes with the special tokens a model expects, and truncates the way
 * Hugging Face does: content is cut, the special tokens around it are kept.
 * (transformers.js's own `truncation` cuts the final [SEP] off with the rest.)
 */
export class SpecialsTokenizer {
  constructor(private readonly inner: PreTrainedTokenizer) {}

  tokenize(text: string, truncateTo?: number): number[] {
    const full = this.inner.encode(text, { add_special_tokens: true });
    if (truncateTo === undefined || full.length <= truncateTo) return full;
    const content = this.inner.encode(text, { add_special_tokens: false });
    return truncateContent(full, content, truncateTo);
  }
}

/**
 * `full` is `prefix + content + suffix` (the special tokens of the model's
 * template); returns it with the content cut so the whole fits in `max`.
 * Falls back to a plain cut when `full` does not have that shape.
 */
export function truncateContent(full: readonly number[], content: readonly number[], max: number): number[] {
  const specials = full.length - content.length;
  for (let k = 0; k <= specials; k++) {
    let match = true;
    for (let i = 0; i < content.length && match; i++) match = full[k + i] === content[i];
    if (!match) continue;
    const prefix = full.slice(0, k);
    const suffix = full.slice(k + content.length);
    const room = max - prefix.length - suffix.length;
    if (room < 0) break;
    return [...prefix, ...content.slice(0, room), ...suffix];
  }
  return full.slice(0, max);
}

/**
 * Averages `hidden` `[rows, seq, dim]` over each row's first `lengths[r]`
 * positions (right padding: the rest are padding). Float64 sums, float32 out.
 */
export function meanPool(hidden: Float32Array, seq: number, dim: number, lengths: readonly number[]): Float32Array[] {
  return lengths.map((len, r) => {
    const acc = new Float64Array(dim);
    for (let t = 0; t < len; t++) {
      const base = (r * seq + t) * dim;
      for (let d = 0; d < dim; d++) acc[d]! += hidden[base + d]!;
    }
    const out = new Float32Array(dim);
    for (let d = 0; d < dim; d++) out[d] = acc[d]! / Math.max(len, 1);
    return out;
  });
}

/** Where an encoder comes from: a local directory, or a hub id (downloaded into `cacheDir` unless `localOnly`). */
export type EncoderRef = { kind: 'dir'; dir: string } | { kind: 'hub'; id: string; cacheDir: string; localOnly: boolean };

/** The ONNX files transformers.js loads for an encoder, in the order we prefer them, with the dtype that selects each. */
const ENCODER_FILES = [
  { file: 'onnx/model.onnx', dtype: 'fp32' },
  { file: 'onnx/model_quantized.onnx', dtype: 'q8' },
] as const;

/** What a local encoder directory lacks to load as a feature-extraction model, or null when complete. */
export function encoderDirProblem(dir: string): string | null {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) return `${dir} is not a directory`;
  const missing = ['config.json', 'tokenizer.json'].filter((f) => !fs.existsSync(path.join(dir, f)));
  if (!ENCODER_FILES.some((e) => fs.existsSync(path.join(dir, e.file)))) missing.push(ENCODER_FILES.map((e) => e.file).join(' or '));
  return missing.length === 0 ? null : `${dir} has no ${missing.join(', ')}`;
}

/**
 * An encoder in the transformers.js feature-extraction layout (config.json,
 * tokenizer.json, onnx/model.onnx or onnx/model_quantized.onnx; inputs
 * input_ids, attention_mask and token_type_ids; output last_hidden_state),
 * loaded by transformers.js (AutoTokenizer + AutoModel) from a directory or
 * the hub alike, and run through the model's own forward: the code path of
 * `pipeline('feature-extraction')`, minus its tokenizer call, so that
 * sequences tokenized once at submission are padded together here.
 */
export class TransformersEncoder implements PoolingModel {
  private constructor(
    private readonly model: PreTrainedModel,
    private readonly tokenizer: SpecialsTokenizer,
    private readonly padId: number,
    private readonly hasTokenTypes: boolean,
    readonly dimensions: number,
    readonly maxTokens: number,
  ) {}

  static async load(ref: EncoderRef, threads: number, threading: PoolingThreading = {}): Promise<TransformersEncoder> {
    const id = ref.kind === 'dir' ? path.resolve(ref.dir) : ref.id;
    const where = ref.kind === 'dir' ? { local_files_only: true } : { cache_dir: ref.cacheDir, local_files_only: ref.localOnly };
    let dtype: 'fp32' | 'q8' = 'fp32';
    if (ref.kind === 'dir') {
      const problem = encoderDirProblem(ref.dir);
      if (problem) throw new Error(problem);
      dtype = ENCODER_FILES.find((e) => fs.existsSync(path.join(ref.dir, e.file)))!.dtype;
    }
    const tokenizer = await AutoTokenizer.from_pretrained(id, where);
    const model = await AutoModel.from_pretrained(id, { ...where, dtype, session_options: poolingSessionOptions(threads, threading) });
    const session = model.sessions.model as { inputNames: string[]; outputNames: string[] } | undefined;
    const missing = ['input_ids', 'attention_mask'].filter((n) => !session?.inputNames.includes(n));
    if (!session || missing.length > 0 || !session.outputNames.includes('last_hidden_state')) {
      await model.dispose();
      throw new Error(
        `${id} is not a feature-extraction encoder: its ONNX model needs inputs input_ids and attention_mask and output last_hidden_state ` +
          `(has inputs ${session?.inputNames.join(', ') ?? 'none'}; outputs ${session?.outputNames.join(', ') ?? 'none'})`,
      );
    }
    const cfg = model.config as unknown as Record<string, unknown>;
    const hidden = typeof cfg.hidden_size === 'number' ? cfg.hidden_size : undefined;
    if (hidden === undefined) throw new Error(`${id}: config.json has no hidden_size`);
    const limits = [cfg.max_position_embeddings, tokenizer.model_max_length, ref.kind === 'dir' ? sentenceTransformersMaxLength(ref.dir) : undefined];
    const maxTokens = Math.min(...limits.filter((v): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0), 512 * 1024);
    return new TransformersEncoder(
      model,
      new SpecialsTokenizer(tokenizer),
      tokenizer.pad_token_id ?? 0,
      session.inputNames.includes('token_type_ids'),
      hidden,
      maxTokens,
    );
  }

  tokenize(text: string, truncateTo?: number): number[] {
    return this.tokenizer.tokenize(text, truncateTo);
  }

  async embed(rows: readonly (readonly number[])[]): Promise<Float32Array[]> {
    const n = rows.length;
    const seq = Math.max(...rows.map((r) => r.length));
    const ids = new BigInt64Array(n * seq).fill(BigInt(this.padId));
    const mask = new BigInt64Array(n * seq);
    rows.forEach((row, r) => {
      for (let t = 0; t < row.length; t++) {
        ids[r * seq + t] = BigInt(row[t]!);
        mask[r * seq + t] = 1n;
      }
    });
    const dims = [n, seq];
    const inputs: Record<string, Tensor> = {
      input_ids: new Tensor('int64', ids, dims),
      attention_mask: new Tensor('int64', mask, dims),
    };
    // One sentence per row: every token is segment 0.
    if (this.hasTokenTypes) inputs.token_type_ids = new Tensor('int64', new BigInt64Array(n * seq), dims);
    const out = (await this.model.forward(inputs)) as { last_hidden_state: Tensor };
    const hidden = out.last_hidden_state;
    return meanPool(hidden.data as Float32Array, seq, hidden.dims[2]!, rows.map((r) => r.length));
  }

  async close(): Promise<void> {
    await this.model.dispose();
  }
}

/** sentence-transformers' own input limit (sentence_bert_config.json max_seq_length), as text-embeddings-inference reads it. */
function sentenceTransformersMaxLength(dir: string): number | undefined {
  const file = path.join(dir, 'sentence_bert_config.json');
  if (!fs.existsSync(file)) return undefined;
  const v = (JSON.parse(fs.readFileSync(file, 'utf8')) as { max_seq_length?: unknown }).max_seq_length;
  return typeof v === 'number' ? v : undefined;
}
