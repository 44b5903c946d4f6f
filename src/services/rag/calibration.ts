/**
 * Per-index fusion weights, measured when a build ends. Plain RRF trusts
 * both retrievers equally; a weak embedding model (the decoder fallback, a
 * model that does not know the corpus's language or domain) then pushes
 * unrelated chunks into the top ranks and makes hybrid worse than lexical
 * alone. So each index measures its two retrievers on pseudo-queries drawn
 * from its own chunks (a sentence from the middle of a chunk, whose answer
 * is that chunk's document), takes each one's MRR@10, and weighs each list
 * in the fusion by the square of its MRR relative to the better one's
 * ("performance-square" weighting, which Wu and McClean found better than
 * weights linear in performance for linear fusion: S. Wu, Data Fusion in
 * Information Retrieval, Springer 2012, ch. 5). Equal retrievers give plain
 * RRF (1 and 1); a dense side half as good weighs 0.25; one no better than
 * chance gets a weight near 0 (RRF's ranks sit close, 1/61 against 1/62, so
 * even a tenth of a weight reorders neighbours). No labels are needed, and
 * the weights are reported with the index (GET /v1/rag/indexes/{id}, `fusion`).
 */
import type { MetadataFilter, RagFusion, RagIndex, RagRepository } from '../../storage/types.js';
import type { Embedder } from '../embeddings/types.js';
import type { DenseIndex } from './dense-indexes.js';
import { lexicalTerms } from './lexical.js';

/** Pseudo-queries per calibration: enough for a stable MRR, cheap next to any build. */
export const CALIBRATION_QUERIES = 64;
/** Ranks a pseudo-query's document is looked for in (MRR@10). */
const DEPTH = 10;
const MIN_WORDS = 5;
const MAX_WORDS = 40;

/**
 * A question-sized piece of a chunk: its middle sentence of 5 to 40 words,
 * or else 12 words from its middle; null for a chunk of fewer than 5 words.
 */
export function pseudoQuery(text: string): string | null {
  const sentences = text
    .split(/(?<=[.!?])\s+|\n\s*\n/)
    .map((s) => s.trim().split(/\s+/).filter(Boolean))
    .filter((w) => w.length >= MIN_WORDS && w.length <= MAX_WORDS);
  if (sentences.length > 0) return sentences[Math.floor(sentences.length / 2)]!.join(' ');
  const words = text.split(/\s+/).filter(Boolean);
  if (words.length < MIN_WORDS) return null;
  const mid = Math.floor(words.length / 2);
  return words.slice(Math.max(0, mid - 6), mid + 6).join(' ');
}

/** Mean reciprocal rank of each query's target in its ranked list (0 when absent from the first DEPTH). */
function mrr(ranked: number[][], targets: number[]): number {
  let sum = 0;
  ranked.forEach((docs, i) => {
    const at = docs.slice(0, DEPTH).indexOf(targets[i]!);
    if (at >= 0) sum += 1 / (at + 1);
  });
  return targets.length === 0 ? 0 : sum / targets.length;
}

const round4 = (x: number) => Math.round(x * 10_000) / 10_000;

/** Weights from the two MRRs: the better retriever 1, the other the square of its share; 1 and 1 when nothing was measured. */
export function fusionWeights(queries: number, lexicalMrr: number, denseMrr: number): RagFusion {
  const best = Math.max(lexicalMrr, denseMrr);
  if (queries === 0 || best === 0) return { lexical: 1, dense: 1, queries, lexicalMrr: round4(lexicalMrr), denseMrr: round4(denseMrr) };
  const weight = (mrr: number) => round4((mrr / best) ** 2);
  return { lexical: weight(lexicalMrr), dense: weight(denseMrr), queries, lexicalMrr: round4(lexicalMrr), denseMrr: round4(denseMrr) };
}

/**
 * Measures both retrievers of a built index on up to CALIBRATION_QUERIES
 * pseudo-queries from chunks spread evenly over it, and returns its fusion
 * weights.
 */
export async function calibrateFusion(deps: {
  storage: RagRepository;
  index: RagIndex;
  dense: DenseIndex;
  embedder: Embedder;
  /** The options retrieval searches this index with (lexicalOptions). */
  lexical: { commonDocs?: number };
  signal?: AbortSignal;
}): Promise<RagFusion> {
  const { storage, index, dense, embedder } = deps;
  const slots = dense.vectors.size;
  const picked = [...new Set(Array.from({ length: Math.min(CALIBRATION_QUERIES, slots) }, (_, i) => Math.floor((i * slots) / Math.min(CALIBRATION_QUERIES, slots))))];
  const chunks = await storage.chunks(index.id, picked.map((slot) => dense.vectors.keys[slot]!));
  const samples = chunks.flatMap((c) => {
    const q = pseudoQuery(c.text);
    return q === null ? [] : [{ query: q, doc: c.docIndex }];
  });
  if (samples.length === 0) return fusionWeights(0, 0, 0);
  const docOf = dense.documentsByKey();
  const none: MetadataFilter | undefined = undefined;
  const lexical: number[][] = [];
  for (const s of samples) {
    if (deps.signal?.aborted) throw new Error('calibration aborted');
    const hits = await storage.lexicalSearch(index.id, lexicalTerms(s.query), none, DEPTH, deps.lexical);
    lexical.push(hits.map((h) => docOf.get(h.key) ?? -1));
  }
  const vectors: Float32Array[] = [];
  for (let i = 0; i < samples.length; i += 32) {
    const batch = samples.slice(i, i + 32).map((s) => s.query);
    vectors.push(...(await embedder.embed(batch, { truncate: true, ...(deps.signal ? { signal: deps.signal } : {}) })).vectors);
  }
  const denseRanked = vectors.map((v) => dense.search(v, DEPTH).map((h) => docOf.get(h.key) ?? -1));
  const targets = samples.map((s) => s.doc);
  return fusionWeights(samples.length, mrr(lexical, targets), mrr(denseRanked, targets));
}
