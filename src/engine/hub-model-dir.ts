import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { buildGpt2Onnx, gpt2ConfigFromHf, gpt2ParameterCount } from './gpt2-graph.js';
import { MODEL_FILE, MODEL_FUSED_FILE } from './model-dir.js';
import { buildLlamaOnnx, type LlamaConfig } from './onnx-graph.js';
import { buildLlamaOnnxFused } from './onnx-graph-fused.js';
import { parameterCount } from './presets.js';
import { randomGpt2Weights, randomLlamaWeights } from './random-weights.js';

/**
 * Random-weight decoders with the exact configuration and the real tokenizer
 * of a hub model (the weightless folders under ../shared/models), written
 * in the layout a hub download has in transformers.js's cache: config.json,
 * generation_config.json, the tokenizer files, onnx/model.onnx; plus
 * onnx/model_fused.onnx for Llama models (this project's fused graph, which
 * a real download lacks and transformers.js ignores).
 */

/** Bumped whenever a graph or the directory layout changes, so cached builds of an older builder are rebuilt. */
export const HUB_SHAPED_FORMAT_VERSION = 1;

/** Files of a hub decoder that are not weights; copied byte for byte when the source has them. */
export const DECODER_SIDE_FILES = ['generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt'];

/** Written last; its presence means the directory is complete. */
const COMPLETE_MARKER = 'build-info.json';

/**
 * Named hub models whose configuration and tokenizer are under
 * ../shared/models: `folder` is that folder, `hubId` the id the model is
 * served under from the hub, `layers` a layer count that defines the model
 * (distilgpt2 is gpt2's configuration with 6 layers).
 */
export const HUB_DECODER_PRESETS = {
  /** HuggingFaceTB/SmolLM2-135M-Instruct: Llama, hidden 576, 30 layers, 9 heads / 3 KV heads, ChatML. */
  smollm2: { folder: 'SmolLM2-135M-Instruct', hubId: 'HuggingFaceTB/SmolLM2-135M-Instruct', layers: undefined },
  /** openai-community/gpt2: 12 layers, hidden 768, 12 heads, learned positions, 124M parameters. */
  gpt2: { folder: 'gpt2', hubId: 'openai-community/gpt2', layers: undefined },
  /** distilbert/distilgpt2 (Xenova/distilgpt2 for transformers.js): gpt2 with 6 layers, 82M parameters. */
  distilgpt2: { folder: 'gpt2', hubId: 'Xenova/distilgpt2', layers: 6 },
} as const satisfies Record<string, { folder: string; hubId: string; layers: number | undefined }>;

export type HubDecoderPresetName = keyof typeof HUB_DECODER_PRESETS;

export const isHubDecoderPreset = (name: string): name is HubDecoderPresetName => Object.hasOwn(HUB_DECODER_PRESETS, name);

type Json = Record<string, unknown>;

function readJson(file: string): Json {
  if (!fs.existsSync(file)) throw new Error(`${file} not found`);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Json;
}

/**
 * Reads a Hugging Face Llama config.json (SmolLM2, TinyLlama, Llama 2/3
 * shapes) as this project's LlamaConfig. Refuses what the graphs do not
 * implement (biases, RoPE scaling, other activations, interleaved RoPE
 * checkpoints) rather than building a different model.
 */
export function llamaConfigFromHf(cfg: Json): LlamaConfig {
  const need = (name: string): number => {
    const v = cfg[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new Error(`config.json: ${name} must be a positive integer`);
    return v;
  };
  if (cfg.model_type !== 'llama') throw new Error(`config.json: model_type "${String(cfg.model_type)}" is not llama`);
  if ((cfg.hidden_act ?? 'silu') !== 'silu') throw new Error(`config.json: hidden_act "${String(cfg.hidden_act)}" is not supported (only silu)`);
  for (const flag of ['attention_bias', 'mlp_bias', 'rope_interleaved'] as const) {
    if (cfg[flag] === true) throw new Error(`config.json: ${flag} is not supported`);
  }
  if (cfg.rope_scaling !== undefined && cfg.rope_scaling !== null) throw new Error('config.json: rope_scaling is not supported');
  if (cfg.tie_word_embeddings === false) throw new Error('config.json: untied embeddings are not supported for random models');
  const dim = need('hidden_size');
  const nHeads = need('num_attention_heads');
  const c: LlamaConfig = {
    dim,
    hiddenDim: need('intermediate_size'),
    nLayers: need('num_hidden_layers'),
    nHeads,
    nKvHeads: cfg.num_key_value_heads === undefined ? nHeads : need('num_key_value_heads'),
    vocabSize: need('vocab_size'),
    maxSeqLen: need('max_position_embeddings'),
    ropeTheta: typeof cfg.rope_theta === 'number' ? cfg.rope_theta : 10000,
    normEps: typeof cfg.rms_norm_eps === 'number' ? cfg.rms_norm_eps : 1e-6,
  };
  if (cfg.head_dim !== undefined && cfg.head_dim !== dim / nHeads) throw new Error(`config.json: head_dim ${String(cfg.head_dim)} is not hidden_size / num_attention_heads`);
  return c;
}

/** Options of {@link makeHubShapedDecoder}. */
export interface HubShapedOptions {
  /** A folder with the hub model's config.json and tokenizer files (e.g. ../shared/models/SmolLM2-135M-Instruct). */
  sourceDir: string;
  outDir: string;
  seed?: number;
  /** Standard deviation of the random weights (default: the config's initializer_range, else 0.02). */
  std?: number;
  /** Build this many layers (config.json says so); each layer keeps the model's shape. Default: the config's. */
  layers?: number;
  /** Also write the fused graph for Llama models (default true). */
  fused?: boolean;
  /** Recorded in config.json's provenance. */
  preset?: string;
}

/** What {@link makeHubShapedDecoder} built. */
export interface HubShapedModel {
  dir: string;
  architecture: 'llama' | 'gpt2';
  parameters: number;
  layers: number;
}

/**
 * Writes a random-weight decoder with the configuration of `sourceDir`'s
 * config.json (its layer count replaced by `layers` when given) and its
 * tokenizer files, as a transformers.js model directory. config.json is the
 * source's, field for field, but for the layer count and an
 * `inference_server` provenance key (transformers.js ignores it). Llama
 * weights are labelled with Hugging Face's half-split RoPE layout, as real
 * checkpoints of these models are. The same seed gives byte-identical files.
 */
export function makeHubShapedDecoder(opts: HubShapedOptions): HubShapedModel {
  const source = readJson(path.join(opts.sourceDir, 'config.json'));
  if (!fs.existsSync(path.join(opts.sourceDir, 'tokenizer.json'))) throw new Error(`${opts.sourceDir} has no tokenizer.json`);
  const seed = opts.seed ?? 1;
  const std = opts.std ?? (typeof source.initializer_range === 'number' ? source.initializer_range : 0.02);
  if (opts.layers !== undefined && (!Number.isInteger(opts.layers) || opts.layers < 1)) throw new Error(`layers must be a positive integer, got ${opts.layers}`);
  const layerKey = source.model_type === 'gpt2' ? 'n_layer' : 'num_hidden_layers';
  const config: Json = { ...source, ...(opts.layers === undefined ? {} : { [layerKey]: opts.layers }) };

  fs.mkdirSync(path.join(opts.outDir, path.dirname(MODEL_FILE)), { recursive: true });
  let built: Omit<HubShapedModel, 'dir'>;
  if (config.model_type === 'llama') {
    const c = llamaConfigFromHf(config);
    const weights = randomLlamaWeights(c, seed, std, 'half-split');
    fs.writeFileSync(path.join(opts.outDir, MODEL_FILE), buildLlamaOnnx(weights));
    if (opts.fused !== false) fs.writeFileSync(path.join(opts.outDir, MODEL_FUSED_FILE), buildLlamaOnnxFused(weights));
    built = { architecture: 'llama', parameters: parameterCount(c), layers: c.nLayers };
  } else if (config.model_type === 'gpt2') {
    const c = gpt2ConfigFromHf(config);
    fs.writeFileSync(path.join(opts.outDir, MODEL_FILE), buildGpt2Onnx(randomGpt2Weights(c, seed, std)));
    built = { architecture: 'gpt2', parameters: gpt2ParameterCount(c), layers: c.layers };
  } else {
    throw new Error(`config.json: model_type "${String(config.model_type)}" is not supported (llama or gpt2)`);
  }
  const provenance = {
    source: 'random',
    from: path.basename(path.resolve(opts.sourceDir)),
    ...(opts.preset ? { preset: opts.preset } : {}),
    seed,
    std,
    ...(opts.layers === undefined ? {} : { layers_of_source: source[layerKey] }),
    formatVersion: HUB_SHAPED_FORMAT_VERSION,
  };
  fs.writeFileSync(path.join(opts.outDir, 'config.json'), JSON.stringify({ ...config, inference_server: provenance }, null, 2));
  for (const f of DECODER_SIDE_FILES) {
    const from = path.join(opts.sourceDir, f);
    // Written anew, not copied: read-only sources give writable copies.
    if (fs.existsSync(from)) fs.writeFileSync(path.join(opts.outDir, f), fs.readFileSync(from));
  }
  return { dir: opts.outDir, ...built };
}

/** The folder of a preset's source files: `<sharedModels>/<folder>`. */
export function hubPresetSource(preset: HubDecoderPresetName, sharedModelsDir: string): string {
  return path.join(sharedModelsDir, HUB_DECODER_PRESETS[preset].folder);
}

/**
 * makeHubShapedDecoder, once: the directory lives in
 * `<cacheRoot>/<source folder>-random-<hash of builder version, source files and options>/`
 * and is reused while complete. Built in a temporary folder and renamed into
 * place, so a crash or a concurrent build never leaves a half-written model
 * where a later run would trust it.
 */
export function cachedHubShapedDecoder(opts: Omit<HubShapedOptions, 'outDir'> & { cacheRoot: string }): string {
  const hash = crypto.createHash('sha256');
  const { cacheRoot, sourceDir, ...rest } = opts;
  hash.update(`hub-shaped-v${HUB_SHAPED_FORMAT_VERSION}\0${JSON.stringify(rest, Object.keys(rest).sort())}\0`);
  for (const f of ['config.json', ...DECODER_SIDE_FILES]) {
    const file = path.join(sourceDir, f);
    if (fs.existsSync(file)) hash.update(f).update(fs.readFileSync(file)).update('\0');
  }
  const key = `${path.basename(path.resolve(sourceDir))}-random-${hash.digest('hex').slice(0, 12)}`;
  const finalDir = path.join(cacheRoot, key);
  if (fs.existsSync(path.join(finalDir, COMPLETE_MARKER))) return finalDir;
  fs.mkdirSync(cacheRoot, { recursive: true });
  const tmpDir = fs.mkdtempSync(path.join(cacheRoot, `.tmp-${key}-`));
  try {
    makeHubShapedDecoder({ ...opts, outDir: tmpDir });
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
