/**
 * `npm run bench:rag`: RAG retrieval, measured (never asserted in a test).
 *   vectors  HNSW libraries (hnswlib-node, usearch) against exact search:
 *            build time, query latency, recall@10 (rag/vectors.ts)
 *   latency  hybrid top-10 retrieval at 10k and 100k chunks, SQLite and
 *            PostgreSQL, exact and HNSW, query embedding excluded and
 *            included (rag/latency.ts)
 *   quality  hit@5 and MRR@10 on /usr/share/doc with the questions of
 *            bench/data/rag-questions.json, lexical, dense and hybrid,
 *            against MiniSearch's BM25 on the same chunks (rag/quality.ts)
 *   build    index build time for 10,000 documents (about 5 MB of
 *            /usr/share/doc text) with the MiniLM-shaped encoder and the
 *            decoder fallback, SQLite and PostgreSQL (rag/build.ts); not in
 *            the default run (about half an hour on 2 cores):
 *            `npm run bench:rag -- build`
 * Sections are named with --sections or as arguments (`-- build latency`).
 * Results go to bench/results/<date>-rag.json with the commit (the default
 * sections), else <date>-rag-<sections>.json.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { EXACT_MAX_VECTORS, HNSW_PARAMS } from '../src/services/rag/vector-index.js';
import { RRF_K } from '../src/services/rag/fusion.js';
import { CANDIDATES } from '../src/services/rag/retrieval.js';
import { CALIBRATION_QUERIES } from '../src/services/rag/calibration.js';
import { COMMON_TERM_SHARE, LEXICAL_EXACT_MAX } from '../src/services/rag/lexical.js';
import { buildCorpus, measureBuild, type BuildRow } from './rag/build.js';
import { EMBEDDERS, loadEmbedder, type EmbedderName } from './rag/embedders.js';
import { measureLatency, type IncludedEncoder } from './rag/latency.js';
import { measureQuality } from './rag/quality.js';
import { compareVectorIndexes } from './rag/vectors.js';

const REPO = path.resolve(import.meta.dirname, '..');
const SECTIONS = ['vectors', 'latency', 'quality', 'build'] as const;
const DEFAULT_SECTIONS = ['vectors', 'latency', 'quality'] as const;

const USAGE = `npm run bench:rag -- [sections] [options]
  --sections vectors,latency,quality,build   what to measure (default vectors,latency,quality;
                                       sections may also be given as arguments: -- build latency)
  --sizes 10000,100000                 chunk counts for vectors and latency (default both)
  --stores sqlite,postgres             stores for latency, quality and build (default both)
  --queries N                          queries per latency run (default 200)
  --compare-threading                  latency: also embed the queries with ONNX Runtime's thread spinning on,
                                       and with one thread, alternated with the server's default
  --embedders minilm,decoder,hash      embedders for quality and build (default minilm,decoder; see bench/rag/embedders.ts)
  --build-documents N                  build: documents (default 10000)
  --build-bytes N                      build: UTF-8 bytes of text in all (default 5000000)
  --database-url URL                   PostgreSQL (default TEST_DATABASE_URL or postgres://postgres@127.0.0.1:5432/test)
  --threads N                          ONNX Runtime threads of the encoders (default: cores)
  --cache-dir DIR                      models and the quality index (default .model-cache/bench)
  --out-dir DIR                        results JSON (default bench/results)
  --no-save                            print only`;

function fail(msg: string): never {
  process.stderr.write(`error: ${msg}\nusage: ${USAGE}\n`);
  process.exit(2);
}

function list<T extends string>(raw: string | undefined, allowed: readonly T[], name: string): T[] {
  if (raw === undefined) return [...allowed];
  const out = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const x of out) if (!(allowed as readonly string[]).includes(x)) fail(`--${name}: ${x} is not one of ${allowed.join(', ')}`);
  return out as T[];
}

const { values, positionals } = (() => {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        sections: { type: 'string' },
        'compare-threading': { type: 'boolean' },
        'build-documents': { type: 'string' },
        'build-bytes': { type: 'string' },
        sizes: { type: 'string' },
        stores: { type: 'string' },
        queries: { type: 'string' },
        embedders: { type: 'string' },
        'database-url': { type: 'string' },
        threads: { type: 'string' },
        'cache-dir': { type: 'string' },
        'out-dir': { type: 'string' },
        'no-save': { type: 'boolean' },
        help: { type: 'boolean' },
      },
    });
  } catch (err) {
    return fail((err as Error).message);
  }
})();
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
if (values.sections !== undefined && positionals.length > 0) fail('name the sections with --sections or as arguments, not both');
const sections = positionals.length > 0 ? list(positionals.join(','), SECTIONS, 'sections') : values.sections === undefined ? [...DEFAULT_SECTIONS] : list(values.sections, SECTIONS, 'sections');
const buildDocuments = Number(values['build-documents'] ?? 10_000);
const buildBytes = Number(values['build-bytes'] ?? 5_000_000);
if (!Number.isInteger(buildDocuments) || buildDocuments < 1 || buildDocuments > 50_000) fail('--build-documents must be an integer 1..50000');
if (!Number.isInteger(buildBytes) || buildBytes < buildDocuments) fail('--build-bytes must be an integer of at least --build-documents');
const sizes = (values.sizes ?? '10000,100000').split(',').map(Number);
if (sizes.some((n) => !Number.isInteger(n) || n < 100)) fail('--sizes must be integers of at least 100');
const stores = list(values.stores, ['sqlite', 'postgres'] as const, 'stores');
const queries = Number(values.queries ?? 200);
if (!Number.isInteger(queries) || queries < 10) fail('--queries must be an integer of at least 10');
// The server's own embedding paths by default; `hash` (the tests' bag of words) on request.
const embedders = values.embedders === undefined ? (['minilm', 'decoder'] as EmbedderName[]) : list(values.embedders, EMBEDDERS, 'embedders');
const pgUrl = values['database-url'] ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const threads = Number(values.threads ?? os.availableParallelism());
const cacheDir = path.resolve(values['cache-dir'] ?? path.join(REPO, '.model-cache/bench'));
const outDir = path.resolve(values['out-dir'] ?? path.join(REPO, 'bench/results'));
const log = (s: string) => process.stdout.write(`${s}\n`);

const git = (args: string[]) => {
  try {
    return execFileSync('git', args, { cwd: REPO, encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
};

const started = new Date();
const result: Record<string, unknown> = {
  date: started.toISOString().slice(0, 10),
  started_at: started.toISOString(),
  sections,
  git: { commit: git(['rev-parse', 'HEAD']), dirty: (git(['status', '--porcelain']) ?? '') !== '' },
  machine: {
    cpu_model: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.cpus().length,
    total_mem_gb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    load_avg_at_start: os.loadavg().map((x) => Math.round(x * 100) / 100),
  },
  settings: {
    rrf_k: RRF_K,
    candidates_per_retriever: CANDIDATES,
    exact_max_vectors: EXACT_MAX_VECTORS,
    hnsw: HNSW_PARAMS,
    lexical_exact_max: LEXICAL_EXACT_MAX,
    common_term_share: COMMON_TERM_SHARE,
    calibration_queries: CALIBRATION_QUERIES,
  },
};

if (sections.includes('vectors')) {
  log('vectors: HNSW libraries against exact search (384 dimensions)');
  const out = [];
  for (const n of sizes) out.push(await compareVectorIndexes(n, 300, log));
  result.vectors = out;
}

if (sections.includes('latency')) {
  log(`latency: hybrid top-10 at ${sizes.join(', ')} chunks (${stores.join(', ')})`);
  // The server's session settings first; with --compare-threading, the others alternated with them.
  const variants = [
    { label: `${threads} threads, no spinning (server default)`, threading: {}, threads },
    ...(values['compare-threading']
      ? [
          { label: `${threads} threads, spinning (EMBEDDING_ORT_SPINNING=1)`, threading: { spinning: true }, threads },
          { label: '1 thread', threading: {}, threads: 1 },
        ]
      : []),
  ];
  const loaded = [];
  try {
    for (const v of variants) loaded.push(await loadEmbedder('minilm', cacheDir, v.threads, { threading: v.threading }));
    const included: IncludedEncoder[] = loaded.map((l, i) => ({ label: variants[i]!.label, embedder: l.embedder }));
    result.latency = { included_embedder: loaded[0]!.embedder.info.model, ...(await measureLatency({ sizes, stores, pgUrl, queries, included, log })) };
  } finally {
    for (const l of loaded) await l.close();
  }
}

if (sections.includes('quality')) {
  log('quality: /usr/share/doc');
  const out = [];
  for (const name of embedders as EmbedderName[]) {
    log(` embedder ${name}`);
    const e = await loadEmbedder(name, cacheDir, threads);
    try {
      out.push(
        ...(await measureQuality({
          embedder: e.embedder,
          embedderName: name,
          stores,
          pgUrl,
          cacheDir,
          questionsFile: path.join(REPO, 'bench/data/rag-questions.json'),
          log,
        })),
      );
    } finally {
      await e.close();
    }
  }
  result.quality = out;
}

if (sections.includes('build')) {
  log(`build: ${buildDocuments} documents of about ${buildBytes} bytes in all (${(embedders as string[]).join(', ')}; ${stores.join(', ')})`);
  const { docs, info } = buildCorpus({ documents: buildDocuments, bytes: buildBytes });
  log(`  corpus: ${info.documents} documents, ${info.bytes} bytes (${info.characters} characters), ${info.passes} passes over ${info.source_documents} files; hash ${info.hash}`);
  const rows: BuildRow[] = [];
  for (const store of stores) {
    for (const name of embedders as EmbedderName[]) {
      log(`  ${name} in ${store} (load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')})`);
      rows.push(await measureBuild({ docs, embedder: name, store, pgUrl, cacheDir, threads, log }));
      log(`    ${JSON.stringify(rows.at(-1))}`);
    }
  }
  result.build = { corpus: info, threads, rows };
}

result.finished_at = new Date().toISOString();
const json = `${JSON.stringify(result, null, 2)}\n`;
if (values['no-save']) process.stdout.write(json);
else {
  fs.mkdirSync(outDir, { recursive: true });
  // A partial run does not overwrite the day's full one.
  const full = sections.length === DEFAULT_SECTIONS.length && DEFAULT_SECTIONS.every((x) => sections.includes(x));
  const file = path.join(outDir, `${result.date as string}-rag${full ? '' : `-${SECTIONS.filter((x) => sections.includes(x)).join('-')}`}.json`);
  fs.writeFileSync(file, json);
  log(`wrote ${path.relative(REPO, file)}`);
}
process.exit(0);
