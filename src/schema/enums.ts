import { builder } from './builder.js';

/** A stored value in GraphQL's enum idiom: 'completed_with_failures' → COMPLETED_WITH_FAILURES, 'decoder-only' → DECODER_ONLY. */
export const enumName = (value: string): string => value.toUpperCase().replace(/[^A-Z0-9]+/g, '_');

/**
 * A GraphQL enum over `values`, the const list that is the one source of
 * these values (validation and storage use the same list). Each value is
 * served as its enumName and resolves to the list's string, so resolvers
 * and services keep the stored values. `docs.values` must describe every
 * value: the compiler insists, so a value added to the list cannot reach the
 * schema undocumented.
 */
export function enumFrom<const V extends string>(
  name: string,
  values: readonly V[],
  docs: { description: string; values: NoInfer<Record<V, string>> },
) {
  const config: Record<string, { value: V; description: string }> = {};
  for (const value of values) config[enumName(value)] = { value, description: docs.values[value] };
  return builder.enumType(name, { description: docs.description, values: config });
}

/**
 * enumFrom for a string union type that has no const list of its own (a
 * service's or the engine's type): the description map, typed
 * Record<Union, string>, is checked by the compiler to name every member
 * and nothing else, so it serves as the list.
 */
export const enumOfUnion = <V extends string>(name: string, docs: { description: string; values: Record<V, string> }) =>
  enumFrom(name, Object.keys(docs.values) as V[], docs);
