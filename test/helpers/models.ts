import fs from 'node:fs';
import path from 'node:path';
import { REPO, STORIES } from './server.js';

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
