/**
 * Retrieval latency at n chunks, through RagService.search (what
 * POST /v1/rag/search runs), in SQLite and PostgreSQL, with exact dense
 * search and with the HNSW graph.
 *
 * The corpus is synthetic, made to load fast and look like text to the
 * lexical index: chunks of 120-200 words drawn from a 30,000-word Zipfian
 * vocabulary (s = 1.07, as English roughly is), 10 chunks a document, with
 * the 384-dimensional embedding-like vectors of vectors.ts. Queries are 4-7
 * words from one chunk's own mid-frequency words, plus filler question words.
 * "Embedding excluded": the query's vector is precomputed and handed over
 * at once. "Included": the random-weight MiniLM-shaped encoder (the server's
 * encoder path) embeds every query; its vectors mean nothing for these
 * synthetic chunks, only their cost counts. Hybrid search is measured with
 * the embedding excluded and included (and, on request, with the encoder's
 * session set up otherwise: ONNX Runtime's thread spinning on, one thread)
 * in alternating rounds over the same queries, so that load from other work
 * on a shared machine falls on every variant alike.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { RequestContext } from '../../src/services/context.js';
import type { Embedder } from '../../src/services/embeddings/types.js';
import { RagService } from '../../src/services/rag/service.js';
import { RagSearchSchema, type RagMode } from '../../src/services/rag-schema.js';
import { openPostgresStorage } from '../../src/storage/postgres.js';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import type { NewRagChunk, RagIndex, Storage } from '../../src/storage/types.js';
import { round, summarize } from '../lib/stats.js';
import { renamed } from './embedders.js';
import { silentLog } from './quality.js';
import { DIMENSIONS, rng, syntheticQueries, syntheticVectors } from './vectors.js';

const MODEL = 'bench-synthetic-384';
const CHUNKS_PER_DOC = 10;
const VOCABULARY = 30_000;
const ctx = (): RequestContext => ({ requestId: 'bench', keyId: null, signal: new AbortController().signal });

/** Pronounceable pseudo-words: the lexical index stems and ranks them like words. */
function vocabulary(n: number): string[] {
  const r = rng(3);
  const c = 'bcdfghjklmnprstvwz';
  const v = 'aeiou';
  const words = new Set<string>();
  while (words.size < n) {
    const syllables = 1 + Math.floor(r.next() * 3) + (words.size > 1000 ? 1 : 0);
    let w = '';
    for (let s = 0; s < syllables; s++) w += c[Math.floor(r.next() * c.length)]! + v[Math.floor(r.next() * v.length)]!;
    if (r.next() < 0.5) w += c[Math.floor(r.next() * c.length)]!;
    words.add(w);
  }
  return [...words];
}

/** A Zipfian sampler over ranks 0..n-1. */
function zipf(n: number, s: number, seed: number) {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) cdf[i] = sum += 1 / (i + 1) ** s;
  const r = rng(seed);
  return () => {
    const x = r.next() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

export interface SyntheticCorpus {
  n: number;
  texts: string[];
  vectors: Float32Array;
  queries: Array<{ text: string; vector: Float32Array }>;
}

export function syntheticCorpus(n: number, queries: number): SyntheticCorpus {
  const words = vocabulary(VOCABULARY);
  const pick = zipf(VOCABULARY, 1.07, 5);
  const r = rng(9);
  const texts = Array.from({ length: n }, () => {
    const len = 120 + Math.floor(r.next() * 80);
    const out: string[] = [];
    for (let i = 0; i < len; i++) out.push(words[pick()]!);
    return `${out.join(' ')}.`;
  });
  const vectors = syntheticVectors(n, DIMENSIONS);
  const qv = syntheticQueries(vectors, queries, DIMENSIONS, 13);
  const fillers = ['how', 'do', 'i', 'the', 'what', 'is', 'about'];
  const qs = qv.map((vector, i) => {
    const source = texts[Math.floor(r.next() * n)]!.split(' ');
    const mid = source.filter((w) => {
      const rank = words.indexOf(w);
      return rank > 50 && rank < 20_000;
    });
    const k = 4 + (i % 4);
    const chosen = Array.from({ length: k }, () => mid[Math.floor(r.next() * mid.length)] ?? source[0]!);
    return { text: `${fillers[i % fillers.length]} ${fillers[(i + 3) % fillers.length]} ${chosen.join(' ')}`, vector };
  });
  return { n, texts, vectors, queries: qs };
}

/** Writes the corpus into `storage` as one ready index, document by document (10 chunks each). */
async function load(storage: Storage, corpus: SyntheticCorpus): Promise<RagIndex> {
  const now = new Date().toISOString();
  const datasetId = `ds_bench_${randomBytes(6).toString('hex')}`;
  await storage.datasets.create({ id: datasetId, name: 'bench', type: 'rag_corpus', status: 'ready', recordCount: 0, metadata: {}, error: null, createdAt: now, updatedAt: now }, []);
  const docs = Math.ceil(corpus.n / CHUNKS_PER_DOC);
  const index: RagIndex = {
    id: `ri_bench_${randomBytes(6).toString('hex')}`,
    datasetId,
    status: 'processing',
    options: { chunk_tokens: 256, chunk_overlap: 32 },
    embeddingModel: MODEL,
    embeddingDimensions: DIMENSIONS,
    documentsTotal: docs,
    documentsIndexed: 0,
    documentsFailed: 0,
    chunkCount: 0,
    fusion: null,
    error: null,
    createdAt: now,
    startedAt: now,
    updatedAt: now,
    completedAt: null,
  };
  await storage.rag.createIndex(index);
  for (let d = 0; d < docs; d++) {
    const chunks: NewRagChunk[] = [];
    for (let c = d * CHUNKS_PER_DOC; c < Math.min(corpus.n, (d + 1) * CHUNKS_PER_DOC); c++) {
      chunks.push({
        indexId: index.id,
        chunkId: `ch_${c}`,
        docIndex: d,
        docId: `doc-${d}`,
        ordinal: c - d * CHUNKS_PER_DOC,
        start: 0,
        end: corpus.texts[c]!.length,
        tokens: 180,
        text: corpus.texts[c]!,
        metadata: { group: d % 10 },
        vector: corpus.vectors.subarray(c * DIMENSIONS, (c + 1) * DIMENSIONS),
      });
    }
    await storage.rag.putDocument({ indexId: index.id, docIndex: d, docId: `doc-${d}`, status: 'indexed', chunkCount: chunks.length, error: null }, chunks);
  }
  await storage.rag.indexWritten(index.id);
  const done = new Date().toISOString();
  return (await storage.rag.updateIndex(index.id, { status: 'ready', completedAt: done, updatedAt: done }))!;
}

/** Hands back each query's precomputed vector at once: retrieval without the cost of embedding. */
function lookupEmbedder(corpus: SyntheticCorpus): Embedder {
  const byText = new Map(corpus.queries.map((q) => [q.text, q.vector]));
  return {
    info: { model: MODEL, source: 'path', dimensions: DIMENSIONS, maxTokens: 512 },
    countTokens: (t) => t.split(/\s+/).length + 2,
    embed: async (texts) => ({ vectors: texts.map((t) => byText.get(t) ?? corpus.queries[0]!.vector), tokens: texts.map(() => 8) }),
  };
}

export interface LatencyRow {
  store: 'sqlite' | 'postgres';
  chunks: number;
  dense: 'exact' | 'hnsw';
  query_embedding: 'excluded' | 'included';
  /** Included: the encoder's session settings (IncludedEncoder.label). */
  encoder?: string;
  mode: RagMode;
  top_k: number;
  queries: number;
  /** Hybrid rows: measured in this many rounds, alternated with the other hybrid rows of the same index and method. */
  rounds?: number;
  p50_ms: number;
  p95_ms: number;
  mean_ms: number;
  embedding_p50_ms?: number;
  embedding_p95_ms?: number;
}

/** An encoder that embeds the queries of the "included" rows. */
export interface IncludedEncoder {
  /** Its session settings, as the rows name them (e.g. "2 threads, no spinning (server default)"). */
  label: string;
  embedder: Embedder;
}

/** Rounds of the alternated hybrid measurements; each takes its own share of the queries. */
const HYBRID_ROUNDS = 8;
const ROUND_WARMUP = 5;

async function run(rag: RagService, indexId: string, queries: SyntheticCorpus['queries'], mode: RagMode, warmup: number) {
  const times: number[] = [];
  const embed: number[] = [];
  let method: string | null = null;
  for (let i = 0; i < warmup + queries.length; i++) {
    const q = queries[i % queries.length]!;
    const t = performance.now();
    const r = await rag.search(RagSearchSchema.parse({ query: q.text, index_id: indexId, mode, top_k: 10 }), ctx());
    if (i >= warmup) {
      times.push(performance.now() - t);
      embed.push(r.embeddingMs);
    }
    method = r.denseMethod;
  }
  return { times: summarize(times), embed: summarize(embed), method };
}

/**
 * Hybrid top-10 with each embedder in turn, in rounds: round r gives every
 * embedder the same share of the queries, in an order rotated by r, each
 * after a few warm-up queries from outside that share.
 */
async function alternate(rag: RagService, indexId: string, queries: SyntheticCorpus['queries'], embedders: Embedder[], use: (e: Embedder) => void) {
  const out = embedders.map(() => ({ times: [] as number[], embed: [] as number[], method: null as string | null }));
  const size = Math.ceil(queries.length / HYBRID_ROUNDS);
  for (let r = 0; r < HYBRID_ROUNDS; r++) {
    const share = queries.slice(r * size, (r + 1) * size);
    if (share.length === 0) break;
    for (let j = 0; j < embedders.length; j++) {
      const a = (r + j) % embedders.length;
      use(embedders[a]!);
      for (let i = 0; i < ROUND_WARMUP + share.length; i++) {
        const warm = i < ROUND_WARMUP;
        const q = warm ? queries[((r + 1) * size + i) % queries.length]! : share[i - ROUND_WARMUP]!;
        const t = performance.now();
        const res = await rag.search(RagSearchSchema.parse({ query: q.text, index_id: indexId, mode: 'hybrid', top_k: 10 }), ctx());
        if (!warm) {
          out[a]!.times.push(performance.now() - t);
          out[a]!.embed.push(res.embeddingMs);
        }
        out[a]!.method = res.denseMethod;
      }
    }
  }
  return out.map((o) => ({ times: summarize(o.times), embed: summarize(o.embed), method: o.method, count: o.times.length }));
}

/** Waits until the service answers dense searches with its graph. */
async function untilGraph(rag: RagService, indexId: string, query: string, log: (s: string) => void): Promise<number> {
  const started = performance.now();
  let last = 0;
  for (;;) {
    const r = await rag.search(RagSearchSchema.parse({ query, index_id: indexId, mode: 'dense', top_k: 1 }), ctx());
    if (r.denseMethod === 'hnsw') return (performance.now() - started) / 1000;
    if (Date.now() - last > 30_000) {
      log(`    waiting for the HNSW graph (${Math.round((performance.now() - started) / 1000)} s)`);
      last = Date.now();
    }
    await new Promise((res) => setTimeout(res, 1000));
  }
}

export async function measureLatency(opts: {
  sizes: number[];
  stores: Array<'sqlite' | 'postgres'>;
  pgUrl: string;
  queries: number;
  /** Encoders for the "included" rows (none: excluded only). */
  included: IncludedEncoder[];
  log: (s: string) => void;
}): Promise<{ rows: LatencyRow[]; loads: Array<{ store: string; chunks: number; load_s: number; graph_build_s: number | null }> }> {
  const rows: LatencyRow[] = [];
  const loads: Array<{ store: string; chunks: number; load_s: number; graph_build_s: number | null }> = [];
  for (const n of opts.sizes) {
    opts.log(`  corpus of ${n} chunks`);
    const corpus = syntheticCorpus(n, opts.queries);
    for (const store of opts.stores) {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-rag-'));
      const schema = `bench_rag_${randomBytes(4).toString('hex')}`;
      const storage = store === 'sqlite' ? await openSqliteStorage(tmp) : await openPostgresStorage(opts.pgUrl, { schema });
      try {
        const t0 = performance.now();
        const index = await load(storage, corpus);
        const loadS = round((performance.now() - t0) / 1000, 1);
        opts.log(`    ${store}: loaded in ${loadS} s`);
        let graphS: number | null = null;
        for (const dense of ['exact', 'hnsw'] as const) {
          // One service per method (its vectors loaded once, its graph built once); the embedder is switched under it.
          let current = lookupEmbedder(corpus);
          const source = { state: 'ready' as const, require: () => current, whenReady: async () => current };
          const rag = new RagService(storage, source, silentLog, { graphAbove: dense === 'exact' ? Infinity : 0 });
          if (dense === 'hnsw') {
            graphS = round(await untilGraph(rag, index.id, corpus.queries[0]!.text, opts.log), 1);
            opts.log(`    ${store}: HNSW graph ready after ${graphS} s`);
          }
          const lookup = current;
          const single: LatencyRow[] = [];
          for (const mode of ['lexical', 'dense'] as const) {
            const r = await run(rag, index.id, corpus.queries, mode, 20);
            if (mode !== 'lexical' && r.method !== dense) throw new Error(`expected ${dense} dense search, got ${r.method}`);
            single.push({ store, chunks: n, dense, query_embedding: 'excluded', mode, top_k: 10, queries: corpus.queries.length, p50_ms: round(r.times.p50, 2), p95_ms: round(r.times.p95, 2), mean_ms: round(r.times.mean, 2) });
            opts.log(`    ${JSON.stringify(single.at(-1))}`);
          }
          // Hybrid, the query's embedding excluded and included (each encoder), alternated round by round.
          const hybrid = await alternate(rag, index.id, corpus.queries, [lookup, ...opts.included.map((e) => renamed(e.embedder, MODEL))], (e) => (current = e));
          hybrid.forEach((r, i) => {
            if (r.method !== dense) throw new Error(`expected ${dense} dense search, got ${r.method}`);
            const included = i > 0 ? opts.included[i - 1]! : null;
            const row: LatencyRow = {
              store, chunks: n, dense, query_embedding: included ? 'included' : 'excluded', ...(included ? { encoder: included.label } : {}),
              mode: 'hybrid', top_k: 10, queries: r.count, rounds: HYBRID_ROUNDS,
              p50_ms: round(r.times.p50, 2), p95_ms: round(r.times.p95, 2), mean_ms: round(r.times.mean, 2),
              ...(included ? { embedding_p50_ms: round(r.embed.p50, 2), embedding_p95_ms: round(r.embed.p95, 2) } : {}),
            };
            if (i === 0) rows.push(row, ...single);
            else rows.push(row);
            opts.log(`    ${JSON.stringify(row)}`);
          });
          await rag.stop();
        }
        loads.push({ store, chunks: n, load_s: loadS, graph_build_s: graphS });
      } finally {
        await storage.close();
        fs.rmSync(tmp, { recursive: true, force: true });
        if (store === 'postgres') {
          const admin = new pg.Client({ connectionString: opts.pgUrl });
          await admin.connect();
          await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
          await admin.end();
        }
      }
    }
  }
  return { rows, loads };
}
