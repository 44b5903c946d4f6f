import fs from 'node:fs';
import path from 'node:path';
import { cachedRandomEncoder } from '../../src/engine/encoder-dir.js';
import { cachedHubShapedDecoder } from '../../src/engine/hub-model-dir.js';
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

/** Hub decoders without weights (../shared/models/README.md): real config.json, tokenizer and chat template. */
export const SMOLLM2_SOURCE = path.resolve(REPO, '../shared/models/SmolLM2-135M-Instruct');
export const GPT2_SOURCE = path.resolve(REPO, '../shared/models/gpt2');
export const QWEN25_SOURCE = path.resolve(REPO, '../shared/models/Qwen2.5-0.5B-Instruct');
export const smollm2Files = needFiles(path.join(SMOLLM2_SOURCE, 'config.json'), path.join(SMOLLM2_SOURCE, 'tokenizer.json'));
export const gpt2Files = needFiles(path.join(GPT2_SOURCE, 'config.json'), path.join(GPT2_SOURCE, 'tokenizer.json'));

/**
 * Seed, init scale and depth of the tests' hub-shaped random decoders. Two
 * layers of the real shape keep them quick to build and run; std 0.2 (not
 * the configs' initializer_range) makes varied text with clear winners:
 * the top two next-token log-probabilities stay >= 1e-2 apart on the
 * parity prompts, far above the ~1e-5 the fused and plain graphs differ by,
 * where 0.02 gives a few repeated tokens and gaps down to 1e-3.
 */
export const TEST_HUB_DECODER = { seed: 1, std: 0.2, layers: 2 } as const;

/** A random decoder with SmolLM2-135M-Instruct's or GPT-2's exact layer shape and tokenizer, built once per test cache. */
export function testHubDecoderDir(source: string, opts: { fused?: boolean } = {}): string {
  return cachedHubShapedDecoder({ sourceDir: source, cacheRoot: path.join(MODEL_CACHE, 'hub-shaped'), ...TEST_HUB_DECODER, ...opts });
}
