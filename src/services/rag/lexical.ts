/**
 * The words of a query for the lexical index: Unicode letters and digits,
 * lower-cased, English stop words dropped (unless nothing else is left),
 * each once, at most MAX_TERMS. Only words reach the stores, which stem
 * them and match chunks holding any of them (FTS5 OR, tsquery |).
 */

/** More terms than this add little but cost a posting list each. */
export const MAX_TERMS = 32;

/**
 * Indexes of more chunks than this prune lexical search (RagRepository.lexicalSearch,
 * `commonDocs`): the chunks holding only common terms are not ranked. Smaller
 * indexes rank every chunk that matches, as the vector side is exact below
 * the same size.
 */
export const LEXICAL_EXACT_MAX = 20_000;
/** A term in more than this share of an index's chunks is common (its IDF is then below about 3). */
export const COMMON_TERM_SHARE = 0.05;

/** The lexicalSearch options for an index of `chunks` chunks. */
export const lexicalOptions = (chunks: number, exactMax = LEXICAL_EXACT_MAX): { commonDocs?: number } =>
  chunks > exactMax ? { commonDocs: Math.ceil(COMMON_TERM_SHARE * chunks) } : {};

// Lucene's English stop set, and the question words queries open with: they match most chunks
// (making every lexical query scan the index) and carry no topic. PostgreSQL's english
// configuration drops these too.
const STOP_WORDS = new Set(
  (
    'a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to was will with ' +
    'what which who whom whose how when where why do does did i you we me my your our can could would should has have had its from about'
  ).split(' '),
);

export function lexicalTerms(query: string): string[] {
  const words = [...query.normalize('NFKC').toLowerCase().matchAll(/[\p{L}\p{N}]+/gu)].map((m) => m[0]);
  const unique = [...new Set(words)];
  const content = unique.filter((w) => !STOP_WORDS.has(w));
  return (content.length > 0 ? content : unique).slice(0, MAX_TERMS);
}
