/**
 * Model-as-judge: the rubric prompt, the strict parser of the judge's JSON
 * and the retry-once policy. The model itself is called through the
 * `generate` function the caller passes in; nothing here does I/O.
 * Documented in docs/evaluation.md.
 */
import { SCORE_MAX, SCORE_MIN, type Criterion, type CriterionScore } from './criteria.js';

export interface JudgeInput {
  prompt: string;
  response: string;
  reference?: string | null;
  context?: string | null;
}

export interface JudgeOptions {
  /** Each text placed in the judge prompt is cut to this many characters (default 2000). */
  maxFieldChars?: number;
}

export const JUDGE_MAX_FIELD_CHARS = 2000;

/** What each criterion asks the judge, with the meaning of 1 and 5. */
export const JUDGE_RUBRICS: Readonly<Record<Criterion, string>> = {
  accuracy:
    'Accuracy: does the response give the same answer as the reference answer? ' +
    '5 = same answer, 4 = same answer with minor differences, 3 = partly the same, 2 = mostly different, 1 = wrong or unrelated.',
  factuality:
    'Factuality: is every statement in the response supported by the reference and the context? ' +
    '5 = everything supported, 4 = nearly everything, 3 = about half, 2 = little, 1 = mostly unsupported or invented.',
  clarity:
    'Clarity: is the response easy to read, without repetition, without being cut off, in well-formed sentences? ' +
    '5 = very clear, 4 = clear, 3 = understandable with problems, 2 = hard to follow, 1 = incoherent, repetitive or empty.',
  reasoning:
    'Reasoning: does the response explain how it reaches its answer, in connected, ordered steps, without contradicting itself? ' +
    '5 = clear complete steps, 4 = good steps, 3 = some explanation, 2 = little, 1 = none or self-contradictory.',
  overall:
    'Overall quality: how good is the response as an answer to the prompt, considering accuracy, factual support, clarity and reasoning? ' +
    '5 = excellent, 4 = good, 3 = acceptable, 2 = poor, 1 = unacceptable.',
};

/**
 * The JSON schema of a judge's reply, which the model judge generates under
 * (constrained decoding): exactly what parseJudgeOutput accepts, so a reply
 * fails to parse only when the token limit cuts it. The rationale starts
 * with a letter or digit (never blank) and stays within plain punctuation.
 */
export const JUDGE_REPLY_SCHEMA = {
  type: 'object',
  properties: {
    score: { type: 'integer', minimum: SCORE_MIN, maximum: SCORE_MAX },
    rationale: { type: 'string', pattern: "^[A-Za-z0-9][A-Za-z0-9 ,.;:'()!?-]{0,159}$" },
  },
  required: ['score', 'rationale'],
  additionalProperties: false,
} as const;

/** Appended to the prompt of the second attempt. */
export const JUDGE_RETRY_SUFFIX =
  '\nYour previous reply was not a valid JSON object. Reply with only the JSON object, nothing else.\nJSON:';

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)} [… truncated, ${text.length - max} more characters]`;
}

/**
 * The rubric prompt for one criterion: the rubric, the texts (each cut to
 * maxFieldChars), and the demand for exactly {"score": 1-5, "rationale": "..."}.
 */
export function judgePrompt(criterion: Criterion, input: JudgeInput, options: JudgeOptions = {}): string {
  const max = options.maxFieldChars ?? JUDGE_MAX_FIELD_CHARS;
  const sections = [
    'You are a strict evaluator. Grade the RESPONSE on one criterion.',
    JUDGE_RUBRICS[criterion],
    '',
    `PROMPT:\n${cut(input.prompt, max)}`,
  ];
  if (input.reference != null && input.reference.trim() !== '') sections.push(`REFERENCE ANSWER:\n${cut(input.reference, max)}`);
  if (input.context != null && input.context.trim() !== '') sections.push(`CONTEXT:\n${cut(input.context, max)}`);
  sections.push(`RESPONSE:\n${cut(input.response, max)}`);
  sections.push(
    '',
    `Reply with only a JSON object of this form: {"score": <integer ${SCORE_MIN} to ${SCORE_MAX}>, "rationale": "<one sentence>"}`,
    'JSON:',
  );
  return sections.join('\n');
}

/** End index (exclusive) of the balanced {...} starting at `start`, skipping braces inside JSON strings; -1 if none. */
function balancedEnd(text: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === '{') depth++;
    else if (ch === '}') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/**
 * Strict parse of a judge reply: the first balanced {...} in the text that is
 * valid JSON and a plain object (text around it is ignored) must have
 * `score`, a JSON number that is an integer in 1..5, and `rationale`, a
 * non-empty string. Anything else — no object, a string "4", 4.5, 0, 6, a
 * missing or empty rationale — gives null.
 */
export function parseJudgeOutput(text: string): { score: number; rationale: string } | null {
  for (let start = text.indexOf('{'); start !== -1; start = text.indexOf('{', start + 1)) {
    const end = balancedEnd(text, start);
    if (end === -1) continue;
    let value: unknown;
    try {
      value = JSON.parse(text.slice(start, end));
    } catch {
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) continue;
    const { score, rationale } = value as Record<string, unknown>;
    if (typeof score !== 'number' || !Number.isInteger(score) || score < SCORE_MIN || score > SCORE_MAX) return null;
    if (typeof rationale !== 'string' || rationale.trim() === '') return null;
    return { score, rationale: rationale.trim() };
  }
  return null;
}

const excerpt = (s: string) => JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}…` : s);

/**
 * Judges one criterion: generate(prompt, 1); on an unparseable reply,
 * generate(prompt + JUDGE_RETRY_SUFFIX, 2); on a second failure the criterion
 * is unscored with evaluatorError 'parse_error'. Accuracy without a
 * reference ('no_reference') and factuality without reference or context
 * ('no_evidence') are unscored without calling the model, as in the
 * deterministic scorer. Errors thrown by generate propagate.
 */
export async function judgeCriterion(
  generate: (prompt: string, attempt: number) => Promise<string>,
  criterion: Criterion,
  input: JudgeInput,
  options: JudgeOptions = {},
): Promise<CriterionScore> {
  const has = (s: string | null | undefined) => s != null && s.trim() !== '';
  if (criterion === 'accuracy' && !has(input.reference)) {
    return { criterion, score: null, evaluatorError: 'no_reference', rationale: 'no reference answer to compare with: accuracy is not scored' };
  }
  if (criterion === 'factuality' && !has(input.reference) && !has(input.context)) {
    return {
      criterion,
      score: null,
      evaluatorError: 'no_evidence',
      rationale: 'no reference and no context to check the response against: factuality is not scored',
    };
  }
  const prompt = judgePrompt(criterion, input, options);
  const first = await generate(prompt, 1);
  const parsed1 = parseJudgeOutput(first);
  if (parsed1) return { criterion, score: parsed1.score, rationale: `model judge (attempt 1): ${parsed1.rationale}` };
  const second = await generate(prompt + JUDGE_RETRY_SUFFIX, 2);
  const parsed2 = parseJudgeOutput(second);
  if (parsed2) return { criterion, score: parsed2.score, rationale: `model judge (attempt 2): ${parsed2.rationale}` };
  return {
    criterion,
    score: null,
    evaluatorError: 'parse_error',
    rationale: `judge output was not valid JSON twice: attempt 1 ${excerpt(first)}; attempt 2 ${excerpt(second)}`,
  };
}

/** Judges each requested criterion in turn (duplicates dropped), `overall` included with its own rubric. */
export async function judgeCriteria(
  generate: (prompt: string, attempt: number) => Promise<string>,
  criteria: readonly Criterion[],
  input: JudgeInput,
  options: JudgeOptions = {},
): Promise<CriterionScore[]> {
  const out: CriterionScore[] = [];
  for (const c of new Set(criteria)) out.push(await judgeCriterion(generate, c, input, options));
  return out;
}
