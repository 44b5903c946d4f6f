import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BatchBackend } from '../../src/engine/batch-backend.js';
import { buildSyntheticVocab } from '../../src/engine/synthetic-vocab.js';
import { writeTokenizerFiles } from '../../src/engine/tokenizer-export.js';
import { Tokenizer } from '../../src/engine/tokenizer.js';

/** Size of the synthetic vocabulary the fake model and its tokenizer share. */
export const FAKE_VOCAB = 512;

/** The real Tokenizer class over a small synthetic vocabulary (no model files). */
export async function syntheticTokenizer(): Promise<Tokenizer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fake-tokenizer-'));
  try {
    writeTokenizerFiles(buildSyntheticVocab(FAKE_VOCAB), dir, 512);
    return await Tokenizer.fromDirectory(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** One call the scheduler made, as the fake backend saw it. */
export type BackendCall =
  | { op: 'append'; prompts: number[][] }
  | { op: 'extend'; row: number; tokens: number[] }
  | { op: 'step'; tokens: (number | null)[] }
  | { op: 'remove'; rows: number[] }
  | { op: 'reset' };

/**
 * A BatchBackend without a model. It keeps each row's tokens and answers with
 * one-hot logits whose argmax is `next(that row's tokens)`, so a row's
 * continuation depends on its own tokens only: a scheduler that feeds a token
 * to the wrong row, or loses track of rows when they move, changes the text.
 * Misuse (a row that is not live, a token count that does not match the rows,
 * a skipped row on a backend that cannot extend) throws, as a real backend
 * would fail.
 */
export class FakeBackend implements BatchBackend {
  readonly calls: BackendCall[] = [];
  /** Row -> tokens so far, in the backend's row order. */
  readonly rows: number[][] = [];
  /** Most rows the batch ever held. */
  maxSize = 0;
  extend?: (row: number, tokens: readonly number[]) => Promise<Float32Array>;

  constructor(
    readonly capacity: number,
    private readonly next: (tokens: readonly number[]) => number,
    opts: { chunking: boolean },
  ) {
    if (opts.chunking) {
      this.extend = async (row, tokens) => {
        this.calls.push({ op: 'extend', row, tokens: [...tokens] });
        const r = this.live(row);
        r.push(...tokens);
        return this.logits(r);
      };
    }
  }

  get size(): number {
    return this.rows.length;
  }

  /** The calls of one kind, in order. */
  callsOf<K extends BackendCall['op']>(op: K): Extract<BackendCall, { op: K }>[] {
    return this.calls.filter((c): c is Extract<BackendCall, { op: K }> => c.op === op);
  }

  async append(prompts: readonly (readonly number[])[]): Promise<Float32Array[]> {
    this.calls.push({ op: 'append', prompts: prompts.map((p) => [...p]) });
    if (this.rows.length + prompts.length > this.capacity) throw new Error(`append beyond capacity ${this.capacity}`);
    if (prompts.some((p) => p.length === 0)) throw new Error('append needs at least one token per prompt');
    const added = prompts.map((p) => [...p]);
    this.rows.push(...added);
    this.maxSize = Math.max(this.maxSize, this.rows.length);
    return added.map((r) => this.logits(r));
  }

  async step(tokens: readonly (number | null)[]): Promise<(Float32Array | null)[]> {
    this.calls.push({ op: 'step', tokens: [...tokens] });
    if (tokens.length !== this.rows.length) throw new Error(`step needs one token per row: ${tokens.length} for ${this.rows.length}`);
    if (!this.extend && tokens.includes(null)) throw new Error('this backend prefills prompts whole: no row can be skipped');
    return tokens.map((t, row) => {
      if (t === null) return null;
      this.rows[row]!.push(t);
      return this.logits(this.rows[row]!);
    });
  }

  /** Fills each hole with the last surviving row, as KvBatch does, so rows move. */
  remove(rows: readonly number[]): number[] {
    this.calls.push({ op: 'remove', rows: [...rows] });
    for (const r of rows) this.live(r);
    const gone = new Set(rows);
    const size = this.rows.length - gone.size;
    const movers = [...this.rows.keys()].filter((r) => r >= size && !gone.has(r)).reverse();
    const order = [...Array(size).keys()].map((r) => (gone.has(r) ? movers.shift()! : r));
    const kept = order.map((old) => this.rows[old]!);
    this.rows.length = 0;
    this.rows.push(...kept);
    return order;
  }

  reset(): void {
    this.calls.push({ op: 'reset' });
    this.rows.length = 0;
  }

  async close(): Promise<void> {}

  private live(row: number): number[] {
    const r = this.rows[row];
    if (!r) throw new Error(`row ${row} is not live`);
    return r;
  }

  private logits(tokens: readonly number[]): Float32Array {
    const l = new Float32Array(FAKE_VOCAB);
    l[this.next(tokens)] = 1;
    return l;
  }
}
