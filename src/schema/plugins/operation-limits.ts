/**
 * What one GraphQL operation may ask for, decided before any resolver runs:
 * graphql-armor's limits (aliases, directives, tokens, cost), and ours:
 * fields per operation, generating fields per operation (each also counts
 * one request against the key's rate limit), introspection on or off.
 * Every rejection is 400 invalid_request with `details.limit` naming it.
 */
import { blockFieldSuggestionsPlugin } from '@escape.tech/graphql-armor-block-field-suggestions';
import { costLimitPlugin } from '@escape.tech/graphql-armor-cost-limit';
import { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases';
import { maxDirectivesPlugin } from '@escape.tech/graphql-armor-max-directives';
import { maxTokensPlugin } from '@escape.tech/graphql-armor-max-tokens';
import type { GraphQLArmorRejectCallback } from '@escape.tech/graphql-armor-types';
import {
  GraphQLError,
  Kind,
  type DocumentNode,
  type FragmentDefinitionNode,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationRule,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { ServerContext } from './contract.js';

export interface OperationLimits {
  /** Aliased fields per operation (fragments counted where spread). */
  maxAliases: number;
  /** Directives per operation. */
  maxDirectives: number;
  /** Lexical tokens per document. */
  maxTokens: number;
  /** graphql-armor's cost estimate (objects 2, scalars 1, times 1.5 per level) per operation. */
  maxCost: number;
  /** Field selections per operation, fragments expanded where spread. */
  maxFields: number;
  /** Fields that run the model (chat, chatStream, rag, ragStream, ragSearch, embed, evaluate, startBatchEval) per operation. */
  maxGeneratingFields: number;
  /** Schema introspection (__schema, __type); off also hides "did you mean" suggestions. */
  introspection: boolean;
}

export const DEFAULT_OPERATION_LIMITS: OperationLimits = {
  maxAliases: 15,
  maxDirectives: 20,
  maxTokens: 2000,
  maxCost: 5000,
  maxFields: 500,
  maxGeneratingFields: 4,
  introspection: true,
};

/** Root fields that run the model or start work on it: each counts against the rate limit as one request. */
export const GENERATING_FIELDS: ReadonlySet<string> = new Set(['chat', 'chatStream', 'rag', 'ragStream', 'ragSearch', 'embed', 'evaluate', 'startBatchEval']);

/** The contract's answer to an operation over a limit. */
export const limitError = (limit: string, max: number, message: string, found?: number) =>
  new GraphQLError(message, {
    // spec: false, so yoga keeps the 400 for application/json clients too (it answers GraphQL's own validation errors 200 there).
    extensions: { code: 'invalid_request', details: { limit, max, ...(found !== undefined ? { found } : {}) }, http: { status: 400, spec: false } },
  });

/** A graphql-armor rejection re-issued as ours: reported to validation, or thrown from the parser (tokens). */
const rejectAs = (limit: string, max: number): GraphQLArmorRejectCallback => (ctx, err) => {
  const found = /found (\d+)/.exec(err.message)?.[1];
  const ours = limitError(limit, max, `${err.message.replace(/^Syntax Error: /, '')} (limit ${limit})`, found === undefined ? undefined : Number(found));
  if (ctx) ctx.reportError(ours);
  else throw ours;
};

/** Counts fields and generating root fields of one operation, fragments expanded, stopping once past `cap`. */
export function countFields(
  operation: OperationDefinitionNode,
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
  cap: number,
): { fields: number; generating: number } {
  let fields = 0;
  let generating = 0;
  // Explicit stack of (selection set, is it the root's); a fragment spread pushes the fragment's set.
  const stack: Array<{ set: SelectionSetNode; root: boolean; seen: ReadonlySet<string> }> = [{ set: operation.selectionSet, root: true, seen: new Set() }];
  while (stack.length > 0 && fields <= cap) {
    const { set, root, seen } = stack.pop()!;
    for (const sel of set.selections) {
      if (sel.kind === Kind.FIELD) {
        fields++;
        if (root && GENERATING_FIELDS.has(sel.name.value)) generating++;
        if (sel.selectionSet) stack.push({ set: sel.selectionSet, root: false, seen });
      } else if (sel.kind === Kind.INLINE_FRAGMENT) {
        stack.push({ set: sel.selectionSet, root, seen });
      } else {
        const name = sel.name.value;
        const fragment = fragments.get(name);
        // A cycle is validation's to report (NoFragmentCycles); an unknown fragment likewise.
        if (!fragment || seen.has(name)) continue;
        stack.push({ set: fragment.selectionSet, root, seen: new Set([...seen, name]) });
      }
      if (fields > cap) break;
    }
  }
  return { fields, generating };
}

/** Fields and generating fields of the largest operation of a document. */
export function documentCounts(document: DocumentNode, cap: number): { fields: number; generating: number } {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const def of document.definitions) if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
  let fields = 0;
  let generating = 0;
  for (const def of document.definitions) {
    if (def.kind !== Kind.OPERATION_DEFINITION) continue;
    const c = countFields(def, fragments, cap);
    fields = Math.max(fields, c.fields);
    generating = Math.max(generating, c.generating);
  }
  return { fields, generating };
}

/** GRAPHQL_INTROSPECTION=0: `__schema` and `__type` anywhere are refused (graphql-js's NoSchemaIntrospectionCustomRule, answered as our limit). */
const noIntrospection: ValidationRule = (context) => ({
  Field(node) {
    if (node.name.value === '__schema' || node.name.value === '__type') {
      context.reportError(limitError('introspection', 0, `introspection (${node.name.value}) is turned off on this server (GRAPHQL_INTROSPECTION=0)`));
    }
  },
});

/** True for a result holding one of our limit rejections. */
const rejected = (errors: readonly GraphQLError[] | undefined) =>
  errors?.some((e) => typeof (e.extensions?.details as { limit?: unknown } | undefined)?.limit === 'string' && e.extensions?.code === 'invalid_request') ?? false;

/**
 * Our own limits: fields and generating fields per operation (the count is
 * left on the request context for the rate limit), and introspection. A
 * rejection is answered 400 (yoga answers GraphQL's own validation errors
 * 200 to application/json clients; a result-level status overrides that).
 */
const fieldLimits = (limits: OperationLimits): Plugin<object, ServerContext> => ({
  onResultProcess({ result, setResult }) {
    if (Array.isArray(result) || Symbol.asyncIterator in result) return;
    if (rejected(result.errors)) setResult({ ...result, extensions: { ...result.extensions, http: { status: 400 } } });
  },
  onValidate({ params, addValidationRule, setResult, context }) {
    if (!limits.introspection) addValidationRule(noIntrospection);
    const { fields, generating } = documentCounts(params.documentAST, limits.maxFields);
    if (fields > limits.maxFields) {
      setResult([limitError('max_fields', limits.maxFields, `the operation selects more than ${limits.maxFields} fields (limit max_fields)`)]);
      return;
    }
    if (generating > limits.maxGeneratingFields) {
      const message = `the operation runs the model ${generating} times; at most ${limits.maxGeneratingFields} generating fields (chat, chatStream, rag, ragStream, ragSearch, embed, evaluate, startBatchEval) per operation (limit max_generating_fields)`;
      setResult([limitError('max_generating_fields', limits.maxGeneratingFields, message, generating)]);
      return;
    }
    const ctx = (context as Partial<ServerContext>).req?.ctx;
    if (ctx) ctx.generatingFields = generating;
  },
});

/** Every limit of an operation, as yoga plugins (put first: they run before anything reads the document). */
export function operationLimits(limits: OperationLimits): Plugin<object, ServerContext>[] {
  const common = { exposeLimits: true, propagateOnRejection: false } as const;
  return [
    maxTokensPlugin({ ...common, n: limits.maxTokens, onReject: [rejectAs('max_tokens', limits.maxTokens)] }) as Plugin<object, ServerContext>,
    maxAliasesPlugin({ ...common, n: limits.maxAliases, onReject: [rejectAs('max_aliases', limits.maxAliases)] }) as Plugin<object, ServerContext>,
    maxDirectivesPlugin({ ...common, n: limits.maxDirectives, onReject: [rejectAs('max_directives', limits.maxDirectives)] }) as Plugin<object, ServerContext>,
    costLimitPlugin({ ...common, maxCost: limits.maxCost, onReject: [rejectAs('max_cost', limits.maxCost)] }) as Plugin<object, ServerContext>,
    fieldLimits(limits),
    ...(limits.introspection ? [] : [blockFieldSuggestionsPlugin() as Plugin<object, ServerContext>]),
  ];
}
