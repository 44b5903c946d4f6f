/** Modes measured again with lexical pruning forced on (it is on above 20,000 chunks; this corpus is smaller). */
const PRUNED: readonly RagMode[] = ['lexical', 'hybrid'];

/**
 * Retrieval quality on /usr/share/doc (corpus.ts) with the questions of
 * bench/data/rag-questions.json: hit@5 (the answer document among the
 * documents of the first 5 chunks) and MRR@10 (1 / rank of the first chunk
 * of the answer document, 0 beyond 10), for the server's lexical, dense and
 * hybrid retrieval, and for a plain BM25 baseline: MiniSearch (default BM25
 * ranking, OR of the query's words, no stemming or stop words) over the very
 * same chunks.
 *
 * The index is built through the server's own path (DatasetService upload →
 * RagService build: chunker, batching embedder, SQLite store) and kept in
 * the cache directory, keyed by the corpus hash and the embedder, so a rerun
 * skips the embedding. For PostgreSQL the same chunks and vectors are copied
 * into a fresh schema (no second embedding) and searched there.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import MiniSearch from 'minisearch';
import pg from 'pg';
import type { RequestContext } from '../../src/services/context.js';
import { DatasetService } from '../../src/services/datasets/service.js';
import type { Embedder } from '../../src/services/embeddings/types.js';
import { RagService } from '../../src/services/rag/service.js';
import { RAG_MODES, RagSearchSchema, type RagMode } from '../../src/services/rag-schema.js';
import { openPostgresStorage } from '../../src/storage/postgres.js';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import type { NewRagChunk, RagChunk, RagIndex, Storage } from '../../src/storage/types.js';
import { round } from '../lib/stats.js';
import { loadDocCorpus, loadQuestions, type Question } from './corpus.js';
import { readySource } from './embedders.js';

export const silentLog = { info() {}, warn() {}, error() {}, debug() {} } as never;
const ctx = (): RequestContext => ({ requestId: 'bench', keyId: null, signal: new AbortController().signal });

export interface MethodScore {
  method: string;
  hit_at_5: number;
  mrr_at_10: number;
}

export interface QualityResult {
  embedder: string;
  store: 'sqlite' | 'postgres';
  corpus: { root: string; documents: number; characters: number; hash: string; chunks: number };
  questions: { asked: number; skipped: string[] };
  build: { seconds: number | null; reused: boolean };
  scores: MethodScore[];
}

/** hit@5 and MRR@10 of ranked document ids (one list per question, best first). */
export function score(method: string, ranked: string[][], questions: Question[]): MethodScore {
  let hits = 0;
  let rr = 0;
  ranked.forEach((docs, i) => {
    const target = questions[i]!.doc;
    if (docs.slice(0, 5).includes(target)) hits++;
    const at = docs.slice(0, 10).indexOf(target);
    if (at >= 0) rr += 1 / (at + 1);
  });
  return { method, hit_at_5: round(hits / questions.length, 4), mrr_at_10: round(rr / questions.length, 4) };
}

async function waitReady(rag: RagService, id: string, log: (s: string) => void): Promise<RagIndex> {
  let last = 0;
  for (;;) {
    const index = await rag.get(id);
    if (index.status !== 'processing') return index;
    if (Date.now() - last > 15_000) {
      log(`    building: ${index.documentsIndexed + index.documentsFailed}/${index.documentsTotal} documents, ${index.chunkCount} chunks`);
      last = Date.now();
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Every chunk of an index, with its vector. */
async function allChunks(storage: Storage, indexId: string): Promise<Array<RagChunk & { vector: Float32Array }>> {
  const out: Array<RagChunk & { vector: Float32Array }> = [];
  let after = -1;
  for (;;) {
    const page = await storage.rag.vectors(indexId, after, 1000);
    if (page.length === 0) break;
    const rows = new Map((await storage.rag.chunks(indexId, page.map((v) => v.key))).map((c) => [c.key, c]));
    for (const v of page) out.push({ ...rows.get(v.key)!, vector: v.vector });
    after = page.at(-1)!.key;
  }
  return out;
}

async function evaluate(rag: RagService, indexId: string, questions: Question[], modes: readonly RagMode[] = RAG_MODES, suffix = ''): Promise<MethodScore[]> {
  const scores: MethodScore[] = [];
  for (const mode of modes) {
    const ranked: string[][] = [];
    for (const q of questions) {
      const r = await rag.search(RagSearchSchema.parse({ query: q.q, index_id: indexId, mode, top_k: 10 }), ctx());
      ranked.push(r.results.map((h) => h.chunk.docId));
    }
    scores.push(score(`${mode}${suffix}`, ranked, questions));
  }
  return scores;
}

function minisearchScore(chunks: RagChunk[], questions: Question[]): MethodScore {
  const ms = new MiniSearch<{ id: number; text: string; docId: string }>({ fields: ['text'], storeFields: ['docId'] });
  ms.addAll(chunks.map((c) => ({ id: c.key, text: c.text, docId: c.docId })));
  const ranked = questions.map((q) => ms.search(q.q).slice(0, 10).map((r) => r.docId as string));
  return score('minisearch-bm25', ranked, questions);
}

export async function measureQuality(opts: {
  embedder: Embedder;
  embedderName: string;
  stores: Array<'sqlite' | 'postgres'>;
  pgUrl: string;
  cacheDir: string;
  questionsFile: string;
  log: (s: string) => void;
}): Promise<QualityResult[]> {
  const { docs, hash } = loadDocCorpus();
  const ids = new Set(docs.map((d) => d.doc_id));
  const all = loadQuestions(opts.questionsFile);
  const questions = all.filter((q) => ids.has(q.doc));
  const skipped = all.filter((q) => !ids.has(q.doc)).map((q) => q.doc);
  const corpusInfo = { root: '/usr/share/doc', documents: docs.length, characters: docs.reduce((s, d) => s + d.text.length, 0), hash };
  opts.log(`  corpus: ${docs.length} documents (${corpusInfo.characters} characters, hash ${hash}); ${questions.length} questions`);

  const dir = path.join(opts.cacheDir, 'rag-quality', opts.embedderName);
  fs.mkdirSync(dir, { recursive: true });
  const sqlite = await openSqliteStorage(dir);
  const results: QualityResult[] = [];
  try {
    const rag = new RagService(sqlite, readySource(opts.embedder), silentLog, { limits: { concurrency: 4, embedBatch: 32, attempts: 3 } });
    const datasets = new DatasetService(sqlite, rag);
    const name = `usr-share-doc-${hash}-${opts.embedder.info.model}`;
    const existing = (await sqlite.datasets.list({ type: 'rag_corpus', limit: 100 })).items.find((d) => d.name === name);
    let index: RagIndex | undefined;
    let seconds: number | null = null;
    if (existing) {
      index = (await sqlite.rag.listIndexes({ datasetId: existing.id, status: 'ready', limit: 1 })).items[0];
    }
    if (!index) {
      const started = performance.now();
      const created = await datasets.create({ fields: { name, type: 'rag_corpus' }, records: docs });
      index = await waitReady(rag, created.indexId!, opts.log);
      seconds = round((performance.now() - started) / 1000, 1);
      opts.log(`  built in ${seconds} s: ${index.documentsIndexed} documents, ${index.documentsFailed} failed, ${index.chunkCount} chunks`);
    } else {
      opts.log(`  reusing the index built earlier (${index.chunkCount} chunks)`);
    }
    const chunks = await allChunks(sqlite, index.id);
    const baseline = minisearchScore(chunks, questions);
    const common = { embedder: opts.embedder.info.model, corpus: { ...corpusInfo, chunks: chunks.length }, questions: { asked: questions.length, skipped }, build: { seconds, reused: seconds === null } };
    const pruning = (storage: Storage) => new RagService(storage, readySource(opts.embedder), silentLog, { lexicalExactMax: 0 });
    if (opts.stores.includes('sqlite')) {
      const pruned = pruning(sqlite);
      results.push({
        ...common,
        store: 'sqlite',
        scores: [...(await evaluate(rag, index.id, questions)), ...(await evaluate(pruned, index.id, questions, PRUNED, '-pruned')), baseline],
      });
      opts.log(`  sqlite: ${JSON.stringify(results.at(-1)!.scores)}`);
    }
    await rag.stop();
    if (opts.stores.includes('postgres')) {
      const schema = `bench_rag_${randomBytes(4).toString('hex')}`;
      const pgStore = await openPostgresStorage(opts.pgUrl, { schema });
      try {
        const dataset = (await sqlite.datasets.get(index.datasetId))!;
        await pgStore.datasets.create(dataset, []);
        await pgStore.rag.createIndex({ ...index });
        const byDoc = new Map<number, NewRagChunk[]>();
        for (const c of chunks) {
          const { key: _key, ...rest } = c;
          byDoc.set(c.docIndex, [...(byDoc.get(c.docIndex) ?? []), rest]);
        }
        for (const [docIndex, list] of byDoc) {
          await pgStore.rag.putDocument({ indexId: index.id, docIndex, docId: list[0]!.docId, status: 'indexed', chunkCount: list.length, error: null }, list);
        }
        await pgStore.rag.indexWritten(index.id);
        const pgRag = new RagService(pgStore, readySource(opts.embedder), silentLog);
        results.push({
          ...common,
          store: 'postgres',
          scores: [...(await evaluate(pgRag, index.id, questions)), ...(await evaluate(pruning(pgStore), index.id, questions, PRUNED, '-pruned')), baseline],
        });
        opts.log(`  postgres: ${JSON.stringify(results.at(-1)!.scores)}`);
        await pgRag.stop();
      } finally {
        await pgStore.close();
        const admin = new pg.Client({ connectionString: opts.pgUrl });
        await admin.connect();
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await admin.end();
      }
    }
  } finally {
    await sqlite.close();
  }
  return results;
}
