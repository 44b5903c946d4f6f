import fs from 'node:fs';
import path from 'node:path';
import { cachedRandomEncoder } from '../../src/engine/encoder-dir.js';
import { MODEL_CACHE, REPO, STORIES } from './server.js';

/** The stories260K llama2.c checkpoint and its tokenizer (../shared/models/README.md). */
export const STORIES_CHECKPOINT = STORIES;
export const STORIES_TOKENIZER = path.join(path.dirname(STORIES), 'tok512.bin');

/** Files a block of tests needs; when one is missing the block is skipped and says why. */
export interface NeededFiles {
  readonly present: boolean;
  /**
   * The block's name, or, when a file is missing, the name with the reason
   * appended ("... (skipped: ../shared/models/... not found)"), which the
   * verbose reporter lists beside each skipped test. Also warns on stderr,
   * which the default reporter (it prints only counts of skipped tests) shows
   * under the test file's name.
   */
  title(name: string): string;
}

/**
 * For `describe.skipIf(!needed.present)(needed.title('...'), ...)`: a skipped
 * block must say why in the test output, not pass silently as "skipped".
 */
export function needFiles(...files: string[]): NeededFiles {
  const missing = files.filter((f) => !fs.existsSync(f)).map((f) => path.relative(REPO, f));
  const reason = missing.length > 0 ? `${missing.join(', ')} not found` : null;
  return {
    present: reason === null,
    title(name) {
      if (reason === null) return name;
      // A describe.each title's placeholders (%s, ...) mean nothing outside vitest.
      console.warn(`skipping "${name.replace(/%[a-z#%]/gi, '…')}": ${reason}`);
      return `${name} (skipped: ${reason})`;
    },
  };
}

/** The stories260K checkpoint and tokenizer, which the engine and import tests run. */
export const storiesModel = needFiles(STORIES_CHECKPOINT, STORIES_TOKENIZER);
/** The stories260K tokenizer alone (tokenizer tests read nothing else). */
export const storiesTokenizer = needFiles(STORIES_TOKENIZER);

/** all-MiniLM-L6-v2's config.json and tokenizer files, without weights (../shared/models/README.md). */
export const MINILM_SOURCE = path.resolve(REPO, '../shared/models/all-MiniLM-L6-v2');
export const minilmFiles = needFiles(path.join(MINILM_SOURCE, 'config.json'), path.join(MINILM_SOURCE, 'tokenizer.json'));

/** Seed and init scale of the tests' random MiniLM-shaped encoder (0.05: attention far from uniform). */
export const TEST_ENCODER = { seed: 7, std: 0.05 } as const;

/**
 * A random-weight BERT encoder with all-MiniLM-L6-v2's exact configuration
 * and tokenizer, in the transformers.js feature-extraction layout; built once
 * (about 1 s, 90 MB) and shared by the test files through the test cache.
 */
export function testEncoderDir(): string {
  return cachedRandomEncoder({ sourceDir: MINILM_SOURCE, cacheRoot: path.join(MODEL_CACHE, 'encoders'), ...TEST_ENCODER });
}
