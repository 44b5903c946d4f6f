import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { bertConfigFromHf, buildBertOnnx, type BertWeights } from './bert-graph.js';
import { MODEL_FILE } from './model-dir.js';
import { randomBertWeights } from './random-weights.js';

/**
 * Bumped whenever the encoder graph or the directory layout changes, so
 * cached random-weight encoders made by an older builder are rebuilt.
 */
export const ENCODER_FORMAT_VERSION = 1;

/** The files of a transformers.js feature-extraction model that are not weights; copied as they are. */
export const ENCODER_SIDE_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt', 'sentence_bert_config.json'];

/** Written last; its presence means the directory is complete. */
const COMPLETE_MARKER = 'build-info.json';

/**
 * Named encoder shapes for random-weight models. An encoder preset names the
 * folder (under ../shared/models) whose config.json and tokenizer files the
 * model takes, so its configuration is exactly that model's.
 */
export const ENCODER_PRESETS = {
  /** sentence-transformers/all-MiniLM-L6-v2: 6 layers, hidden 384, 12 heads, WordPiece 30,522 (22.6M parameters: no pooler, which mean pooling never uses). */
  minilm: 'all-MiniLM-L6-v2',
} as const;

export type EncoderPresetName = keyof typeof ENCODER_PRESETS;

export const isEncoderPreset = (name: string): name is EncoderPresetName => Object.hasOwn(ENCODER_PRESETS, name);

/** Where a preset's config and tokenizer files live: `<sharedModels>/<folder>`. */
export function encoderPresetSource(preset: EncoderPresetName, sharedModelsDir: string): string {
  return path.join(sharedModelsDir, ENCODER_PRESETS[preset]);
}

function readConfig(sourceDir: string): Record<string, unknown> {
  const file = path.join(sourceDir, 'config.json');
  if (!fs.existsSync(file)) throw new Error(`${sourceDir} has no config.json`);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
}

/**
 * Writes a complete transformers.js feature-extraction directory:
 * `onnx/model.onnx` built from `weights`, and config.json plus the tokenizer
 * files of `sourceDir` (config.json gains an `inference_server` provenance
 * key, which transformers.js ignores). Files are written anew, not copied,
 * so read-only sources give writable copies.
 */
export function writeEncoderModelDir(weights: BertWeights, sourceDir: string, outDir: string, provenance: Record<string, unknown>): void {
  if (!fs.existsSync(path.join(sourceDir, 'tokenizer.json'))) throw new Error(`${sourceDir} has no tokenizer.json`);
  fs.mkdirSync(path.join(outDir, path.dirname(MODEL_FILE)), { recursive: true });
  fs.writeFileSync(path.join(outDir, MODEL_FILE), buildBertOnnx(weights));
  const config = { ...readConfig(sourceDir), inference_server: { ...provenance, formatVersion: ENCODER_FORMAT_VERSION } };
  fs.writeFileSync(path.join(outDir, 'config.json'), JSON.stringify(config, null, 2));
  for (const f of ENCODER_SIDE_FILES) {
    const from = path.join(sourceDir, f);
    if (fs.existsSync(from)) fs.writeFileSync(path.join(outDir, f), fs.readFileSync(from));
  }
}

/**
 * A random-weight BERT encoder with the configuration and tokenizer of
 * `sourceDir` (a model folder with config.json and tokenizer.json), written
 * to `outDir`. The same seed gives byte-identical weights.
 */
export function makeRandomEncoder(opts: { sourceDir: string; outDir: string; seed?: number; std?: number }): string {
  const seed = opts.seed ?? 1;
  const config = bertConfigFromHf(readConfig(opts.sourceDir));
  const weights = randomBertWeights(config, seed, opts.std);
  writeEncoderModelDir(weights, opts.sourceDir, opts.outDir, {
    source: 'random',
    from: path.basename(path.resolve(opts.sourceDir)),
    seed,
    ...(opts.std === undefined ? {} : { std: opts.std }),
  });
  return opts.outDir;
}

/**
 * makeRandomEncoder, once: the directory lives in
 * `<cacheRoot>/<source folder>-random-<hash of builder version, source files, seed and std>/` and
 * is reused while complete. Built in a temporary folder and renamed into
 * place, so a crash or a concurrent build never leaves a half-written model
 * where a later run would trust it.
 */
export function cachedRandomEncoder(opts: { sourceDir: string; cacheRoot: string; seed?: number; std?: number }): string {
  const hash = crypto.createHash('sha256');
  hash.update(`encoder-v${ENCODER_FORMAT_VERSION}\0seed=${opts.seed ?? 1}\0std=${opts.std ?? 'default'}\0`);
  for (const f of ['config.json', ...ENCODER_SIDE_FILES]) {
    const file = path.join(opts.sourceDir, f);
    if (fs.existsSync(file)) hash.update(f).update(fs.readFileSync(file)).update('\0');
  }
  const key = `${path.basename(path.resolve(opts.sourceDir))}-random-${hash.digest('hex').slice(0, 12)}`;
  const finalDir = path.join(opts.cacheRoot, key);
  if (fs.existsSync(path.join(finalDir, COMPLETE_MARKER))) return finalDir;
  fs.mkdirSync(opts.cacheRoot, { recursive: true });
  const tmpDir = fs.mkdtempSync(path.join(opts.cacheRoot, `.tmp-${key}-`));
  try {
    makeRandomEncoder({ ...opts, outDir: tmpDir });
    fs.writeFileSync(path.join(tmpDir, COMPLETE_MARKER), JSON.stringify({ key, builtAt: new Date().toISOString() }, null, 2));
    if (fs.existsSync(finalDir) && !fs.existsSync(path.join(finalDir, COMPLETE_MARKER))) fs.rmSync(finalDir, { recursive: true, force: true });
    try {
      fs.renameSync(tmpDir, finalDir);
    } catch (err) {
      // Another process finished the same build first; use theirs.
      if (!fs.existsSync(path.join(finalDir, COMPLETE_MARKER))) throw err;
    }
  } finally {
    fs.rmSync(tmpDir, { recursive: true, force: true });
  }
  return finalDir;
}
