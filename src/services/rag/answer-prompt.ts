/**
 * The prompt of a retrieval-augmented answer (POST /v1/rag): the retrieved
 * chunks numbered [1]..[k], best first, then the question. The model is
 * asked to answer from them only and to cite them by number, so that the
 * citations a client shows can be checked against the sources.
 *
 * As many chunks are used as fit the model's context window together with
 * the question and the tokens the answer may take; the rest are left out,
 * worst first. A request never overflows the window and never fails for it.
 */

export interface SourceChunk {
  docId: string;
  text: string;
}

export interface AnswerPrompt {
  prompt: string;
  /** How many of the ranked chunks the prompt holds (a prefix of the ranking). */
  used: number;
}

/** The template's fixed text; `{sources}` and `{question}` are filled in. Documented in the README. */
export const ANSWER_TEMPLATE =
  'Answer the question using only the numbered sources below. ' +
  'Cite the sources you use by their numbers, like [1] or [2][3]. ' +
  'If the sources do not contain the answer, say that you do not know.\n\n' +
  'Sources:\n{sources}\n' +
  'Question: {question}\nAnswer:';

/** One numbered source as it appears in the prompt. */
export const formatSource = (n: number, chunk: SourceChunk): string => `[${n}] (${chunk.docId}) ${chunk.text.trim()}\n`;

export function renderAnswerPrompt(question: string, chunks: readonly SourceChunk[]): string {
  const sources = chunks.length > 0 ? chunks.map((c, i) => formatSource(i + 1, c)).join('') : '(none)\n';
  // A function replacement: `$` in a chunk or question must stay literal.
  return ANSWER_TEMPLATE.replace('{sources}', () => sources).replace('{question}', () => question.trim());
}

/**
 * The prompt with the most chunks, in rank order, whose tokens plus
 * `reserve` (the answer's max_new_tokens, cut to the window) fit in
 * `contextWindow`. `countTokens` counts what the model reads (special
 * tokens included). With no chunk fitting, the prompt says there are none.
 */
export function fitAnswerPrompt(
  question: string,
  ranked: readonly SourceChunk[],
  opts: { contextWindow: number; reserve: number; countTokens: (text: string) => number },
): AnswerPrompt {
  const fits = (k: number) => opts.countTokens(renderAnswerPrompt(question, ranked.slice(0, k))) + opts.reserve <= opts.contextWindow;
  // Prompt length grows with k, so the largest k that fits is found by bisection.
  let lo = 0;
  let hi = ranked.length;
  if (!fits(0)) hi = 0;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return { prompt: renderAnswerPrompt(question, ranked.slice(0, lo)), used: lo };
}
