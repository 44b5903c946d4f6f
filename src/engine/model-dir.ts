import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BOS_ID, EOS_ID, readLlama2cCheckpoint, readLlama2cHeader, readLlama2cTokenizer, type Llama2cVocab } from './llama2c.js';
import { buildLlamaOnnx, type LlamaWeights } from './onnx-graph.js';
import { buildLlamaOnnxFused } from './onnx-graph-fused.js';
import { getPreset } from './presets.js';
import { quantizationConfigJson, quantizationInfo, QUANTIZE_DEFAULTS, type QuantizeMode } from './quantize.js';
import { randomLlamaWeights } from './random-weights.js';
import { buildSyntheticVocab } from './synthetic-vocab.js';
import { writeTokenizerFiles } from './tokenizer-export.js';

/**
 * Where transformers.js looks for the model: `onnx/` subfolder, base name
 * `model`, no dtype suffix for fp32 (`DEFAULT_DTYPE_SUFFIX_MAPPING.fp32 === ''`).
 */
export const MODEL_FILE = path.join('onnx', 'model.onnx');

/**
 * The same model as the fused graph for the engine's batched decode
 * ({@link buildLlamaOnnxFused}); written only for models this project builds.
 */
export const MODEL_FUSED_FILE = path.join('onnx', 'model_fused.onnx');

/** Written last into an imported directory; its presence means the import finished. */
const COMPLETE_MARKER = 'import-info.json';

/**
 * Bumped whenever the graph or tokenizer export changes, so cached imports
 * made by an older builder are not reused (4: the plain graph's
 * last_hidden_state output, for the decoder's embeddings).
 */
export const IMPORT_FORMAT_VERSION = 4;

/** Provenance stored in config.json under "llama2c". */
export interface ModelProvenance {
  source: 'llama2c' | 'random';
  [key: string]: unknown;
}

/**
 * Writes a complete transformers.js model directory: `onnx/model.onnx`,
 * `config.json`, `generation_config.json`, `tokenizer.json`,
 * `tokenizer_config.json`; plus `onnx/model_fused.onnx`, the fused graph
 * the engine's batched decode uses (transformers.js ignores it). With
 * `quantize`, the fused graph's linear weights are block-quantized
 * (src/engine/quantize.ts, QUANTIZE_DEFAULTS) and config.json records how
 * under `quantization`; the plain graph stays fp32 either way.
 */
export function writeModelDir(weights: LlamaWeights, vocab: Llama2cVocab, outDir: string, provenance: ModelProvenance, quantize?: QuantizeMode): void {
  const c = weights.config;
  if (vocab.pieces.length !== c.vocabSize) {
    throw new Error(`tokenizer has ${vocab.pieces.length} tokens but the model's vocabulary is ${c.vocabSize}`);
  }
  const quantOptions = quantize ? QUANTIZE_DEFAULTS[quantize] : undefined;
  fs.mkdirSync(path.join(outDir, path.dirname(MODEL_FILE)), { recursive: true });
  fs.writeFileSync(path.join(outDir, MODEL_FILE), buildLlamaOnnx(weights));
  fs.writeFileSync(path.join(outDir, MODEL_FUSED_FILE), buildLlamaOnnxFused(weights, quantOptions ? { quantize: quantOptions } : {}));

  // These models end a story by emitting BOS, so both BOS and EOS stop generation.
  const eos = [BOS_ID, EOS_ID];
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.dim / c.nHeads,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.maxSeqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    hidden_act: 'silu',
    bos_token_id: BOS_ID,
    eos_token_id: eos,
    tie_word_embeddings: weights.wcls === undefined,
    torch_dtype: 'float32',
    use_cache: true,
    llama2c: { ...provenance, formatVersion: IMPORT_FORMAT_VERSION },
    ...(quantOptions ? { quantization: quantizationConfigJson(quantizationInfo(quantOptions)) } : {}),
  };
  fs.writeFileSync(path.join(outDir, 'config.json'), JSON.stringify(config, null, 2));
  const generation = { bos_token_id: BOS_ID, eos_token_id: eos, max_length: c.maxSeqLen };
  fs.writeFileSync(path.join(outDir, 'generation_config.json'), JSON.stringify(generation, null, 2));
  writeTokenizerFiles(vocab, outDir, c.maxSeqLen);
}

/**
 * Imports a llama2.c checkpoint and its tokenizer into `outDir` as a
 * transformers.js model directory (see {@link writeModelDir}).
 */
export async function importLlama2c(opts: { checkpoint: string; tokenizer: string; outDir: string; quantize?: QuantizeMode }): Promise<string> {
  const weights = readLlama2cCheckpoint(opts.checkpoint);
  const vocab = readLlama2cTokenizer(opts.tokenizer, weights.config.vocabSize);
  writeModelDir(
    weights,
    vocab,
    opts.outDir,
    {
      source: 'llama2c',
      checkpoint: path.basename(opts.checkpoint),
      tokenizer: path.basename(opts.tokenizer),
    },
    opts.quantize,
  );
  return opts.outDir;
}

/**
 * Finds the tokenizer beside a checkpoint: `tok<vocab>.bin` if present,
 * else the only `tok*.bin` / `tokenizer.bin` there. Throws naming the
 * candidates when the choice is ambiguous or there is none.
 */
export function findTokenizerBeside(checkpointPath: string, vocabSize?: number): string {
  const dir = path.dirname(checkpointPath);
  const candidates = fs
    .readdirSync(dir)
    .filter((f) => /^tok.*\.bin$/.test(f) && path.join(dir, f) !== checkpointPath)
    .sort();
  const exact = vocabSize !== undefined ? candidates.find((f) => f === `tok${vocabSize}.bin`) : undefined;
  const chosen = exact ?? (candidates.length === 1 ? candidates[0] : undefined);
  if (chosen === undefined) {
    throw new Error(
      candidates.length === 0
        ? `no llama2.c tokenizer (tok*.bin) beside ${checkpointPath}; pass the tokenizer path explicitly`
        : `several tokenizers beside ${checkpointPath} (${candidates.join(', ')}); pass the tokenizer path explicitly`,
    );
  }
  return path.join(dir, chosen);
}

function sha256Files(files: string[], quantize: QuantizeMode | undefined): string {
  const hash = crypto.createHash('sha256');
  hash.update(`llama2c-import-v${IMPORT_FORMAT_VERSION}\0`);
  // fp32 imports keep the key they always had; a quantized one hashes its settings too, so no two collide.
  if (quantize) hash.update(`quantize:${JSON.stringify(QUANTIZE_DEFAULTS[quantize])}\0`);
  for (const f of files) {
    hash.update(fs.readFileSync(f));
    hash.update('\0');
  }
  return hash.digest('hex');
}

/**
 * Returns a transformers.js model directory for a llama2.c checkpoint,
 * importing it into `<cacheRoot>/<sha256 prefix of checkpoint+tokenizer
 * (+ the quantize mode's settings)>/` only when no complete import is there yet. Imports go to a temporary folder
 * that is renamed into place, so a crash never leaves a half-written model
 * where a later start would trust it.
 */
export async function resolveCheckpointModel(
  checkpointPath: string,
  tokenizerPath: string | undefined,
  cacheRoot: string,
  quantize?: QuantizeMode,
): Promise<string> {
  const vocabSize = readLlama2cHeader(checkpointPath).config.vocabSize;
  const tokenizer = tokenizerPath ?? findTokenizerBeside(checkpointPath, vocabSize);
  const key = sha256Files([checkpointPath, tokenizer], quantize).slice(0, 16);
  const finalDir = path.join(cacheRoot, key);
  if (fs.existsSync(path.join(finalDir, COMPLETE_MARKER))) return finalDir;

  fs.mkdirSync(cacheRoot, { recursive: true });
  const tmpDir = fs.mkdtempSync(path.join(cacheRoot, `.tmp-${key}-`));
  try {
    await importLlama2c({ checkpoint: checkpointPath, tokenizer, outDir: tmpDir, ...(quantize ? { quantize } : {}) });
    const info = {
      checkpoint: path.resolve(checkpointPath),
      tokenizer: path.resolve(tokenizer),
      key,
      ...(quantize ? { quantize } : {}),
      importedAt: new Date().toISOString(),
    };
    fs.writeFileSync(path.join(tmpDir, COMPLETE_MARKER), JSON.stringify(info, null, 2));
    // A folder without the marker is debris from an older crash: replace it.
    if (fs.existsSync(finalDir) && !fs.existsSync(path.join(finalDir, COMPLETE_MARKER))) {
      fs.rmSync(finalDir, { recursive: true, force: true });
    }
    try {
      fs.renameSync(tmpDir, finalDir);
    } catch (err) {
      // Another process finished the same import first; use theirs.
      if (!fs.existsSync(path.join(finalDir, COMPLETE_MARKER))) throw err;
    }
  } finally {
    fs.rmSync(tmpDir, { recursive: true, force: true });
  }
  return finalDir;
}

/**
 * Writes a random-weight model of a named preset (see presets.ts) with a
 * synthetic byte-fallback tokenizer of the preset's vocabulary size. The same
 * seed gives byte-identical weights.
 */
export async function makeRandomModel(opts: { preset: string; seed?: number; outDir: string; quantize?: QuantizeMode }): Promise<string> {
  const config = getPreset(opts.preset);
  const seed = opts.seed ?? 1;
  const weights = randomLlamaWeights(config, seed);
  const vocab = buildSyntheticVocab(config.vocabSize);
  writeModelDir(weights, vocab, opts.outDir, { source: 'random', preset: opts.preset, seed }, opts.quantize);
  return opts.outDir;
}
