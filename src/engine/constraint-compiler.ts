import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { UnsupportedConstraintError } from './errors.js';
import { applyTokenMask } from './logits-processors.js';
import { checkConstraint, type OutputConstraint } from './response-format.js';
import type { TokenVocabulary } from './token-vocabulary.js';
import type { TokenConstraint } from './types.js';
import { xgrammar, type XgCompiledGrammar, type XgGrammar, type XgGrammarCompiler, type XgGrammarMatcher } from './xgrammar.js';

/**
 * Constrained decoding over xgrammar (WebAssembly): the tokenizer's strings
 * are preprocessed once (xgrammar's TokenizerInfo sorts them into a trie
 * and classifies them); each constraint is checked, turned into a grammar
 * and compiled once, then cached by the hash of its canonical JSON (the
 * compiled grammar holds the token masks of its context-independent
 * states); each generation gets its own matcher, whose per-step mask is
 * computed from its current state (a persistent stack, advanced by one
 * token per step).
 *
 * JSON is generated compact with fixed separators (", " and ": ", no other
 * whitespace outside strings), so a model can never loop on whitespace;
 * numbers and integers without a range are bounded the same way (see
 * boundNumbers); properties a schema does not list are not generated
 * unless its additionalProperties allows them (xgrammar's strict mode).
 */
export class ConstraintCompiler {
  private readonly cache: LRUCache<string, Promise<CompiledConstraint>>;
  /** Compilations done (cache misses) and their total milliseconds. */
  readonly stats = { compiled: 0, cacheHits: 0, compileMs: 0 };

  private constructor(
    private readonly compiler: XgGrammarCompiler,
    /** Width of the masks: the tokenizer's vocabulary with the model's unused ids. */
    readonly vocabSize: number,
    cacheSize: number,
  ) {
    this.cache = new LRUCache({
      max: cacheSize,
      // A running matcher holds its own reference to the compiled grammar (xgrammar shares it), so eviction is safe.
      dispose: (p) => void p.then((c) => c.dispose(), () => undefined),
    });
  }

  /**
   * Preprocesses a tokenizer's vocabulary (once per tokenizer: about 0.3-1.5 s
   * for 50k tokens). `stopIds`: the tokens that end a generation; a matcher
   * allows them exactly where the document is complete.
   */
  static async create(vocab: TokenVocabulary, stopIds: readonly number[], cacheSize = 64): Promise<ConstraintCompiler> {
    const xg = xgrammar();
    const info = await xg.TokenizerInfo.createTokenizerInfo(vocab.tokens, vocab.kind, vocab.prependSpace, vocab.tokens.length, [...stopIds]);
    const compiler = await xg.GrammarCompiler.createGrammarCompiler(info, true);
    return new ConstraintCompiler(compiler, vocab.tokens.length, cacheSize);
  }

  /**
   * The compiled form of a constraint, from the cache when the same
   * constraint was compiled before. Throws UnsupportedConstraintError for
   * what it cannot enforce exactly.
   */
  compile(c: OutputConstraint): Promise<CompiledConstraint> {
    checkConstraint(c);
    const key = constraintKey(c);
    const hit = this.cache.get(key);
    if (hit) {
      this.stats.cacheHits++;
      return hit;
    }
    const started = performance.now();
    const p = this.build(c).then((g) => {
      const ms = performance.now() - started;
      this.stats.compiled++;
      this.stats.compileMs += ms;
      return new CompiledConstraint(g, key, ms, this.vocabSize);
    });
    this.cache.set(key, p);
    // A failed compile is not cached: the next request tries again (and fails the same way, typed).
    p.catch(() => this.cache.delete(key));
    return p;
  }

  private async build(c: OutputConstraint): Promise<XgCompiledGrammar> {
    const xg = xgrammar();
    let grammar: XgGrammar;
    try {
      switch (c.type) {
        case 'json_object':
          grammar = await boundNumbers(await xg.Grammar.fromJSONSchema('{"type": "object"}', false, -1, [', ', ': '], false));
          break;
        case 'json_schema':
          grammar = await boundNumbers(await xg.Grammar.fromJSONSchema(JSON.stringify(c.schema), false, -1, [', ', ': '], true));
          break;
        case 'choice':
          grammar = await xg.Grammar.fromStructuralTag({
            type: 'structural_tag',
            format: { type: 'or', elements: c.choices.map((value) => ({ type: 'const_string', value })) },
          });
          break;
        case 'regex':
          grammar = await xg.Grammar.fromStructuralTag({ type: 'structural_tag', format: { type: 'regex', pattern: c.pattern } });
          break;
      }
    } catch (err) {
      // What the checks let through and xgrammar still refuses (a reference cycle with no way out, a regex corner).
      throw new UnsupportedConstraintError(`the ${c.type} constraint cannot be compiled: ${errorText(err)}`, null, c.type);
    }
    try {
      return await this.compiler.compileGrammar(grammar);
    } finally {
      grammar.dispose();
    }
  }
}

/** xgrammar's rules for a number or integer without a range (its JSON grammar's names), with their helper rules. */
const FREE_NUMBER_RULE = /^basic_(number|integer)(_\d+)?\s+::=/;

/**
 * The same grammar with its unbounded number rules replaced: at most 16
 * digits before the point, 16 after it and 3 in the exponent. xgrammar's own
 * rules allow any number of digits, and a small model sampled at
 * temperature 1 goes on writing digits until max_tokens (measured: 20 of
 * 20 stories260K samples of {"type": "number"} never ended). Every
 * number the bounded rules allow is one the schema allows.
 */
async function boundNumbers(grammar: XgGrammar): Promise<XgGrammar> {
  const text = grammar.toString();
  const lines = text.split('\n');
  if (!lines.some((l) => FREE_NUMBER_RULE.test(l))) return grammar;
  const bounded = [
    ...lines.filter((l) => !FREE_NUMBER_RULE.test(l)),
    'basic_integer ::= "0" | "-"? [1-9] [0-9]{0,15}',
    'basic_number ::= "-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [+\\-]? [0-9]{1,3})?',
  ].join('\n');
  let replaced: XgGrammar;
  try {
    replaced = await xgrammar().Grammar.fromEBNF(bounded);
  } catch {
    // A grammar whose printed form does not read back (some escapes in literals): keep xgrammar's own rules, still exact.
    return grammar;
  }
  grammar.dispose();
  return replaced;
}

/** xgrammar throws C++ exceptions as numbers or objects; a message where there is one. */
function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'string') return err;
  return 'rejected by the grammar compiler';
}

/** A compiled constraint, shared by every generation that uses it. */
export class CompiledConstraint {
  constructor(
    private readonly compiled: XgCompiledGrammar,
    /** The hash it is cached under. */
    readonly key: string,
    /** How long compiling took. */
    readonly compileMs: number,
    private readonly vocabSize: number,
  ) {}

  /** A fresh matcher for one generation (dispose it when the generation ends). */
  async matcher(): Promise<TokenConstraint> {
    // createGrammarMatcher reads the vocabulary size through compiled.tokenizerInfo(), which wraps a new
    // WebAssembly handle nobody deletes (one leaked per generation); this view answers it without one.
    const view = { handle: (this.compiled as unknown as { handle: unknown }).handle, tokenizerInfo: () => ({ getVocabSize: () => this.vocabSize }) };
    // No override of the stop tokens: the tokenizer info holds the same ids, and an override vector would leak too.
    const m = await xgrammar().GrammarMatcher.createGrammarMatcher(view as unknown as XgCompiledGrammar, undefined, false, 0);
    return new GrammarConstraint(m, this.vocabSize);
  }

  dispose(): void {
    this.compiled.dispose();
  }
}

/** One generation's position in the grammar. */
class GrammarConstraint implements TokenConstraint {
  private bitmask: Int32Array | null = null;
  private disposed = false;

  constructor(
    private readonly m: XgGrammarMatcher,
    private readonly vocabSize: number,
  ) {}

  get terminated(): boolean {
    return !this.disposed && this.m.isTerminated();
  }

  async prepare(): Promise<void> {
    this.bitmask = this.disposed || this.m.isTerminated() ? null : await this.m.getNextTokenBitmask();
  }

  mask(logits: Float32Array): void {
    if (!this.bitmask) throw new Error('mask() before prepare()');
    applyTokenMask(logits, this.bitmask, this.vocabSize);
  }

  accept(token: number): boolean {
    this.bitmask = null;
    return this.m.acceptToken(token);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.m.dispose();
  }
}

/** SHA-256 of the constraint's JSON with object keys sorted: equal constraints share one compilation. */
export function constraintKey(c: OutputConstraint): string {
  return createHash('sha256').update(canonical(c)).digest('hex');
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}
