/**
 * Deterministic evaluation criteria, computed from the texts alone. Every
 * criterion is an integer on one scale, 1 (worst) to 5 (best), or null with
 * an `evaluatorError` when it cannot be measured; each rationale states the
 * measured numbers. The rules and thresholds are documented in
 * docs/evaluation.md; the constants below are the single source of them.
 */
import {
  containsSequence,
  contentWords,
  distinctN,
  endsMidSentence,
  exactMatch,
  normalizeText,
  repeatedNgramRatio,
  rougeL,
  sentenceStats,
  stem,
  tokenF1,
  tokenize,
} from './text.js';

export const CRITERIA = ['accuracy', 'clarity', 'reasoning', 'factuality', 'overall'] as const;
export type Criterion = (typeof CRITERIA)[number];
/** The criterion used when a request names none (evaluations, batch runs, distributions). */
export const DEFAULT_CRITERION: Criterion = 'overall';
export type ComponentCriterion = Exclude<Criterion, 'overall'>;

export interface CriterionScore {
  criterion: Criterion;
  /** Integer SCORE_MIN..SCORE_MAX, or null when unscored (see evaluatorError). */
  score: number | null;
  rationale: string;
  /** Why the criterion is unscored: 'no_reference', 'no_evidence', 'no_content', 'parse_error'. */
  evaluatorError?: string;
}

export interface ScoringInput {
  prompt: string;
  response: string;
  reference?: string | null;
  context?: string | null;
  /** How generation ended, when the response was generated here; null/absent for a given response. */
  finishReason?: 'stop' | 'length' | null;
}

export const SCORE_MIN = 1;
export const SCORE_MAX = 5;

/** Four ascending cut points t2..t5: a value ≥ t_k scores k (below t2 scores 1). */
export type Thresholds = readonly [number, number, number, number];

/** Accuracy: agreement = mean(token F1, ROUGE-L F) against the reference. */
export const ACCURACY_THRESHOLDS: Thresholds = [0.2, 0.4, 0.6, 0.8];
/** Accuracy floor when the whole reference occurs contiguously in the response. */
export const ACCURACY_CONTAINED_FLOOR = 3;
/** Factuality: share of the response's distinct content words found in the evidence. */
export const FACTUALITY_THRESHOLDS: Thresholds = [0.25, 0.5, 0.75, 0.9];

/** Clarity: repeated 3-gram ratio at or above these loses 1, 2, 3 points. */
export const CLARITY_REPEATED_3GRAM: readonly [number, number, number] = [0.1, 0.25, 0.5];
/** Clarity: distinct-2 below these loses 1, 2, 3 points (the larger of the two repetition penalties counts). */
export const CLARITY_DISTINCT_2: readonly [number, number, number] = [0.75, 0.6, 0.4];
/** Clarity: comfortable mean sentence length in words (the lower bound applies from two sentences on). */
export const CLARITY_SENTENCE_BAND: readonly [number, number] = [4, 35];
/** Clarity: responses shorter than this many words are not judged truncated by punctuation alone. */
export const CLARITY_MIN_WORDS_FOR_PUNCTUATION = 4;

/** Reasoning: causal and contrastive connectives (matched as whole words or phrases). */
export const REASONING_CONNECTIVES: readonly string[] = [
  'because', 'since', 'so', 'therefore', 'thus', 'hence', 'consequently', 'as a result', 'which means',
  'this means', 'that means', 'due to', 'if', 'otherwise', 'however', 'although',
];
/** Reasoning: sequence markers; two distinct ones count as steps. */
export const REASONING_SEQUENCE_MARKERS: readonly string[] = [
  'first', 'firstly', 'second', 'secondly', 'third', 'thirdly', 'next', 'then', 'finally', 'lastly', 'after that',
];
/** Reasoning: self-contradiction / self-correction markers; any one loses a point. */
export const REASONING_CONTRADICTION_MARKERS: readonly string[] = [
  'no wait', 'wait no', 'actually no', 'on second thought', 'i was wrong', 'that is wrong', 'thats wrong',
  'scratch that', 'contradict', 'contradicts', 'contradiction',
];
const ENUMERATED_LINE = /^[ \t]*(?:\d{1,3}[.)]|[-*•]|step\s+\d{1,3}\s*[:.)]?)[ \t]+\S/gimu;

/** Overall: weights of the components; the weighted mean is over the scored ones only. */
export const OVERALL_WEIGHTS: Readonly<Record<ComponentCriterion, number>> = {
  accuracy: 0.4,
  factuality: 0.25,
  clarity: 0.25,
  reasoning: 0.1,
};

/** A measured number as shown in rationales (two decimals); thresholds compare this value. */
export function round2(x: number): number {
  return Number(x.toFixed(2));
}
const fmt = (x: number) => x.toFixed(2);
const clamp = (x: number) => Math.min(SCORE_MAX, Math.max(SCORE_MIN, x));

/** 1 + the number of cut points the (two-decimal) value reaches. */
export function toScale(value: number, thresholds: Thresholds): number {
  const v = round2(value);
  return SCORE_MIN + thresholds.filter((t) => v >= t).length;
}

const unscored = (criterion: Criterion, evaluatorError: string, rationale: string): CriterionScore => ({
  criterion,
  score: null,
  rationale,
  evaluatorError,
});

const hasWords = (s: string | null | undefined): s is string => s != null && tokenize(s).length > 0;

/**
 * Accuracy against the reference: exact match scores 5; otherwise
 * agreement = (token F1 + ROUGE-L F) / 2 on ACCURACY_THRESHOLDS, raised to
 * ACCURACY_CONTAINED_FLOOR when the reference occurs whole in the response.
 * No reference (or one without words): unscored, 'no_reference'.
 */
export function scoreAccuracy(input: ScoringInput): CriterionScore {
  if (!hasWords(input.reference)) {
    return unscored('accuracy', 'no_reference', 'no reference answer to compare with: accuracy is not scored');
  }
  const resp = tokenize(input.response);
  const ref = tokenize(input.reference);
  const em = exactMatch(input.response, input.reference);
  const f1 = tokenF1(resp, ref).f1;
  const rl = rougeL(resp, ref).f1;
  const agreement = (f1 + rl) / 2;
  const contained = containsSequence(resp, ref);
  let score = em ? SCORE_MAX : toScale(agreement, ACCURACY_THRESHOLDS);
  let note = em ? 'exact match' : `agreement ${fmt(agreement)}`;
  if (!em && contained && score < ACCURACY_CONTAINED_FLOOR) {
    score = ACCURACY_CONTAINED_FLOOR;
    note += `, raised to ${ACCURACY_CONTAINED_FLOOR} because the reference occurs whole in the response`;
  }
  return {
    criterion: 'accuracy',
    score,
    rationale:
      `token F1 ${fmt(f1)}, ROUGE-L ${fmt(rl)} (agreement = their mean ${fmt(agreement)}), ` +
      `exact match ${em ? 'yes' : 'no'}, reference contained ${contained ? 'yes' : 'no'} ` +
      `against the reference (${ref.length} words; response ${resp.length} words); ${note} → ${score}`,
  };
}

/**
 * Factuality: the share of the response's distinct content words (not
 * stopwords) found, after {@link stem}, among the words of the reference,
 * the context and the prompt; on FACTUALITY_THRESHOLDS. Without a reference
 * and without a context: unscored, 'no_evidence'. A response with no content
 * word: unscored, 'no_content'.
 */
export function scoreFactuality(input: ScoringInput): CriterionScore {
  const sources: Array<[string, string | null | undefined]> = [
    ['reference', input.reference],
    ['context', input.context],
  ];
  const present = sources.filter(([, text]) => hasWords(text));
  if (present.length === 0) {
    return unscored('factuality', 'no_evidence', 'no reference and no context to check the response against: factuality is not scored');
  }
  const evidenceNames = [...present.map(([name]) => name), 'prompt'];
  const evidence = new Set<string>();
  for (const text of [...present.map(([, t]) => t as string), input.prompt]) {
    for (const t of tokenize(text)) {
      evidence.add(t);
      evidence.add(stem(t));
    }
  }
  const words = [...new Set(contentWords(tokenize(input.response)))];
  if (words.length === 0) {
    return unscored('factuality', 'no_content', 'the response has no content words to check: factuality is not scored');
  }
  const unsupported = words.filter((w) => !evidence.has(w) && !evidence.has(stem(w)));
  const supported = words.length - unsupported.length;
  const share = supported / words.length;
  const score = toScale(share, FACTUALITY_THRESHOLDS);
  const shown = unsupported.slice(0, 8).join(', ') + (unsupported.length > 8 ? `, … (${unsupported.length - 8} more)` : '');
  return {
    criterion: 'factuality',
    score,
    rationale:
      `${supported} of ${words.length} distinct content words supported by ${evidenceNames.join(' + ')} ` +
      `(support ${fmt(share)})${unsupported.length ? `; unsupported: ${shown}` : ''} → ${score}`,
  };
}

/**
 * Clarity: 1 for degenerate output (no words, or one word repeated ≥ 3
 * times); otherwise 5 minus penalties: repetition (the larger of the
 * repeated-3-gram and distinct-2 penalties, 0..3), truncation (1), mean
 * sentence length outside CLARITY_SENTENCE_BAND (1); at least 1.
 */
export function scoreClarity(input: ScoringInput): CriterionScore {
  const tokens = tokenize(input.response);
  if (tokens.length === 0) {
    return { criterion: 'clarity', score: SCORE_MIN, rationale: 'degenerate: the response has no words → 1' };
  }
  const distinct = new Set(tokens).size;
  if (tokens.length >= 3 && distinct === 1) {
    return {
      criterion: 'clarity',
      score: SCORE_MIN,
      rationale: `degenerate: one word ("${tokens[0]}") repeated ${tokens.length} times → 1`,
    };
  }
  const parts: string[] = [];
  const penalties: string[] = [];

  const r3 = repeatedNgramRatio(tokens, 3);
  const d2 = distinctN(tokens, 2);
  const r3Pen = r3 === null ? 0 : CLARITY_REPEATED_3GRAM.filter((t) => round2(r3) >= t).length;
  const d2Pen = d2 === null ? 0 : CLARITY_DISTINCT_2.filter((t) => round2(d2) < t).length;
  const repetition = Math.max(r3Pen, d2Pen);
  parts.push(`repeated 3-gram ratio ${r3 === null ? 'n/a (under 3 words)' : fmt(r3)}`);
  parts.push(`distinct-2 ${d2 === null ? 'n/a (under 2 words)' : fmt(d2)}`);
  if (repetition > 0) penalties.push(`repetition −${repetition}`);

  const finish = input.finishReason ?? null;
  const noFinalPunct = endsMidSentence(input.response);
  const truncated =
    finish === 'length' || (finish !== 'stop' && tokens.length >= CLARITY_MIN_WORDS_FOR_PUNCTUATION && noFinalPunct);
  parts.push(`finish reason ${finish ?? 'not given'}`);
  parts.push(noFinalPunct ? 'no sentence-final punctuation at the end' : 'ends a sentence');
  if (truncated) penalties.push('truncated −1');

  const stats = sentenceStats(input.response);
  const [low, high] = CLARITY_SENTENCE_BAND;
  parts.push(`${stats.count} sentence${stats.count === 1 ? '' : 's'}, mean ${stats.meanWords.toFixed(1)} words (band ${low}–${high})`);
  const mean = Number(stats.meanWords.toFixed(1));
  if (mean > high) penalties.push('run-on sentences −1');
  else if (stats.count >= 2 && mean < low) penalties.push('choppy sentences −1');
  const lengthPen = mean > high || (stats.count >= 2 && mean < low) ? 1 : 0;

  const score = clamp(SCORE_MAX - repetition - (truncated ? 1 : 0) - lengthPen);
  return {
    criterion: 'clarity',
    score,
    rationale: `${parts.join(', ')}; ${penalties.length ? `penalties: ${penalties.join(', ')}` : 'no penalties'} → ${score}`,
  };
}

function phrasesIn(normalized: string, phrases: readonly string[]): string[] {
  const padded = ` ${normalized} `;
  return phrases.filter((p) => padded.includes(` ${p} `));
}

/**
 * Reasoning (a heuristic for visible structure, not for truth): 1 + points,
 * at most 5: two or more sentences +1; distinct connectives: one +1, two or
 * more +2; steps (two or more enumerated lines, or two or more distinct
 * sequence markers) +1; any self-contradiction marker −1.
 */
export function scoreReasoning(input: ScoringInput): CriterionScore {
  const normalized = normalizeText(input.response);
  const stats = sentenceStats(input.response);
  const connectives = phrasesIn(normalized, REASONING_CONNECTIVES);
  const sequence = phrasesIn(normalized, REASONING_SEQUENCE_MARKERS);
  const contradictions = phrasesIn(normalized, REASONING_CONTRADICTION_MARKERS);
  const enumerated = (input.response.match(ENUMERATED_LINE) ?? []).length;

  const points: string[] = [];
  let score = SCORE_MIN;
  if (stats.count >= 2) {
    score += 1;
    points.push('multiple sentences +1');
  }
  const connPts = Math.min(2, connectives.length);
  if (connPts > 0) {
    score += connPts;
    points.push(`connectives +${connPts}`);
  }
  const steps = enumerated >= 2 || sequence.length >= 2;
  if (steps) {
    score += 1;
    points.push('steps +1');
  }
  if (contradictions.length > 0) {
    score -= 1;
    points.push('self-contradiction −1');
  }
  score = clamp(score);
  const list = (xs: string[]) => (xs.length ? `${xs.length} (${xs.join(', ')})` : '0');
  return {
    criterion: 'reasoning',
    score,
    rationale:
      `${stats.count} sentence${stats.count === 1 ? '' : 's'}, connectives ${list(connectives)}, ` +
      `sequence markers ${list(sequence)}, enumerated lines ${enumerated}, ` +
      `self-contradiction markers ${list(contradictions)}; ` +
      `1 ${points.length ? `+ ${points.join(', ')}` : '(no structure found)'} → ${score} ` +
      '(a heuristic for structure, not for truth)',
  };
}

/**
 * Overall: the weighted mean (OVERALL_WEIGHTS) of the scored components,
 * weights renormalized over those scored, shown to two decimals and rounded
 * half up. Unscored ('no_scored_criteria') when no component is scored.
 */
export function combineOverall(components: readonly CriterionScore[]): CriterionScore {
  const scored: Array<{ c: ComponentCriterion; s: number; w: number }> = [];
  const skipped: string[] = [];
  for (const cs of components) {
    if (cs.criterion === 'overall') continue;
    const w = OVERALL_WEIGHTS[cs.criterion];
    if (cs.score === null) skipped.push(`${cs.criterion} (${cs.evaluatorError ?? 'unscored'})`);
    else scored.push({ c: cs.criterion, s: cs.score, w });
  }
  const skippedText = skipped.length ? `; not counted: ${skipped.join(', ')}` : '';
  if (scored.length === 0) {
    return unscored('overall', 'no_scored_criteria', `no component criterion was scored${skippedText}`);
  }
  const wsum = scored.reduce((a, x) => a + x.w, 0);
  const mean = scored.reduce((a, x) => a + x.w * x.s, 0) / wsum;
  const score = clamp(Math.floor(round2(mean) + 0.5));
  return {
    criterion: 'overall',
    score,
    rationale:
      `weighted mean of ${scored.map((x) => `${x.c} ${x.s} (weight ${x.w})`).join(', ')} ` +
      `= ${fmt(mean)} → ${score}${skippedText}`,
  };
}

const COMPONENT_SCORERS: Readonly<Record<ComponentCriterion, (input: ScoringInput) => CriterionScore>> = {
  accuracy: scoreAccuracy,
  clarity: scoreClarity,
  reasoning: scoreReasoning,
  factuality: scoreFactuality,
};

/**
 * Scores the requested criteria (duplicates dropped, order kept).
 * `overall` combines all four components, computed whether requested or not.
 */
export function scoreDeterministic(input: ScoringInput, criteria: readonly Criterion[]): CriterionScore[] {
  const cache = new Map<ComponentCriterion, CriterionScore>();
  const component = (c: ComponentCriterion) => {
    let s = cache.get(c);
    if (!s) {
      s = COMPONENT_SCORERS[c](input);
      cache.set(c, s);
    }
    return s;
  };
  return [...new Set(criteria)].map((c) =>
    c === 'overall'
      ? combineOverall((['accuracy', 'factuality', 'clarity', 'reasoning'] as const).map(component))
      : component(c),
  );
}

export interface PassThresholds {
  /** Minimum score of every required criterion (default 3). */
  minScore: number;
  /** Per-criterion minimums that replace minScore. */
  perCriterion?: Partial<Record<Criterion, number>>;
}
export const DEFAULT_PASS_THRESHOLDS: PassThresholds = { minScore: 3 };

export interface PassFailure {
  criterion: string;
  score: number | null;
  /** not_evaluated: the criterion is not among the scores; unscored: its score is null; below_threshold. */
  reason: 'not_evaluated' | 'unscored' | 'below_threshold';
}
export interface PassResult {
  pass: boolean;
  /** The criteria the rule checked. */
  required: string[];
  failures: PassFailure[];
  rationale: string;
}

/**
 * The per-record pass rule: every required criterion (expected.required_criteria;
 * missing or empty: ["overall"]) must be among the scores, scored, and at
 * least its threshold (default 3). A latency bound (expected.max_latency_ms)
 * is the caller's to check.
 */
export function passRule(
  scores: readonly CriterionScore[],
  expected?: { required_criteria?: readonly string[] | null } | null,
  thresholds: PassThresholds = DEFAULT_PASS_THRESHOLDS,
): PassResult {
  const required = expected?.required_criteria?.length ? [...new Set(expected.required_criteria)] : ['overall'];
  const failures: PassFailure[] = [];
  const checks: string[] = [];
  for (const criterion of required) {
    const min = thresholds.perCriterion?.[criterion as Criterion] ?? thresholds.minScore;
    const s = scores.find((x) => x.criterion === criterion);
    if (!s) {
      failures.push({ criterion, score: null, reason: 'not_evaluated' });
      checks.push(`${criterion} not evaluated`);
    } else if (s.score === null) {
      failures.push({ criterion, score: null, reason: 'unscored' });
      checks.push(`${criterion} unscored (${s.evaluatorError ?? 'no score'})`);
    } else if (s.score < min) {
      failures.push({ criterion, score: s.score, reason: 'below_threshold' });
      checks.push(`${criterion} ${s.score} < ${min}`);
    } else {
      checks.push(`${criterion} ${s.score} ≥ ${min}`);
    }
  }
  const pass = failures.length === 0;
  return { pass, required, failures, rationale: `${pass ? 'pass' : 'fail'}: ${checks.join(', ')}` };
}
