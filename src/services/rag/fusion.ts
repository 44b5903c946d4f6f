/**
 * Reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009): a
 * chunk's fused score is the sum over the ranked lists it appears in of
 * w / (k + rank), ranks from 1, w the list's weight (1 and 1 is the
 * paper's plain RRF; calibration.ts sets them per index). Scores of
 * different retrievers (bm25, cosine) are never compared, only their
 * orders, so no normalisation is needed; k damps the weight of the very top
 * ranks.
 */

/** The paper's constant, also Elasticsearch's and OpenSearch's default. */
export const RRF_K = 60;

export interface FusedHit {
  key: number;
  /** Sum of weight / (RRF_K + rank) over the lists that hold the key. */
  score: number;
  /** 1-based rank in the lexical list; null when not in it. */
  lexicalRank: number | null;
  /** 1-based rank in the dense list; null when not in it. */
  denseRank: number | null;
}

export interface FusionWeights {
  lexical: number;
  dense: number;
}

/** Plain RRF. */
export const EQUAL_WEIGHTS: FusionWeights = { lexical: 1, dense: 1 };

/**
 * Fuses two ranked lists of keys (best first). Ties in score go to the
 * key with the better single rank, then the lower key, so the order is
 * deterministic.
 */
export function reciprocalRankFusion(
  lexical: readonly number[],
  dense: readonly number[],
  { weights = EQUAL_WEIGHTS, k = RRF_K }: { weights?: FusionWeights; k?: number } = {},
): FusedHit[] {
  const hits = new Map<number, FusedHit>();
  const add = (keys: readonly number[], field: 'lexicalRank' | 'denseRank', weight: number) => {
    keys.forEach((key, i) => {
      let h = hits.get(key);
      if (!h) {
        h = { key, score: 0, lexicalRank: null, denseRank: null };
        hits.set(key, h);
      }
      // A key listed twice in one list counts at its best rank only.
      if (h[field] !== null) return;
      h[field] = i + 1;
      h.score += weight / (k + i + 1);
    });
  };
  add(lexical, 'lexicalRank', weights.lexical);
  add(dense, 'denseRank', weights.dense);
  const best = (h: FusedHit) => Math.min(h.lexicalRank ?? Infinity, h.denseRank ?? Infinity);
  return [...hits.values()].sort((a, b) => b.score - a.score || best(a) - best(b) || a.key - b.key);
}
