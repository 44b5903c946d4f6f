import { describe, expect, it } from 'vitest';
import {
  combineOverall,
  passRule,
  scoreAccuracy,
  scoreClarity,
  scoreDeterministic,
  scoreFactuality,
  scoreReasoning,
  toScale,
  ACCURACY_THRESHOLDS,
  type CriterionScore,
} from '../../src/services/scoring/criteria.js';
import { JUDGE_RETRY_SUFFIX, judgeCriterion, judgePrompt, parseJudgeOutput } from '../../src/services/scoring/judge.js';
import { mean, percentile, scoreDistribution, summarizeScores, wilsonInterval } from '../../src/services/scoring/stats.js';
import {
  contentWords,
  distinctN,
  endsMidSentence,
  exactMatch,
  lcsLength,
  normalizeText,
  repeatedNgramRatio,
  rougeL,
  sentenceStats,
  splitSentences,
  stem,
  tokenF1,
  tokenize,
} from '../../src/services/scoring/text.js';

describe('scoring/text', () => {
  it('normalizes case, punctuation and spacing; tokenizes unicode words', () => {
    expect(normalizeText('  Hello,   WORLD!! ')).toBe('hello world');
    // inner apostrophe removed, other punctuation and symbols become spaces
    expect(tokenize("Café au lait, s'il vous plaît — 3.5€")).toEqual(['café', 'au', 'lait', 'sil', 'vous', 'plaît', '3', '5']);
    expect(tokenize('Москва — столица России.')).toEqual(['москва', 'столица', 'россии']);
    // Han characters are words of their own
    expect(tokenize('我爱北京')).toEqual(['我', '爱', '北', '京']);
    expect(tokenize('!!! ...')).toEqual([]);
  });

  it('content words drop stopwords; stem strips common suffixes', () => {
    expect(contentWords(tokenize('The cat is on the mat because it was tired'))).toEqual(['cat', 'mat', 'tired']);
    expect(stem('cats')).toBe('cat');
    expect(stem('stories')).toBe('story');
    expect(stem('boxes')).toBe('box');
    expect(stem('makes')).toBe('make');
    expect(stem('played')).toBe('play');
    expect(stem('glass')).toBe('glass');
  });

  it('token F1 by hand', () => {
    // c = [the cat sat on the mat] (6), r = [a cat sat on a mat] (6)
    // overlap {cat, sat, on, mat} = 4 → P = 4/6, R = 4/6, F1 = 2/3
    const a = tokenF1('The cat sat on the mat.', 'A cat sat on a mat');
    expect(a.precision).toBeCloseTo(2 / 3, 10);
    expect(a.recall).toBeCloseTo(2 / 3, 10);
    expect(a.f1).toBeCloseTo(2 / 3, 10);
    // c = [mat the on sat cat] (5), r = [the cat sat on the mat] (6): overlap 5 (multiset)
    // P = 1, R = 5/6, F1 = 2·(5/6)/(11/6) = 10/11
    expect(tokenF1('mat the on sat cat', 'the cat sat on the mat').f1).toBeCloseTo(10 / 11, 10);
    // multiset: "the the the" vs "the": overlap 1 → P = 1/3, R = 1, F1 = 0.5
    expect(tokenF1('the the the', 'the').f1).toBeCloseTo(0.5, 10);
    expect(tokenF1('', '').f1).toBe(1);
    expect(tokenF1('x', '').f1).toBe(0);
  });

  it('ROUGE-L by hand', () => {
    // same order: LCS [cat sat on mat] = 4 → P = R = 4/6 → F = 2/3
    expect(rougeL('The cat sat on the mat.', 'A cat sat on a mat').f1).toBeCloseTo(2 / 3, 10);
    // c = [mat the on sat cat], r = [the cat sat on the mat]: LCS = 2 (e.g. "the sat")
    // P = 2/5, R = 2/6 → F = 2·(2/5)(1/3) / (2/5 + 1/3) = (4/15)/(11/15) = 4/11
    expect(lcsLength(tokenize('mat the on sat cat'), tokenize('the cat sat on the mat'))).toBe(2);
    const r = rougeL('mat the on sat cat', 'the cat sat on the mat');
    expect(r.precision).toBeCloseTo(0.4, 10);
    expect(r.recall).toBeCloseTo(1 / 3, 10);
    expect(r.f1).toBeCloseTo(4 / 11, 10);
    // LCS of [a b c b d a b] and [b d c a b a] is 4 (CLRS example, "b c b a")
    expect(lcsLength('a b c b d a b'.split(' '), 'b d c a b a'.split(' '))).toBe(4);
  });

  it('exact match after normalization', () => {
    expect(exactMatch('The Eiffel Tower!', 'the eiffel   tower')).toBe(true);
    expect(exactMatch('Eiffel Tower', 'The Eiffel Tower')).toBe(false);
  });

  it('distinct-n and repeated 3-gram ratio by hand', () => {
    const t = tokenize('the cat the cat the cat'); // 6 tokens
    // bigrams: tc ct tc ct tc = 5, distinct 2 → 0.4
    expect(distinctN(t, 2)).toBeCloseTo(0.4, 10);
    // trigrams: tct ctc tct ctc = 4, distinct 2 → distinct-3 0.5, repeated 0.5
    expect(repeatedNgramRatio(t, 3)).toBeCloseTo(0.5, 10);
    expect(distinctN(['a', 'b', 'c'], 1)).toBe(1);
    expect(distinctN(['a'], 2)).toBeNull();
    expect(repeatedNgramRatio(['a', 'b'], 3)).toBeNull();
  });

  it('splits sentences, keeping abbreviations, initials and decimals', () => {
    expect(splitSentences('Dr. Smith arrived at 3.30 p.m. today. He left! Did he?')).toEqual([
      'Dr. Smith arrived at 3.30 p.m. today.',
      'He left!',
      'Did he?',
    ]);
    expect(splitSentences('J. K. Rowling wrote it. "Yes," she said.')).toEqual(['J. K. Rowling wrote it.', '"Yes," she said.']);
    expect(splitSentences('line one\nline two')).toEqual(['line one', 'line two']);
    expect(splitSentences('你好。再见！')).toEqual(['你好。', '再见！']);
    expect(splitSentences('1. Heat the water.\n2. Wait.')).toEqual(['1. Heat the water.', '2. Wait.']);
    expect(splitSentences('The answer is no. It is not.')).toEqual(['The answer is no.', 'It is not.']);
    // words per sentence: 3, 1, 5 → mean 3
    expect(sentenceStats('One two three. Four! Five six seven eight nine.')).toEqual({
      count: 3,
      meanWords: 3,
      minWords: 1,
      maxWords: 5,
    });
  });

  it('detects a missing sentence end', () => {
    expect(endsMidSentence('It was a sunny day.')).toBe(false);
    expect(endsMidSentence('"It was," she said.")')).toBe(false);
    expect(endsMidSentence('It was a sunny day and the')).toBe(true);
    expect(endsMidSentence('Is it?  \n')).toBe(false);
  });
});

describe('scoring/stats', () => {
  it('mean', () => {
    expect(mean([1, 2, 3, 4])).toBe(2.5);
    expect(mean([])).toBeNull();
  });

  it('nearest-rank percentiles', () => {
    const xs = [50, 15, 40, 20, 35]; // sorted 15 20 35 40 50
    expect(percentile(xs, 30)).toBe(20); // ceil(1.5) = 2nd
    expect(percentile(xs, 40)).toBe(20); // ceil(2.0) = 2nd
    expect(percentile(xs, 50)).toBe(35); // ceil(2.5) = 3rd
    expect(percentile(xs, 95)).toBe(50); // ceil(4.75) = 5th
    expect(percentile(xs, 100)).toBe(50);
    expect(percentile(xs, 0)).toBe(15);
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(hundred, 50)).toBe(50);
    expect(percentile(hundred, 95)).toBe(95);
    expect(percentile([], 50)).toBeNull();
    expect(() => percentile(xs, 101)).toThrow(RangeError);
  });

  it('Wilson 95% interval, known values', () => {
    // 8/10: center (0.8 + 0.19207)/1.38415 = 0.71673, half 1.41600·sqrt(0.016 + 0.0096037) = 0.22658
    const a = wilsonInterval(8, 10)!;
    expect(a.lower).toBeCloseTo(0.4902, 4);
    expect(a.upper).toBeCloseTo(0.9433, 4);
    const zero = wilsonInterval(0, 10)!;
    expect(zero.lower).toBe(0);
    expect(zero.upper).toBeCloseTo(0.2775, 4);
    const all = wilsonInterval(10, 10)!;
    expect(all.lower).toBeCloseTo(0.7225, 4);
    expect(all.upper).toBe(1);
    // 50/100 → [0.4038, 0.5962]
    const half = wilsonInterval(50, 100)!;
    expect(half.lower).toBeCloseTo(0.4038, 4);
    expect(half.upper).toBeCloseTo(0.5962, 4);
    expect(wilsonInterval(0, 0)).toBeNull();
    expect(() => wilsonInterval(3, 2)).toThrow(RangeError);
  });

  it('distribution buckets sum to the scored count', () => {
    const scores = [5, 4, 4, null, 1, 4];
    const b = scoreDistribution(scores);
    expect(b).toEqual({ '1': 1, '2': 0, '3': 0, '4': 3, '5': 1 });
    const s = summarizeScores(scores);
    expect(s).toEqual({ count: 5, mean: 3.6, min: 1, max: 5, p50: 4 });
    expect(Object.values(b).reduce((x, y) => x + y, 0)).toBe(s.count);
    expect(summarizeScores([null])).toEqual({ count: 0, mean: null, min: null, max: null, p50: null });
  });
});

const EIFFEL_PROMPT = 'Where is the Eiffel Tower?';
const EIFFEL_REF = 'The Eiffel Tower is in Paris, the capital of France.';

describe('scoring/criteria: accuracy', () => {
  const acc = (response: string, reference: string | null = EIFFEL_REF) =>
    scoreAccuracy({ prompt: EIFFEL_PROMPT, response, reference });

  it('maps agreement to 1..5 by the documented thresholds', () => {
    expect(toScale(0.19, ACCURACY_THRESHOLDS)).toBe(1);
    expect(toScale(0.2, ACCURACY_THRESHOLDS)).toBe(2);
    expect(toScale(0.599, ACCURACY_THRESHOLDS)).toBe(4); // shown as 0.60
    expect(toScale(0.8, ACCURACY_THRESHOLDS)).toBe(5);
  });

  it('rises and falls with agreement to the reference (identical > paraphrase > partial > loose > unrelated)', () => {
    // reference tokens: the eiffel tower is in paris the capital of france (10)
    const ladder = [
      // identical: exact match → 5
      'The Eiffel Tower is in Paris, the capital of France.',
      // [the eiffel tower stands in paris frances capital] (8): overlap 6, LCS 6
      // F1 = ROUGE-L = 2·0.75·0.6/1.35 = 0.67 → 4
      "The Eiffel Tower stands in Paris, France's capital.",
      // [it is in france] (4): overlap {is in france} 3, LCS 3; P .75 R .3 → 0.43 → 3
      'It is in France.',
      // [the museum is big] (4): overlap {the is} 2, LCS 2; P .5 R .2 → 0.29 → 2
      'The museum is big.',
      // [bananas are rich in potassium] (5): overlap {in} 1; P .2 R .1 → 0.13 → 1
      'Bananas are rich in potassium.',
    ];
    const scores = ladder.map((r) => acc(r).score);
    expect(scores).toEqual([5, 4, 3, 2, 1]);
    expect(acc(ladder[1]!).rationale).toContain('token F1 0.67, ROUGE-L 0.67');
    expect(acc(ladder[1]!).rationale).toContain('exact match no');
    expect(acc(ladder[0]!).rationale).toContain('exact match yes');
  });

  it('is monotone as reference words are replaced one by one', () => {
    const ref = 'water boils at one hundred degrees celsius at sea level';
    const words = ref.split(' ');
    const filler = ['purple', 'monkeys', 'dance', 'quietly', 'under', 'green', 'lamps', 'every', 'night', 'again'];
    let prevF1 = Infinity;
    let prevScore = Infinity;
    for (let k = 0; k <= words.length; k++) {
      const response = [...filler.slice(0, k), ...words.slice(k)].join(' ');
      const f1 = tokenF1(response, ref).f1;
      const s = acc(response, ref).score!;
      expect(f1).toBeLessThan(prevF1);
      expect(s).toBeLessThanOrEqual(prevScore);
      prevF1 = f1;
      prevScore = s;
    }
    expect(prevScore).toBe(1);
  });

  it('a response containing the whole reference scores at least 3', () => {
    // [the answer is paris because the eiffel tower is there] (10) vs [paris]: F1 = ROUGE-L = 2·0.1·1/1.1 = 0.18 → 1, raised to 3
    const s = acc('The answer is Paris, because the Eiffel Tower is there.', 'Paris');
    expect(s.score).toBe(3);
    expect(s.rationale).toContain('reference contained yes');
  });

  it('is unscored without a reference, never invented', () => {
    for (const reference of [null, undefined, '', '  ...  ']) {
      const s = scoreAccuracy({ prompt: 'p', response: 'r', reference });
      expect(s).toMatchObject({ criterion: 'accuracy', score: null, evaluatorError: 'no_reference' });
    }
  });
});

describe('scoring/criteria: factuality', () => {
  const fact = (response: string, reference: string | null, context: string | null = null) =>
    scoreFactuality({ prompt: EIFFEL_PROMPT, response, reference, context });

  it('measures support of content words by reference + context + prompt', () => {
    // content words {eiffel, tower, paris}: all in the reference → 1.00 → 5
    expect(fact('The Eiffel Tower is in Paris.', EIFFEL_REF).score).toBe(5);
    // {eiffel, tower, rome, italy}: 2 of 4 → 0.50 → 3
    const half = fact('The Eiffel Tower is in Rome, Italy.', EIFFEL_REF);
    expect(half.score).toBe(3);
    expect(half.rationale).toContain('2 of 4 distinct content words supported by reference + prompt (support 0.50)');
    expect(half.rationale).toContain('unsupported: rome, italy');
    // context alone is evidence; "towers" matches "tower" through the stemmer; {towers, paris, steel, made}: 3 of 4 = 0.75 → 4
    expect(fact('Towers in Paris are made of steel.', null, 'The tower in Paris is made of wrought iron.').score).toBe(4);
    expect(fact('Towers in Paris are made of iron.', null, 'The tower in Paris is made of wrought iron.').score).toBe(5);
  });

  it('is unscored without evidence or without content words', () => {
    expect(fact('The Eiffel Tower is in Paris.', null)).toMatchObject({ score: null, evaluatorError: 'no_evidence' });
    expect(fact('It is what it is.', EIFFEL_REF)).toMatchObject({ score: null, evaluatorError: 'no_content' });
  });
});

describe('scoring/criteria: clarity', () => {
  const clar = (response: string, finishReason: 'stop' | 'length' | null = null) =>
    scoreClarity({ prompt: 'p', response, finishReason });
  const clean = 'The cat sat on the mat because it was tired. Then it fell asleep in the warm sun.';

  it('clean text scores 5; a short answer is not penalized', () => {
    expect(clar(clean, 'stop').score).toBe(5);
    expect(clar('Paris.').score).toBe(5);
    expect(clar('Paris').score).toBe(5);
  });

  it('penalizes truncation', () => {
    expect(clar(clean, 'length').score).toBe(4);
    const cut = clar('The cat sat on the mat because it was tired. Then it fell asleep in the');
    expect(cut.score).toBe(4);
    expect(cut.rationale).toContain('truncated −1');
    // finish reason stop is trusted even without final punctuation
    expect(clar('The cat sat on the mat because it was tired. Then it fell asleep in the', 'stop').score).toBe(5);
  });

  it('penalizes repetition and degenerate output', () => {
    // [i like cats]×4: trigrams 10, distinct 3 → repeated 0.70 (−3); bigrams 11, distinct 3 → 0.27 (−3);
    // 4 sentences of 3 words < 4 → choppy −1; 5 − 3 − 1 = 1
    const rep = clar('I like cats. I like cats. I like cats. I like cats.', 'stop');
    expect(rep.score).toBe(1);
    expect(rep.rationale).toContain('repeated 3-gram ratio 0.70, distinct-2 0.27');
    // milder: [the dog ran to the park and the dog ran to the park again] (14 tokens)
    // 12 trigrams, 4 repeat an earlier one (the dog ran, dog ran to, ran to the, to the park) → 0.33 (−2);
    // 13 bigrams, 8 distinct → distinct-2 0.62 (−1); the larger penalty counts: 5 − 2 = 3
    const mild = tokenize('the dog ran to the park and the dog ran to the park again');
    expect(repeatedNgramRatio(mild, 3)).toBeCloseTo(4 / 12, 10);
    expect(distinctN(mild, 2)).toBeCloseTo(8 / 13, 10);
    expect(clar('The dog ran to the park and the dog ran to the park again.', 'stop').score).toBe(3);
    expect(clar('the the the the', 'stop')).toMatchObject({ score: 1 });
    expect(clar('', 'stop')).toMatchObject({ score: 1 });
    expect(clar('?!', 'stop')).toMatchObject({ score: 1 });
  });

  it('penalizes run-on sentences', () => {
    const words = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
    const s = clar(`${words}.`, 'stop');
    expect(s.score).toBe(4);
    expect(s.rationale).toContain('mean 40.0 words');
  });
});

describe('scoring/criteria: reasoning', () => {
  const reason = (response: string) => scoreReasoning({ prompt: 'p', response });

  it('scores visible structure', () => {
    expect(reason('Paris.').score).toBe(1);
    // 3 sentences +1, connectives {because, therefore} +2, sequence {first, then} +1 → 5
    const full = 'First, water is heated. Then it boils because the temperature reaches 100 degrees. Therefore steam forms.';
    expect(reason(full).score).toBe(5);
    expect(reason(full).rationale).toContain('connectives 2 (because, therefore)');
    // a self-correction marker costs a point
    expect(reason(`${full} No wait, that is wrong.`).score).toBe(4);
    // 3 lines (+1), 3 enumerated lines (+1), no connective → 3
    expect(reason('1. Heat the water.\n2. Wait for it to boil.\n3. Pour it.').score).toBe(3);
  });
});

describe('scoring/criteria: overall, scoreDeterministic, passRule', () => {
  const cs = (criterion: CriterionScore['criterion'], score: number | null): CriterionScore => ({
    criterion,
    score,
    rationale: '',
    ...(score === null ? { evaluatorError: 'no_reference' } : {}),
  });

  it('overall is the weighted mean of the scored components, rounded', () => {
    // (0.4·4 + 0.25·3 + 0.25·5 + 0.1·1) / 1.0 = 3.70 → 4
    const a = combineOverall([cs('accuracy', 4), cs('factuality', 3), cs('clarity', 5), cs('reasoning', 1)]);
    expect(a.score).toBe(4);
    expect(a.rationale).toContain('= 3.70 → 4');
    // without accuracy and factuality: (0.25·5 + 0.1·1) / 0.35 = 3.86 → 4
    expect(combineOverall([cs('accuracy', null), cs('factuality', null), cs('clarity', 5), cs('reasoning', 1)]).score).toBe(4);
    // (0.4·2 + 0.25·3) / 0.65 = 2.38 → 2
    expect(combineOverall([cs('accuracy', 2), cs('clarity', 3)]).score).toBe(2);
    expect(combineOverall([cs('accuracy', null)])).toMatchObject({ score: null, evaluatorError: 'no_scored_criteria' });
  });

  it('scoreDeterministic scores the requested criteria once each, overall from all components', () => {
    const input = { prompt: EIFFEL_PROMPT, response: 'The Eiffel Tower is in Paris, the capital of France.', reference: EIFFEL_REF };
    const out = scoreDeterministic(input, ['overall', 'accuracy', 'overall']);
    expect(out.map((s) => s.criterion)).toEqual(['overall', 'accuracy']);
    for (const s of out) {
      expect(Number.isInteger(s.score)).toBe(true);
      expect(s.rationale).toMatch(/→ \d/);
    }
    expect(out[1]!.score).toBe(5);
    // overall counts accuracy, factuality, clarity, reasoning even when only overall is requested
    expect(out[0]!.rationale).toContain('accuracy 5');
    expect(out[0]!.rationale).toContain('factuality');
    const noRef = scoreDeterministic({ prompt: 'p', response: 'A short answer.' }, ['accuracy', 'factuality', 'overall']);
    expect(noRef.map((s) => s.evaluatorError ?? null)).toEqual(['no_reference', 'no_evidence', null]);
    expect(noRef[2]!.rationale).toContain('not counted: accuracy (no_reference), factuality (no_evidence)');
  });

  it('passRule: every required criterion (default overall) scored and ≥ 3', () => {
    const scores = [cs('overall', 3), cs('accuracy', null), cs('clarity', 2)];
    expect(passRule(scores).pass).toBe(true);
    expect(passRule(scores, { required_criteria: [] }).required).toEqual(['overall']);
    const r = passRule(scores, { required_criteria: ['accuracy', 'clarity', 'reasoning'] });
    expect(r.pass).toBe(false);
    expect(r.failures).toEqual([
      { criterion: 'accuracy', score: null, reason: 'unscored' },
      { criterion: 'clarity', score: 2, reason: 'below_threshold' },
      { criterion: 'reasoning', score: null, reason: 'not_evaluated' },
    ]);
    expect(passRule([cs('overall', 3)], null, { minScore: 4 }).pass).toBe(false);
    expect(passRule([cs('overall', 3)], null, { minScore: 4, perCriterion: { overall: 3 } }).pass).toBe(true);
  });
});

describe('scoring/judge', () => {
  const input = { prompt: 'Where is the Eiffel Tower?', response: 'In Paris.', reference: 'Paris', context: null };

  it('judgePrompt carries the rubric, the texts and the JSON demand', () => {
    const p = judgePrompt('accuracy', input);
    expect(p).toContain('Accuracy:');
    expect(p).toContain('REFERENCE ANSWER:\nParis');
    expect(p).toContain('RESPONSE:\nIn Paris.');
    expect(p).not.toContain('CONTEXT:');
    expect(p).toContain('{"score": <integer 1 to 5>, "rationale": "<one sentence>"}');
    const long = judgePrompt('clarity', { ...input, response: 'x'.repeat(50) }, { maxFieldChars: 10 });
    expect(long).toContain(`${'x'.repeat(10)} [… truncated, 40 more characters]`);
  });

  it('parses strict JSON, with text around it', () => {
    expect(parseJudgeOutput('{"score": 4, "rationale": "good"}')).toEqual({ score: 4, rationale: 'good' });
    expect(parseJudgeOutput('Sure! {"score": 5, "rationale": "Matches {the} \\"reference\\"."} Thanks')).toEqual({
      score: 5,
      rationale: 'Matches {the} "reference".',
    });
    expect(parseJudgeOutput('Score {1-5}: {"score": 2, "rationale": "weak", "extra": true}')).toEqual({ score: 2, rationale: 'weak' });
    expect(parseJudgeOutput('{"score": 3.0, "rationale": "ok"}')).toEqual({ score: 3, rationale: 'ok' });
  });

  it('rejects invalid scores, missing rationale and non-JSON', () => {
    for (const bad of [
      '{"score": 6, "rationale": "x"}',
      '{"score": 0, "rationale": "x"}',
      '{"score": 4.5, "rationale": "x"}',
      '{"score": "4", "rationale": "x"}',
      '{"score": 3}',
      '{"score": 3, "rationale": "  "}',
      '{"score": 3, "rationale": 7}',
      '{"score": 3, "rationale": "x"',
      'I would give it a 4.',
      '',
      '{"result": {"score": 3, "rationale": "x"}}',
    ]) {
      expect(parseJudgeOutput(bad), bad).toBeNull();
    }
  });

  const fake = (...replies: string[]) => {
    const calls: Array<{ prompt: string; attempt: number }> = [];
    const generate = async (prompt: string, attempt: number) => {
      calls.push({ prompt, attempt });
      return replies[calls.length - 1] ?? '';
    };
    return { calls, generate };
  };

  it('scores on the first valid reply', async () => {
    const f = fake('{"score": 4, "rationale": "close"}');
    const s = await judgeCriterion(f.generate, 'accuracy', input);
    expect(s).toEqual({ criterion: 'accuracy', score: 4, rationale: 'model judge (attempt 1): close' });
    expect(f.calls).toHaveLength(1);
  });

  it('retries once: bad then good is scored', async () => {
    const f = fake('I think it is good', 'ok: {"score": 3, "rationale": "partly"}');
    const s = await judgeCriterion(f.generate, 'clarity', input);
    expect(s.score).toBe(3);
    expect(s.evaluatorError).toBeUndefined();
    expect(f.calls.map((c) => c.attempt)).toEqual([1, 2]);
    expect(f.calls[1]!.prompt).toBe(f.calls[0]!.prompt + JUDGE_RETRY_SUFFIX);
  });

  it('bad twice is parse_error, never a number', async () => {
    const f = fake('{"score": 9, "rationale": "x"}', 'nope', '{"score": 5, "rationale": "never asked"}');
    const s = await judgeCriterion(f.generate, 'overall', input);
    expect(s.score).toBeNull();
    expect(s.evaluatorError).toBe('parse_error');
    expect(s.rationale).toMatch(/^judge output was not valid JSON twice: /);
    expect(s.rationale).toContain('"nope"');
    expect(f.calls).toHaveLength(2);
  });

  it('accuracy without a reference is unscored without calling the model', async () => {
    const f = fake('{"score": 5, "rationale": "x"}');
    const s = await judgeCriterion(f.generate, 'accuracy', { prompt: 'p', response: 'r' });
    expect(s).toMatchObject({ score: null, evaluatorError: 'no_reference' });
    expect(f.calls).toHaveLength(0);
  });

  it('errors from generate propagate', async () => {
    await expect(
      judgeCriterion(async () => {
        throw new Error('engine down');
      }, 'clarity', input),
    ).rejects.toThrow('engine down');
  });
});
