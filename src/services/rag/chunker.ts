/**
 * Token-aware chunking of a document for retrieval. Pure: the embedding
 * model's tokenizer comes in as a function.
 *
 * The text is read as words (runs of non-space), each with the strength of
 * the boundary after it: a paragraph (a blank line, or the end), a sentence
 * (., !, ? or … closing a word that is not a known abbreviation, before a
 * word that does not start in lower case), a line break, or a plain space.
 * A chunk takes as many words as fit its token budget and ends at the
 * strongest boundary that leaves it at least half full (the latest of
 * equals); the next chunk starts up to `overlap` tokens earlier, at a
 * sentence start when one is that close, else at a word. A word longer than
 * the budget (a URL, a base64 blob, text without spaces) is cut by
 * characters. Chunks keep their span in the document in Unicode code
 * points, so `[...doc].slice(start, end).join('')` is the chunk's text.
 */
import { createHash } from 'node:crypto';

/** The defaults of an index build (contract additions: chunk_tokens, chunk_overlap). */
export const DEFAULT_CHUNK_TOKENS = 256;
export const DEFAULT_CHUNK_OVERLAP = 32;
/** A chunk ends early at a paragraph or sentence boundary only once it holds this share of its budget. */
export const MIN_FILL = 0.5;

export interface ChunkerOptions {
  /** Most content tokens in a chunk (the tokenizer's special tokens excluded). */
  maxTokens: number;
  /** Most tokens a chunk repeats from the end of the one before it (less than maxTokens). */
  overlap: number;
  /** Content tokens of a text, special tokens excluded (see contentTokenCounter). */
  tokens: (text: string) => number;
}

export interface TextChunk {
  /** Position among the document's chunks (0-based). */
  ordinal: number;
  /** Span in the document, in Unicode code points, end exclusive. */
  start: number;
  end: number;
  text: string;
  /** Content tokens of `text`. */
  tokens: number;
}

/** Boundary strengths, weakest first. */
const SPACE = 0;
const LINE = 1;
const SENTENCE = 2;
const PARAGRAPH = 3;

const ABBREVIATIONS = new Set(['e.g.', 'i.e.', 'mr.', 'mrs.', 'ms.', 'dr.', 'prof.', 'vs.', 'cf.', 'fig.', 'no.', 'st.', 'approx.', 'resp.', 'ca.']);
const SENTENCE_END = /[.!?…]["'”’)\]]*$/u;

function endsSentence(word: string, next: string | undefined): boolean {
  if (!SENTENCE_END.test(word)) return false;
  const bare = word.replace(/["'”’)\]]+$/u, '').toLowerCase();
  if (ABBREVIATIONS.has(bare)) return false;
  // "J." (an initial) and "3." (a list number) end no sentence.
  if (/^(?:\p{L}|\d+)\.$/u.test(bare)) return false;
  return next === undefined || !/^\p{Ll}/u.test(next);
}

interface Word {
  /** UTF-16 offsets in the document. */
  start: number;
  end: number;
  tokens: number;
  /** Strength of the boundary after this word. */
  after: number;
}

/**
 * A content-token counter over a tokenizer's `countTokens` (which counts
 * special tokens too): what an empty text costs is taken off. Memoized
 * per word, since words repeat.
 */
export function contentTokenCounter(countTokens: (text: string) => number): { tokens: (text: string) => number; overhead: number } {
  const overhead = countTokens('');
  const memo = new Map<string, number>();
  return {
    overhead,
    tokens: (text) => {
      if (text.length > 64) return Math.max(0, countTokens(text) - overhead);
      let n = memo.get(text);
      if (n === undefined) {
        n = Math.max(0, countTokens(text) - overhead);
        if (memo.size < 100_000) memo.set(text, n);
      }
      return n;
    },
  };
}

/** Cuts one over-long word into pieces of at most `max` tokens, at code point boundaries. */
function splitWord(text: string, start: number, end: number, max: number, tokens: (s: string) => number): Word[] {
  const out: Word[] = [];
  let from = start;
  while (from < end) {
    // Longest prefix that fits (binary search on UTF-16 offsets, never inside a surrogate pair).
    let lo = from + 1;
    let hi = end;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (tokens(text.slice(from, mid)) <= max) lo = mid;
      else hi = mid - 1;
    }
    let to = lo;
    if (to < end && /[\uDC00-\uDFFF]/.test(text[to]!) && to - 1 > from) to--;
    out.push({ start: from, end: to, tokens: tokens(text.slice(from, to)), after: SPACE });
    from = to;
  }
  return out;
}

/** The document's words with their token costs and the boundaries after them. */
function wordsOf(text: string, max: number, tokens: (s: string) => number): Word[] {
  const spans = [...text.matchAll(/\S+/gu)].map((m) => ({ start: m.index, end: m.index + m[0].length }));
  const out: Word[] = [];
  spans.forEach((w, i) => {
    const next = spans[i + 1];
    const word = text.slice(w.start, w.end);
    let after: number;
    if (next === undefined) after = PARAGRAPH;
    else {
      const gap = text.slice(w.end, next.start);
      const breaks = gap.split('\n').length - 1;
      after = breaks >= 2 ? PARAGRAPH : endsSentence(word, text.slice(next.start, next.end)) ? SENTENCE : breaks === 1 ? LINE : SPACE;
    }
    const cost = tokens(word);
    if (cost <= max) {
      out.push({ start: w.start, end: w.end, tokens: cost, after });
      return;
    }
    const pieces = splitWord(text, w.start, w.end, max, tokens);
    pieces[pieces.length - 1]!.after = after;
    out.push(...pieces);
  });
  return out;
}

/** UTF-16 offset → code point offset, for texts with characters beyond the BMP. */
function codePointOffsets(text: string): (utf16: number) => number {
  if (!/[\uD800-\uDFFF]/.test(text)) return (o) => o;
  const pairsBefore = new Uint32Array(text.length + 1);
  for (let i = 0; i < text.length; i++) {
    const low = i > 0 && /[\uDC00-\uDFFF]/.test(text[i]!) && /[\uD800-\uDBFF]/.test(text[i - 1]!);
    pairsBefore[i + 1] = pairsBefore[i]! + (low ? 1 : 0);
  }
  return (o) => o - pairsBefore[o]!;
}

/**
 * Cuts a document into chunks of at most `maxTokens` content tokens (see the
 * module comment for where cuts and overlaps fall). A text with no words
 * gives no chunks.
 */
export function chunkText(text: string, opts: ChunkerOptions): TextChunk[] {
  const { maxTokens: max, tokens } = opts;
  if (!Number.isInteger(max) || max < 1) throw new RangeError(`maxTokens must be a positive integer, got ${max}`);
  if (!Number.isInteger(opts.overlap) || opts.overlap < 0 || opts.overlap >= max) {
    throw new RangeError(`overlap must be an integer in 0..${max - 1}, got ${opts.overlap}`);
  }
  const words = wordsOf(text, max, tokens);
  const n = words.length;
  // prefix[i]: tokens of words[0..i). Word costs add up exactly for WordPiece and closely for BPE;
  // each chunk is counted whole below and shortened if the sum was optimistic.
  const prefix = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) prefix[i + 1] = prefix[i]! + words[i]!.tokens;
  const span = (s: number, e: number) => text.slice(words[s]!.start, words[e - 1]!.end);
  const toCp = codePointOffsets(text);

  const chunks: TextChunk[] = [];
  let s = 0;
  while (s < n) {
    let e = s + 1;
    while (e < n && prefix[e + 1]! - prefix[s]! <= max) e++;
    let cut = e;
    if (e < n) {
      // The strongest boundary in the window that leaves the chunk at least MIN_FILL full; the latest of equals.
      let best = e;
      for (let j = e; j > s; j--) {
        if (prefix[j]! - prefix[s]! < MIN_FILL * max && j < e) break;
        if (words[j - 1]!.after > words[best - 1]!.after) best = j;
      }
      cut = best;
    }
    let chunkTokens = tokens(span(s, cut));
    while (chunkTokens > max && cut - s > 1) {
      cut--;
      chunkTokens = tokens(span(s, cut));
    }
    chunks.push({
      ordinal: chunks.length,
      start: toCp(words[s]!.start),
      end: toCp(words[cut - 1]!.end),
      text: span(s, cut),
      tokens: chunkTokens,
    });
    if (cut >= n) break;
    s = overlapStart(words, prefix, s, cut, opts.overlap);
  }
  return chunks;
}

/**
 * Where the chunk after [s, cut) starts: as far back as `overlap` tokens
 * allow, at the earliest sentence (or paragraph) start in that reach when
 * there is one, else at the earliest word; never at or before `s`.
 */
function overlapStart(words: Word[], prefix: Float64Array, s: number, cut: number, overlap: number): number {
  let earliest = cut;
  while (earliest - 1 > s && prefix[cut]! - prefix[earliest - 1]! <= overlap) earliest--;
  if (earliest === cut) return cut;
  for (let j = earliest; j < cut; j++) if (words[j - 1]!.after >= SENTENCE) return j;
  return earliest;
}

/**
 * A chunk's id: a hash of its document id, span and text. The same document
 * cut the same way (same options, same tokenizer) gives the same ids on
 * every build; a different cut never reuses one.
 */
export function chunkId(docId: string, c: Pick<TextChunk, 'start' | 'end' | 'text'>): string {
  const h = createHash('sha256').update(`${docId}\u0000${c.start}\u0000${c.end}\u0000${c.text}`).digest('hex');
  return `ch_${h.slice(0, 24)}`;
}
