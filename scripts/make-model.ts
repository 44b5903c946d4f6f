/**
 * Writes a random-weight model of a named preset as a transformers.js model directory.
 *   tsx scripts/make-model.ts --preset tiny|distil|llama-85m|smollm2|gpt2|distilgpt2|minilm --out DIR
 *     [--seed N] [--source DIR] [--layers N] [--std X] [--quantize int8|int4]
 * --quantize (Llama presets: tiny, distil, llama-85m, ...) block-quantizes the fused
 * graph's linear weights (MatMulNBits; src/engine/quantize.ts); the plain graph stays fp32.
 * Decoder presets tiny and distil get a synthetic tokenizer. Hub presets
 * (smollm2, gpt2, distilgpt2: decoders; minilm: an encoder) take the
 * config.json and tokenizer files of --source (default ../shared/models/<the
 * preset's model>), copied at run time, never kept in this repository;
 * --layers builds fewer (or more) layers of the same shape, and config.json
 * says so.
 */
import fs from 'node:fs';
import path from 'node:path';
import { bertConfigFromHf, bertParameterCount } from '../src/engine/bert-graph.js';
import { ENCODER_PRESETS, encoderPresetSource, isEncoderPreset, makeRandomEncoder } from '../src/engine/encoder-dir.js';
import { makeRandomModel, MODEL_FILE, MODEL_FUSED_FILE } from '../src/engine/model-dir.js';
import { parseQuantizeMode, QUANTIZE_MODES } from '../src/engine/quantize.js';
import { getPreset, parameterCount, PRESETS } from '../src/engine/presets.js';
import { HUB_DECODER_PRESETS, hubPresetSource, isHubDecoderPreset, makeHubShapedDecoder } from '../src/engine/hub-model-dir.js';
import { parseCli } from './cli-args.js';

const SHARED_MODELS = path.resolve(import.meta.dirname, '../../shared/models');
const ALL_PRESETS = [...Object.keys(PRESETS), ...Object.keys(HUB_DECODER_PRESETS), ...Object.keys(ENCODER_PRESETS)];
const USAGE =
  `tsx scripts/make-model.ts --preset ${ALL_PRESETS.join('|')} --out DIR [--seed N] ` +
  `[--source DIR (hub presets)] [--layers N] [--std X] (hub decoder presets) [--quantize ${QUANTIZE_MODES.join('|')}] (Llama presets)`;
const args = parseCli(
  {
    preset: { type: 'string' },
    out: { type: 'string' },
    seed: { type: 'string' },
    source: { type: 'string' },
    layers: { type: 'string' },
    std: { type: 'string' },
    quantize: { type: 'string' },
    help: { type: 'boolean' },
  },
  USAGE,
  ['preset', 'out'],
);

try {
  if (args.seed !== undefined && !/^\d{1,9}$/.test(args.seed)) throw new Error(`--seed must be a non-negative integer, got "${args.seed}"`);
  const seed = args.seed === undefined ? 1 : Number(args.seed);
  const quantize = args.quantize === undefined ? undefined : parseQuantizeMode(args.quantize);
  if (quantize && !Object.hasOwn(PRESETS, args.preset!)) {
    throw new Error(`--quantize is for the Llama presets only (${Object.keys(PRESETS).join(', ')})`);
  }
  const outDir = path.resolve(args.out!);
  const started = performance.now();
  let params: number;
  const hubOnly = (name: string) => {
    if (args[name as 'layers' | 'std'] !== undefined) throw new Error(`--${name} is for hub decoder presets only (${Object.keys(HUB_DECODER_PRESETS).join(', ')})`);
  };
  if (isHubDecoderPreset(args.preset!)) {
    const preset = HUB_DECODER_PRESETS[args.preset];
    if (args.layers !== undefined && !/^\d{1,3}$/.test(args.layers)) throw new Error(`--layers must be a positive integer, got "${args.layers}"`);
    const std = args.std === undefined ? undefined : Number(args.std);
    if (std !== undefined && !(std > 0 && std < 10)) throw new Error(`--std must be a positive number, got "${args.std}"`);
    const built = makeHubShapedDecoder({
      sourceDir: path.resolve(args.source ?? hubPresetSource(args.preset, SHARED_MODELS)),
      outDir,
      seed,
      std,
      layers: args.layers === undefined ? preset.layers : Number(args.layers),
      preset: args.preset,
    });
    params = built.parameters;
  } else if (isEncoderPreset(args.preset!)) {
    hubOnly('layers');
    hubOnly('std');
    const sourceDir = path.resolve(args.source ?? encoderPresetSource(args.preset, SHARED_MODELS));
    params = bertParameterCount(bertConfigFromHf(JSON.parse(fs.readFileSync(path.join(sourceDir, 'config.json'), 'utf8'))));
    makeRandomEncoder({ sourceDir, outDir, seed });
  } else {
    if (!Object.hasOwn(PRESETS, args.preset!)) {
      throw new Error(`unknown preset "${args.preset}"; expected one of: ${ALL_PRESETS.join(', ')}`);
    }
    if (args.source !== undefined) throw new Error('--source is for hub presets only');
    hubOnly('layers');
    hubOnly('std');
    params = parameterCount(getPreset(args.preset!));
    await makeRandomModel({ preset: args.preset!, seed, outDir, ...(quantize ? { quantize } : {}) });
  }
  const size = fs.statSync(path.join(outDir, MODEL_FILE)).size;
  const fused = path.join(outDir, MODEL_FUSED_FILE);
  const fusedNote = fs.existsSync(fused) ? `, ${MODEL_FUSED_FILE} is ${(fs.statSync(fused).size / 1e6).toFixed(1)} MB (${quantize ?? 'fp32'})` : '';
  console.log(
    `wrote ${args.preset} (${(params / 1e6).toFixed(1)}M parameters, seed ${seed}) to ${outDir} in ` +
      `${((performance.now() - started) / 1000).toFixed(2)} s; ${MODEL_FILE} is ${(size / 1e6).toFixed(1)} MB${fusedNote}`,
  );
} catch (err) {
  process.stderr.write(`error: ${(err as Error).message}\n`);
  process.exit(1);
}
