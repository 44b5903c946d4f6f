/**
 * Text measurements for evaluation scoring: normalization, tokenization,
 * token F1, ROUGE-L, exact match, n-gram repetition and sentence statistics.
 * Pure functions, no I/O. The rules are explained in docs/evaluation.md.
 */

/** Apostrophes inside a word are removed ("don't" → "dont"), as in SQuAD's normalization. */
const INNER_APOSTROPHE = /(?<=[\p{L}\p{N}])['’ʼ`](?=[\p{L}\p{N}])/gu;
/** Everything that is not a letter, combining mark, number or whitespace is punctuation. */
const NON_WORD = /[^\p{L}\p{M}\p{N}\s]+/gu;
/** Scripts written without spaces: every character is a word of its own. */
const CJK_CHAR = /([\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}])/gu;
const WORD = /[\p{L}\p{M}\p{N}]+/gu;

/**
 * Normalized form of a text: Unicode NFKC, lower case, inner apostrophes
 * removed, every other punctuation or symbol replaced by a space, Han/kana
 * characters spaced apart, whitespace collapsed to single spaces, trimmed.
 */
export function normalizeText(text: string): string {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .replace(INNER_APOSTROPHE, '')
    .replace(NON_WORD, ' ')
    .replace(CJK_CHAR, ' $1 ')
    .replace(/\s+/gu, ' ')
    .trim();
}

/** Words of the normalized text (runs of \p{L}\p{M}\p{N}; each Han/kana character alone). */
export function tokenize(text: string): string[] {
  return normalizeText(text).match(WORD) ?? [];
}

/** English function words; what remains after removing them are "content words". */
export const STOPWORDS: ReadonlySet<string> = new Set(
  (
    'a about above after again against all also am an and any are as at be because been before being below ' +
    'between both but by can could did do does doing done down during each either else even ever few for from ' +
    'further had has have having he her here hers herself him himself his how i if in into is it its itself ' +
    'just let lets like may me might more most must my myself neither no nor not now of off on once only or ' +
    'other ought our ours ourselves out over own same shall she should so some such than that thats the their ' +
    'theirs them themselves then there these they this those through thus to too under until up upon us very ' +
    'was we were what when where whether which while who whom whose why will with would yet you your yours ' +
    'yourself yourselves its im ive id youre youve theyre theyve weve isnt arent wasnt werent dont doesnt didnt ' +
    'cant cannot couldnt wont wouldnt shouldnt hasnt havent hadnt s t'
  ).split(' '),
);

/** Tokens that are not stopwords (order and repeats kept). */
export function contentWords(tokens: readonly string[], stopwords: ReadonlySet<string> = STOPWORDS): string[] {
  return tokens.filter((t) => !stopwords.has(t));
}

/**
 * A crude English suffix stripper used only to match content words with their
 * evidence ("cats" ~ "cat", "played" ~ "play", "boxes" ~ "box"): -ies → -y;
 * else -ing or -ed when at least three characters remain; else -es after
 * sh/ch/x/ss/z; else a final -s (not -ss) on words of four or more letters.
 */
export function stem(word: string): string {
  if (word.length > 4 && word.endsWith('ies')) return `${word.slice(0, -3)}y`;
  for (const suffix of ['ing', 'ed']) {
    if (word.endsWith(suffix) && word.length - suffix.length >= 3) return word.slice(0, -suffix.length);
  }
  if (/(?:sh|ch|x|ss|z)es$/u.test(word) && word.length >= 5) return word.slice(0, -2);
  if (word.endsWith('s') && !word.endsWith('ss') && word.length >= 4) return word.slice(0, -1);
  return word;
}

export interface PRF {
  precision: number;
  recall: number;
  f1: number;
}

function fMeasure(precision: number, recall: number): number {
  return precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
}

/**
 * SQuAD-style token F1 between a candidate and a reference: overlap is the
 * size of the multiset intersection of their tokens; precision = overlap /
 * |candidate|, recall = overlap / |reference|. Both empty: 1; one empty: 0.
 */
export function tokenF1(candidate: string | readonly string[], reference: string | readonly string[]): PRF {
  const c = typeof candidate === 'string' ? tokenize(candidate) : candidate;
  const r = typeof reference === 'string' ? tokenize(reference) : reference;
  if (c.length === 0 && r.length === 0) return { precision: 1, recall: 1, f1: 1 };
  if (c.length === 0 || r.length === 0) return { precision: 0, recall: 0, f1: 0 };
  const counts = new Map<string, number>();
  for (const t of r) counts.set(t, (counts.get(t) ?? 0) + 1);
  let overlap = 0;
  for (const t of c) {
    const n = counts.get(t) ?? 0;
    if (n > 0) {
      overlap++;
      counts.set(t, n - 1);
    }
  }
  const precision = overlap / c.length;
  const recall = overlap / r.length;
  return { precision, recall, f1: fMeasure(precision, recall) };
}

/**
 * ROUGE-L works on at most this many tokens of each side (the dynamic
 * programme is |a|·|b| cells: 4,000² = 16M, tens of milliseconds).
 */
export const ROUGE_L_MAX_TOKENS = 4000;

/** Length of the longest common subsequence of two token sequences. */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  if (a.length === 0 || b.length === 0) return 0;
  // Map tokens to small integers so the inner loop compares numbers.
  const ids = new Map<string, number>();
  const id = (t: string) => {
    let v = ids.get(t);
    if (v === undefined) {
      v = ids.size;
      ids.set(t, v);
    }
    return v;
  };
  const [long, short] = a.length >= b.length ? [a, b] : [b, a];
  const s = Int32Array.from(short, id);
  let prev = new Int32Array(s.length + 1);
  let cur = new Int32Array(s.length + 1);
  for (const tok of long) {
    const x = id(tok);
    for (let j = 1; j <= s.length; j++) {
      cur[j] = s[j - 1] === x ? prev[j - 1]! + 1 : Math.max(prev[j]!, cur[j - 1]!);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[s.length]!;
}

/**
 * ROUGE-L (sentence-level, β = 1): precision = LCS / |candidate|, recall =
 * LCS / |reference|, F = their harmonic mean. Each side is cut to its first
 * {@link ROUGE_L_MAX_TOKENS} tokens. Both empty: 1; one empty: 0.
 */
export function rougeL(candidate: string | readonly string[], reference: string | readonly string[]): PRF {
  const c = (typeof candidate === 'string' ? tokenize(candidate) : candidate).slice(0, ROUGE_L_MAX_TOKENS);
  const r = (typeof reference === 'string' ? tokenize(reference) : reference).slice(0, ROUGE_L_MAX_TOKENS);
  if (c.length === 0 && r.length === 0) return { precision: 1, recall: 1, f1: 1 };
  if (c.length === 0 || r.length === 0) return { precision: 0, recall: 0, f1: 0 };
  const lcs = lcsLength(c, r);
  const precision = lcs / c.length;
  const recall = lcs / r.length;
  return { precision, recall, f1: fMeasure(precision, recall) };
}

/** Exact match after {@link normalizeText} (case, punctuation and spacing ignored). */
export function exactMatch(a: string, b: string): boolean {
  return normalizeText(a) === normalizeText(b);
}

/** True when the reference's tokens occur contiguously, in order, in the candidate's tokens. */
export function containsSequence(haystack: readonly string[], needle: readonly string[]): boolean {
  if (needle.length === 0) return true;
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** The n-grams of a token sequence, each joined with U+0001. */
export function ngrams(tokens: readonly string[], n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i + n <= tokens.length; i++) out.push(tokens.slice(i, i + n).join('\u0001'));
  return out;
}

/** distinct-n: distinct n-grams / all n-grams; null when there is no n-gram. */
export function distinctN(tokens: readonly string[], n: number): number | null {
  const grams = ngrams(tokens, n);
  return grams.length === 0 ? null : new Set(grams).size / grams.length;
}

/**
 * Repeated n-gram ratio: the share of n-gram occurrences that repeat an
 * n-gram seen earlier in the text, (all − distinct) / all = 1 − distinct-n;
 * null when there is no n-gram.
 */
export function repeatedNgramRatio(tokens: readonly string[], n = 3): number | null {
  const d = distinctN(tokens, n);
  return d === null ? null : 1 - d;
}

const ABBREVIATIONS = new Set([
  'mr', 'mrs', 'ms', 'dr', 'prof', 'sr', 'jr', 'st', 'vs', 'etc', 'e.g', 'i.e', 'a.m', 'p.m', 'fig', 'approx', 'cf',
]);
/**
 * Sentence ends: a run of . ! ? … (with closing quotes or brackets) followed by
 * whitespace or the end; 。！？; or a line break.
 */
const BOUNDARY = /[.!?…]+["'”’)\]]*(?=\s|$)|[。！？]+["'”’」』)\]]*|\n/gu;

/**
 * Splits a text into sentences at {@link BOUNDARY}, except after a single "."
 * that follows a known abbreviation (Mr., e.g., p.m., etc.), a single-letter
 * initial, or a list number alone at the start of a sentence ("1. Heat the
 * water."). Returns the trimmed, non-empty pieces.
 */
export function splitSentences(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (const m of text.matchAll(BOUNDARY)) {
    const end = m.index + m[0].length;
    if (m[0] === '.' || /^\.["'”’)\]]*$/u.test(m[0])) {
      const before = /(\S+)$/u.exec(text.slice(start, m.index))?.[1] ?? '';
      const word = before.toLowerCase().replace(/^[^\p{L}\p{N}]+/u, '');
      if (ABBREVIATIONS.has(word) || /^\p{L}$/u.test(word)) continue;
      // "1." or "12)" opening a numbered list item is a marker, not a sentence.
      if (/^\d{1,3}$/u.test(text.slice(start, m.index).trim())) continue;
    }
    const piece = text.slice(start, end).trim();
    if (piece) out.push(piece);
    start = end;
  }
  const rest = text.slice(start).trim();
  if (rest) out.push(rest);
  return out;
}

export interface SentenceStats {
  /** Sentences that contain at least one word. */
  count: number;
  /** Mean words per sentence (0 when there is no sentence). */
  meanWords: number;
  minWords: number;
  maxWords: number;
}

/** Word counts (by {@link tokenize}) of the sentences of {@link splitSentences} that have words. */
export function sentenceStats(text: string): SentenceStats {
  const lengths = splitSentences(text)
    .map((s) => tokenize(s).length)
    .filter((n) => n > 0);
  if (lengths.length === 0) return { count: 0, meanWords: 0, minWords: 0, maxWords: 0 };
  return {
    count: lengths.length,
    meanWords: lengths.reduce((a, b) => a + b, 0) / lengths.length,
    minWords: lengths.reduce((a, b) => Math.min(a, b)),
    maxWords: lengths.reduce((a, b) => Math.max(a, b)),
  };
}

/**
 * True when the text does not end with sentence-final punctuation
 * (. ! ? … 。！？), ignoring trailing whitespace, closing quotes and brackets,
 * and markdown emphasis or code fences.
 */
export function endsMidSentence(text: string): boolean {
  const t = text.replace(/[\s"'”’」』)\]*_`]+$/u, '');
  if (t === '') return false;
  return !/[.!?…。！？]$/u.test(t);
}
