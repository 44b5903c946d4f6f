/**
 * Index build time: a rag_corpus of 10,000 documents (about 5 MB of text)
 * uploaded through DatasetService and indexed by RagService (the server's
 * path: the token-aware chunker, the batching embedder over a real pooling
 * model, four documents in flight, one transaction per document), in SQLite
 * and PostgreSQL, timed from the upload's answer to the index being `ready`.
 *
 * The documents are real text: the /usr/share/doc corpus of corpus.ts, read
 * as a stream of paragraphs and cut into pieces at paragraph boundaries
 * (long paragraphs at a space), never across two source files. Piece sizes
 * are drawn from a seeded log-uniform spread (0.3 to 3 times the running
 * mean) around whatever mean still reaches the byte target with the
 * documents left, so the total lands on it; the 2.8 MB corpus is read about
 * twice, and the second pass is cut at other places.
 *
 * Where the time goes (no change to the code measured; wrappers around the
 * pooling model and the store):
 * - encoder: ONNX Runtime runs with their padding and pooling. They block
 *   the event loop, so their sum is their share of the wall time; work that
 *   ran on the loop while a run waited for its turn is taken off.
 * - tokenizer: every tokenizer call, the chunker's token counts and the
 *   batcher's tokenization of each chunk.
 * - storage: the store's calls. SQLite's run on the event loop (their time
 *   is exclusive); PostgreSQL's wait on the network (reported as the time
 *   spent inside the calls, which overlaps the encoder).
 * - finish: from the last document stored to `ready`: the vectors loaded
 *   into memory and the fusion calibrated (64 queries).
 * - other: the rest (the chunker's own work, chunk ids, bookkeeping, and
 *   the event loop waiting on PostgreSQL).
 * The chunker is also timed alone over the whole corpus, before the build.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { PoolingModel } from '../../src/engine/encoder.js';
import { DatasetService } from '../../src/services/datasets/service.js';
import { chunkText, contentTokenCounter, DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_TOKENS } from '../../src/services/rag/chunker.js';
import { DEFAULT_BUILD_LIMITS } from '../../src/services/rag/index-builder.js';
import { RagService } from '../../src/services/rag/service.js';
import { openPostgresStorage } from '../../src/storage/postgres.js';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import type { Storage } from '../../src/storage/types.js';
import { round, summarize } from '../lib/stats.js';
import { DOC_ROOT, loadDocCorpus, type CorpusDoc } from './corpus.js';
import { loadEmbedder, readySource, type EmbedderName } from './embedders.js';
import { silentLog } from './quality.js';
import { rng } from './vectors.js';

/** A paragraph longer than this is cut at a space into pieces of about this size. */
const MAX_PARAGRAPH = 1500;
/** Piece sizes: log-uniform between these multiples of the running mean (normalised to mean 1). */
const SPREAD = [0.3, 3] as const;
const SPREAD_MEAN = (SPREAD[1] - SPREAD[0]) / Math.log(SPREAD[1] / SPREAD[0]);

export interface BuildCorpusInfo {
  source: string;
  source_documents: number;
  source_hash: string;
  seed: number;
  documents: number;
  bytes: number;
  characters: number;
  passes: number;
  document_bytes: { min: number; p50: number; mean: number; p95: number; max: number };
  hash: string;
}

/** Paragraphs of the corpus, its documents in order, again and again; long ones cut at a space. */
function* paragraphs(docs: CorpusDoc[]): Generator<{ text: string; doc: CorpusDoc; pass: number }> {
  for (let pass = 0; ; pass++) {
    for (const doc of docs) {
      for (const raw of doc.text.split(/\n[ \t]*\n/)) {
        let p = raw.trim();
        while (p.length > MAX_PARAGRAPH) {
          let cut = p.lastIndexOf(' ', MAX_PARAGRAPH);
          if (cut < MAX_PARAGRAPH / 2) cut = MAX_PARAGRAPH;
          if (/[\uD800-\uDBFF]/.test(p[cut - 1]!)) cut--;
          yield { text: p.slice(0, cut).trim(), doc, pass };
          p = p.slice(cut).trim();
        }
        if (p.length > 0) yield { text: p, doc, pass };
      }
    }
  }
}

/** `documents` records of about `bytes` UTF-8 bytes in all, cut from /usr/share/doc (see the module comment). */
export function buildCorpus(opts: { documents: number; bytes: number; seed?: number }): { docs: CorpusDoc[]; info: BuildCorpusInfo } {
  const seed = opts.seed ?? 17;
  const source = loadDocCorpus();
  if (source.docs.length === 0) throw new Error(`no documents under ${DOC_ROOT}`);
  const r = rng(seed);
  const stream = paragraphs(source.docs);
  let next = stream.next().value!;
  const docs: CorpusDoc[] = [];
  const sizes: number[] = [];
  const hash = createHash('sha256');
  let bytes = 0;
  let characters = 0;
  const pieces = new Map<string, number>();
  while (docs.length < opts.documents) {
    const left = opts.documents - docs.length;
    const mean = Math.max(1, (opts.bytes - bytes) / left);
    const factor = Math.exp(Math.log(SPREAD[0]) + r.next() * Math.log(SPREAD[1] / SPREAD[0])) / SPREAD_MEAN;
    const target = left === 1 ? opts.bytes - bytes : mean * factor;
    const from = next;
    const parts: string[] = [];
    let size = 0;
    // Whole paragraphs of one source document until the piece reaches its size.
    while (parts.length === 0 || (size < target && next.doc === from.doc && next.pass === from.pass)) {
      parts.push(next.text);
      size += Buffer.byteLength(next.text) + 2;
      next = stream.next().value!;
    }
    const text = parts.join('\n\n');
    const k = `${from.pass}:${from.doc.doc_id}`;
    const n = pieces.get(k) ?? 0;
    pieces.set(k, n + 1);
    const doc: CorpusDoc & { metadata: CorpusDoc['metadata'] & { pass: number } } = {
      doc_id: `${from.doc.doc_id}#${from.pass}.${n}`,
      text,
      metadata: { ...from.doc.metadata, pass: from.pass },
    };
    docs.push(doc);
    const b = Buffer.byteLength(text);
    sizes.push(b);
    bytes += b;
    characters += text.length;
    hash.update(doc.doc_id).update('\u0000').update(text).update('\u0000');
  }
  const s = summarize(sizes);
  return {
    docs,
    info: {
      source: DOC_ROOT,
      source_documents: source.docs.length,
      source_hash: source.hash,
      seed,
      documents: docs.length,
      bytes,
      characters,
      passes: next.pass + 1,
      document_bytes: { min: s.min, p50: round(s.p50, 0), mean: round(s.mean, 0), p95: round(s.p95, 0), max: s.max },
      hash: hash.digest('hex').slice(0, 16),
    },
  };
}

interface Spent {
  encoderMs: number;
  /** Event-loop work (tokenizer, store) done while an encoder run was pending: taken off encoderMs. */
  insideEncoderMs: number;
  tokenizerMs: number;
  storageSyncMs: number;
  /** Wall time with at least one store call under way. */
  storagePendingMs: number;
}

/** Time spent in the wrapped calls during one build. */
class Clock {
  spent: Spent = { encoderMs: 0, insideEncoderMs: 0, tokenizerMs: 0, storageSyncMs: 0, storagePendingMs: 0 };
  /** `spent` when the last document was stored (the finish that follows is timed as a whole). */
  atLastStore: Spent = { ...this.spent };
  pendingRuns = 0;
  pendingStores = 0;
  storesSince = 0;
  runs = 0;
  rows = 0;
  tokens = 0;
  paddedTokens = 0;
  storedChunks = 0;
  contentTokens = 0;
  lastStoredAt = 0;

  /** Sync work on the event loop, other than the encoder's. */
  loopWork(ms: number): void {
    if (this.pendingRuns > 0) this.spent.insideEncoderMs += ms;
  }

  storeStarted(): void {
    if (this.pendingStores++ === 0) this.storesSince = performance.now();
  }

  storeEnded(): void {
    if (--this.pendingStores === 0) this.spent.storagePendingMs += performance.now() - this.storesSince;
  }
}

function timedModel(model: PoolingModel, clock: Clock): PoolingModel {
  return {
    get dimensions() {
      return model.dimensions;
    },
    get maxTokens() {
      return model.maxTokens;
    },
    tokenize(text, truncateTo) {
      const t = performance.now();
      try {
        return model.tokenize(text, truncateTo);
      } finally {
        const ms = performance.now() - t;
        clock.spent.tokenizerMs += ms;
        clock.loopWork(ms);
      }
    },
    async embed(rows) {
      clock.pendingRuns++;
      const t = performance.now();
      try {
        return await model.embed(rows);
      } finally {
        clock.spent.encoderMs += performance.now() - t;
        clock.pendingRuns--;
        clock.runs++;
        clock.rows += rows.length;
        const longest = Math.max(...rows.map((r) => r.length));
        for (const r of rows) clock.tokens += r.length;
        clock.paddedTokens += longest * rows.length;
      }
    },
    close: () => model.close(),
  };
}

/** The store with its build-time calls timed: the part that ran before the call returned (sync) and the whole call. */
function timedStorage(storage: Storage, clock: Clock): Storage {
  const time =
    <A extends unknown[], R>(f: (...args: A) => Promise<R>, after?: (args: A) => void) =>
    async (...args: A): Promise<R> => {
      clock.storeStarted();
      const t = performance.now();
      try {
        const p = f(...args);
        const sync = performance.now() - t;
        clock.spent.storageSyncMs += sync;
        clock.loopWork(sync);
        return await p;
      } finally {
        clock.storeEnded();
        after?.(args);
      }
    };
  return {
    ...storage,
    datasets: { ...storage.datasets, records: time(storage.datasets.records) },
    rag: {
      ...storage.rag,
      chunkVectors: time(storage.rag.chunkVectors),
      putDocument: time(storage.rag.putDocument, ([, chunks]) => {
        clock.storedChunks += chunks.length;
        for (const c of chunks) clock.contentTokens += c.tokens;
        clock.lastStoredAt = performance.now();
        clock.atLastStore = { ...clock.spent };
      }),
    },
  };
}

export interface BuildRow {
  embedder: string;
  model: string;
  dimensions: number;
  store: 'sqlite' | 'postgres';
  chunking: { chunk_tokens: number; chunk_overlap: number };
  documents: number;
  failed_documents: number;
  chunks: number;
  /** Tokens of the chunks' text (special tokens excluded), as stored. */
  content_tokens: number;
  /** Tokens the encoder read ([CLS]/[SEP] or BOS included), and with the padding of each run. */
  encoder_tokens: number;
  padded_tokens: number;
  encoder_runs: number;
  /** DatasetService.create: validating and storing the records (the build starts as it returns). */
  upload_s: number;
  /** From the upload's answer to the index `ready`. */
  build_s: number;
  documents_per_s: number;
  chunks_per_s: number;
  /** Encoder tokens per second of build_s. */
  tokens_per_s: number;
  /** Up to the last document stored, then the finish (see the module comment). */
  split_s: {
    encoder: number;
    tokenizer: number;
    /** Store calls' work on the event loop (all of SQLite's). */
    storage_sync: number;
    /** Wall time with a store call under way (PostgreSQL: mostly overlapping the encoder). */
    storage_pending: number;
    finish: number;
    other: number;
  };
  /** chunkText over every document on its own (same tokenizer and options), before the build. */
  chunking_alone_s: number;
  load_avg_start: number[];
  load_avg_end: number[];
}

const loadAvg = () => os.loadavg().map((x) => round(x, 2));

async function untilReady(rag: RagService, id: string, log: (s: string) => void) {
  let last = performance.now();
  for (;;) {
    const index = await rag.get(id);
    if (index.status !== 'processing') return index;
    if (performance.now() - last > 30_000) {
      log(`      ${index.documentsIndexed + index.documentsFailed}/${index.documentsTotal} documents, ${index.chunkCount} chunks (load ${loadAvg().join(' ')})`);
      last = performance.now();
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One build of `docs` with one embedder in one store. */
export async function measureBuild(opts: {
  docs: CorpusDoc[];
  embedder: EmbedderName;
  store: 'sqlite' | 'postgres';
  pgUrl: string;
  cacheDir: string;
  threads: number;
  log: (s: string) => void;
}): Promise<BuildRow> {
  const clock = new Clock();
  const loaded = await loadEmbedder(opts.embedder, opts.cacheDir, opts.threads, { wrap: (m) => timedModel(m, clock) });
  const embedder = loaded.embedder;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-rag-build-'));
  const schema = `bench_rag_build_${randomBytes(4).toString('hex')}`;
  const raw = opts.store === 'sqlite' ? await openSqliteStorage(tmp) : await openPostgresStorage(opts.pgUrl, { schema });
  const storage = timedStorage(raw, clock);
  const rag = new RagService(storage, readySource(embedder), silentLog, { limits: DEFAULT_BUILD_LIMITS });
  try {
    // The chunker alone, as the build runs it (the same budget and a fresh token memo).
    const { tokens, overhead } = contentTokenCounter((t) => embedder.countTokens(t));
    const maxTokens = Math.max(1, Math.min(DEFAULT_CHUNK_TOKENS, embedder.info.maxTokens - overhead));
    const overlap = Math.min(DEFAULT_CHUNK_OVERLAP, Math.floor(maxTokens / 2));
    let t = performance.now();
    let expected = 0;
    for (const d of opts.docs) expected += chunkText(d.text, { maxTokens, overlap, tokens }).length;
    const chunkingS = (performance.now() - t) / 1000;
    opts.log(`    ${opts.embedder} ${opts.store}: chunker alone ${round(chunkingS, 1)} s, ${expected} chunks`);
    Object.assign(clock, new Clock());

    const loadStart = loadAvg();
    const datasets = new DatasetService(storage, rag);
    t = performance.now();
    const created = await datasets.create({ fields: { name: `bench-build-${opts.docs.length}`, type: 'rag_corpus' }, records: opts.docs });
    const uploaded = performance.now();
    // The upload's own store calls are not the build's.
    Object.assign(clock, new Clock());
    const index = await untilReady(rag, created.indexId!, opts.log);
    const ready = performance.now();
    if (index.status !== 'ready') throw new Error(`build ${index.status}: ${index.error}`);
    const buildS = (ready - uploaded) / 1000;
    const spent = clock.atLastStore;
    const encoderS = (spent.encoderMs - spent.insideEncoderMs) / 1000;
    const finishS = clock.lastStoredAt > 0 ? (ready - clock.lastStoredAt) / 1000 : 0;
    const row: BuildRow = {
      embedder: opts.embedder,
      model: embedder.info.model,
      dimensions: embedder.info.dimensions,
      store: opts.store,
      chunking: { chunk_tokens: index.options.chunk_tokens, chunk_overlap: index.options.chunk_overlap },
      documents: index.documentsIndexed,
      failed_documents: index.documentsFailed,
      chunks: index.chunkCount,
      content_tokens: clock.contentTokens,
      encoder_tokens: clock.tokens,
      padded_tokens: clock.paddedTokens,
      encoder_runs: clock.runs,
      upload_s: round((uploaded - t) / 1000, 2),
      build_s: round(buildS, 1),
      documents_per_s: round(index.documentsIndexed / buildS, 1),
      chunks_per_s: round(index.chunkCount / buildS, 1),
      tokens_per_s: round(clock.tokens / buildS, 0),
      split_s: {
        encoder: round(encoderS, 1),
        tokenizer: round(spent.tokenizerMs / 1000, 1),
        storage_sync: round(spent.storageSyncMs / 1000, 1),
        storage_pending: round(spent.storagePendingMs / 1000, 1),
        finish: round(finishS, 1),
        other: round(buildS - encoderS - spent.tokenizerMs / 1000 - spent.storageSyncMs / 1000 - finishS, 1),
      },
      chunking_alone_s: round(chunkingS, 1),
      load_avg_start: loadStart,
      load_avg_end: loadAvg(),
    };
    if (clock.storedChunks !== index.chunkCount) opts.log(`    note: ${clock.storedChunks} chunks stored through the timed store, index counts ${index.chunkCount}`);
    return row;
  } finally {
    await rag.stop();
    await raw.close();
    await loaded.close();
    fs.rmSync(tmp, { recursive: true, force: true });
    if (opts.store === 'postgres') {
      const admin = new pg.Client({ connectionString: opts.pgUrl });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    }
  }
}
