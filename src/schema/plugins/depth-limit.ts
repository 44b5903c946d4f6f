import { GraphQLError, Kind, visit, type DocumentNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';

/** Deeper than any query of this schema (introspection included) needs; graphql-js recurses per level. */
const MAX_QUERY_DEPTH = 64;

const tooDeep = () =>
  new GraphQLError(`query is nested deeper than ${MAX_QUERY_DEPTH} levels`, { extensions: { code: 'invalid_request' } });

/**
 * How deep a document nests, as graphql-js's recursive validation and
 * execution will walk it: selection sets, list and object values and
 * fragment spreads each count one level, a spread adding its fragment's
 * depth; a spread cycle is unbounded (Infinity). Iterative throughout.
 */
function nestingOf(document: DocumentNode): number {
  // Each definition's own depth, and the fragments it spreads at which level.
  const defs = new Map<string, { own: number; spreads: Array<{ name: string; level: number }> }>();
  const roots: string[] = [];
  document.definitions.forEach((def, i) => {
    let depth = 0;
    let own = 0;
    const spreads: Array<{ name: string; level: number }> = [];
    const nests = { enter: () => void (own = Math.max(own, ++depth)), leave: () => void depth-- };
    visit(def, {
      SelectionSet: nests,
      ListValue: nests,
      ObjectValue: nests,
      FragmentSpread: (node) => void spreads.push({ name: node.name.value, level: depth + 1 }),
    });
    // Operations by position (they may be anonymous), fragments by name (what spreads refer to).
    const key = def.kind === Kind.FRAGMENT_DEFINITION ? def.name.value : `#${i}`;
    if (def.kind !== Kind.FRAGMENT_DEFINITION) roots.push(key);
    defs.set(key, { own, spreads });
  });
  // Depth with spreads followed: post-order over an explicit stack, each fragment once.
  const total = new Map<string, number>();
  const open = new Set<string>();
  let max = 0;
  for (const root of [...roots, ...defs.keys()]) {
    const stack = [root];
    while (stack.length > 0) {
      const key = stack[stack.length - 1]!;
      const def = defs.get(key);
      if (total.has(key) || !def) {
        // An unknown fragment is validation's to report.
        if (!def) total.set(key, 0);
        stack.pop();
        continue;
      }
      if (!open.has(key)) {
        open.add(key);
        for (const { name } of def.spreads) {
          if (open.has(name) && !total.has(name)) return Infinity;
          if (!total.has(name)) stack.push(name);
        }
        continue;
      }
      let t = def.own;
      for (const { name, level } of def.spreads) t = Math.max(t, level + (total.get(name) ?? 0));
      total.set(key, t);
      open.delete(key);
      stack.pop();
      max = Math.max(max, t);
      if (max > MAX_QUERY_DEPTH) return max;
    }
  }
  return max;
}

/**
 * graphql-js parses, validates and executes recursively: a document nested
 * some thousands deep (or spreading a chain of thousands of fragments)
 * overflows the stack, a RangeError masked as internal_error. Such a
 * document, or any nested past MAX_QUERY_DEPTH, is the client's
 * invalid_request, refused before validation or execution walk it.
 */
export const depthLimit = (): Plugin => ({
  onParse() {
    return ({ result, replaceParseResult }) => {
      if (result instanceof RangeError) replaceParseResult(tooDeep());
      else if (result && !(result instanceof Error) && nestingOf(result) > MAX_QUERY_DEPTH) replaceParseResult(tooDeep());
    };
  },
});

