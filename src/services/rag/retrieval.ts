/**
 * Retrieval over one ready index: lexical candidates from the store's
 * full-text index, dense candidates from the vectors in memory, both
 * restricted by the metadata filter, fused with reciprocal rank fusion.
 */
import type { MetadataFilter, RagChunk, RagIndex, RagRepository } from '../../storage/types.js';
import type { RagMode } from '../rag-schema.js';
import type { DenseIndexes } from './dense-indexes.js';
import type { EmbedderSource } from './index-builder.js';
import { RagModelMismatchError } from './errors.js';
import { EQUAL_WEIGHTS, reciprocalRankFusion } from './fusion.js';
import { LEXICAL_EXACT_MAX, lexicalOptions, lexicalTerms } from './lexical.js';

/** Candidates each retriever contributes at least (the fused list is cut to top_k after fusion). */
export const CANDIDATES = 50;
/** Candidates per retriever for a request: CANDIDATES, or twice top_k when that is more. */
export const candidateDepth = (topK: number) => Math.max(CANDIDATES, 2 * topK);

export interface RetrievalQuery {
  query: string;
  topK: number;
  mode: RagMode;
  filter?: MetadataFilter | undefined;
  signal?: AbortSignal;
}

/** A retrieved chunk and how it got its place. */
export interface RetrievedChunk {
  chunk: RagChunk;
  /** hybrid: the (weighted) RRF score; lexical: the store's text relevance (bm25 in SQLite, ts_rank in PostgreSQL); dense: cosine similarity. */
  score: number;
  /** 1-based rank among the lexical candidates; null when not among them (or not searched). */
  lexicalRank: number | null;
  /** 1-based rank among the dense candidates; null when not among them (or not searched). */
  denseRank: number | null;
}

export interface Retrieval {
  results: RetrievedChunk[];
  /** How many candidates each retriever gave (0 for one not searched). */
  candidates: { lexical: number; dense: number };
  /** Milliseconds spent embedding the query (0 in lexical mode). */
  embeddingMs: number;
  /** How the dense candidates were found; null in lexical mode. */
  denseMethod: 'exact' | 'hnsw' | null;
}

export class Retriever {
  constructor(
    private readonly storage: RagRepository,
    private readonly dense: DenseIndexes,
    private readonly embedder: EmbedderSource,
    /** Above this many chunks lexical search is pruned (LEXICAL_EXACT_MAX; benchmarks vary it). */
    private readonly lexicalExactMax = LEXICAL_EXACT_MAX,
  ) {}

  /** The top_k chunks of a ready index for the query. */
  async retrieve(index: RagIndex, q: RetrievalQuery): Promise<Retrieval> {
    const depth = candidateDepth(q.topK);
    const wantDense = q.mode !== 'lexical';
    const wantLexical = q.mode !== 'dense';
    // The query is embedded while the store searches (PostgreSQL answers asynchronously).
    const lexicalP = wantLexical
      ? this.storage.lexicalSearch(index.id, lexicalTerms(q.query), q.filter, depth, lexicalOptions(index.chunkCount, this.lexicalExactMax))
      : Promise.resolve([]);
    // Unobserved until awaited below; a dense failure must not leave the lexical promise's rejection unhandled.
    lexicalP.catch(() => {});
    let embeddingMs = 0;
    let denseHits: Array<{ key: number; score: number }> = [];
    let denseMethod: Retrieval['denseMethod'] = null;
    if (wantDense) {
      const embedder = this.embedder.require();
      if (embedder.info.model !== index.embeddingModel || embedder.info.dimensions !== index.embeddingDimensions) {
        throw new RagModelMismatchError(index, embedder.info.model);
      }
      const started = performance.now();
      const [vector] = (await embedder.embed([q.query], { truncate: true, signal: q.signal })).vectors;
      embeddingMs = performance.now() - started;
      const vectors = await this.dense.get(index);
      denseHits = vectors.search(vector!, depth, q.filter);
      denseMethod = vectors.vectors.method;
    }
    const lexicalHits = await lexicalP;

    const ranked =
      q.mode === 'hybrid'
        ? reciprocalRankFusion(
            lexicalHits.map((h) => h.key),
            denseHits.map((h) => h.key),
            { weights: index.fusion ?? EQUAL_WEIGHTS },
          )
        : q.mode === 'lexical'
          ? lexicalHits.map((h, i) => ({ key: h.key, score: h.score, lexicalRank: i + 1, denseRank: null }))
          : denseHits.map((h, i) => ({ key: h.key, score: h.score, lexicalRank: null, denseRank: i + 1 }));
    const top = ranked.slice(0, q.topK);
    const rows = new Map((await this.storage.chunks(index.id, top.map((h) => h.key))).map((c) => [c.key, c]));
    return {
      // A chunk deleted since its vectors were loaded (a rebuild under way elsewhere) is left out.
      results: top.flatMap((h) => {
        const chunk = rows.get(h.key);
        return chunk ? [{ chunk, score: h.score, lexicalRank: h.lexicalRank, denseRank: h.denseRank }] : [];
      }),
      candidates: { lexical: lexicalHits.length, dense: denseHits.length },
      embeddingMs,
      denseMethod,
    };
  }
}
