/**
 * A deterministic Embedder for tests and benchmarks: hashed bag of words
 * (each lower-cased word adds ±1 to one of `dimensions` slots, FNV-1a
 * hashed), L2-normalised; a whitespace token counter with two special
 * tokens (as BERT's [CLS] and [SEP]). Texts that share words get similar
 * vectors, which is all retrieval tests need. Optional hooks make chosen
 * texts fail or every call wait.
 */
import type { EmbedOptions, EmbedResult, Embedder, EmbeddingInfo } from '../../src/services/embeddings/types.js';

const WORD = /[\p{L}\p{N}]+/gu;

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export interface FakeEmbedderOptions {
  dimensions?: number;
  maxTokens?: number;
  model?: string;
  /** Texts for which embed() rejects (as a broken encoder would). */
  failOn?: (text: string) => boolean;
  /** Milliseconds each embed() call waits before answering. */
  delayMs?: number;
}

export class FakeEmbedder implements Embedder {
  readonly info: EmbeddingInfo;
  /** Texts embedded so far, in call order (tests count them). */
  readonly embedded: string[] = [];
  calls = 0;

  constructor(private readonly opts: FakeEmbedderOptions = {}) {
    this.info = { model: opts.model ?? 'fake-bow', source: 'path', dimensions: opts.dimensions ?? 64, maxTokens: opts.maxTokens ?? 512 };
  }

  countTokens(text: string): number {
    return (text.match(/\S+/g)?.length ?? 0) + 2;
  }

  /** The vector of one text, synchronously (what embed() returns for it). */
  vector(text: string): Float32Array {
    const v = new Float32Array(this.info.dimensions);
    for (const m of text.toLowerCase().matchAll(WORD)) {
      const h = fnv1a(m[0]);
      v[h % this.info.dimensions]! += h & 0x80000000 ? -1 : 1;
    }
    let norm = 0;
    for (const x of v) norm += x * x;
    if (norm === 0) v[0] = 1;
    else for (let i = 0; i < v.length; i++) v[i]! /= Math.sqrt(norm);
    return v;
  }

  async embed(texts: readonly string[], opts: EmbedOptions = {}): Promise<EmbedResult> {
    this.calls++;
    if (this.opts.delayMs) await new Promise((r) => setTimeout(r, this.opts.delayMs));
    if (opts.signal?.aborted) throw new Error('aborted');
    const bad = texts.find((t) => this.opts.failOn?.(t));
    if (bad !== undefined) throw new Error(`cannot embed: ${bad.slice(0, 20)}`);
    this.embedded.push(...texts);
    return { vectors: texts.map((t) => this.vector(t)), tokens: texts.map((t) => Math.min(this.countTokens(t), this.info.maxTokens)) };
  }
}
