import type { MetadataFilter } from '../../storage/types.js';

/**
 * Whether a document's metadata passes a filter: every key present with
 * exactly the filter's value (strings, numbers, booleans, null; no type
 * coercion: "2020" is not 2020, and an array holding the value is not it).
 * The stores apply the same rule in SQL (storage/sqlite-rag.ts,
 * postgres-rag.ts); this is it for the vectors held in memory.
 */
export function matchesFilter(metadata: Record<string, unknown>, filter: MetadataFilter): boolean {
  for (const [key, value] of Object.entries(filter)) {
    if (!Object.hasOwn(metadata, key) || metadata[key] !== value) return false;
  }
  return true;
}
