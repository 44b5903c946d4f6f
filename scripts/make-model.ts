/**
 * Writes a random-weight model of a named preset as a transformers.js model directory.
 *   tsx scripts/make-model.ts --preset tiny|distil|minilm --out DIR [--seed N] [--source DIR]
 * Decoder presets (tiny, distil) get a synthetic tokenizer. Encoder presets
 * (minilm) make a feature-extraction directory whose config.json and
 * tokenizer files are those of --source (default ../shared/models/<the
 * preset's model>), copied at run time, never kept in this repository.
 */
import fs from 'node:fs';
import path from 'node:path';
import { bertConfigFromHf, bertParameterCount } from '../src/engine/bert-graph.js';
import { ENCODER_PRESETS, encoderPresetSource, isEncoderPreset, makeRandomEncoder } from '../src/engine/encoder-dir.js';
import { makeRandomModel, MODEL_FILE } from '../src/engine/model-dir.js';
import { getPreset, parameterCount, PRESETS } from '../src/engine/presets.js';
import { parseCli } from './cli-args.js';

const SHARED_MODELS = path.resolve(import.meta.dirname, '../../shared/models');
const USAGE = `tsx scripts/make-model.ts --preset ${[...Object.keys(PRESETS), ...Object.keys(ENCODER_PRESETS)].join('|')} --out DIR [--seed N] [--source DIR (encoder presets)]`;
const args = parseCli(
  { preset: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' }, source: { type: 'string' }, help: { type: 'boolean' } },
  USAGE,
  ['preset', 'out'],
);

try {
  if (args.seed !== undefined && !/^\d{1,9}$/.test(args.seed)) throw new Error(`--seed must be a non-negative integer, got "${args.seed}"`);
  const seed = args.seed === undefined ? 1 : Number(args.seed);
  const outDir = path.resolve(args.out!);
  const started = performance.now();
  let params: number;
  if (isEncoderPreset(args.preset!)) {
    const sourceDir = path.resolve(args.source ?? encoderPresetSource(args.preset, SHARED_MODELS));
    params = bertParameterCount(bertConfigFromHf(JSON.parse(fs.readFileSync(path.join(sourceDir, 'config.json'), 'utf8'))));
    makeRandomEncoder({ sourceDir, outDir, seed });
  } else {
    if (!Object.hasOwn(PRESETS, args.preset!)) {
      throw new Error(`unknown preset "${args.preset}"; expected one of: ${[...Object.keys(PRESETS), ...Object.keys(ENCODER_PRESETS)].join(', ')}`);
    }
    if (args.source !== undefined) throw new Error('--source is for encoder presets only');
    params = parameterCount(getPreset(args.preset!));
    await makeRandomModel({ preset: args.preset!, seed, outDir });
  }
  const size = fs.statSync(path.join(outDir, MODEL_FILE)).size;
  console.log(
    `wrote ${args.preset} (${(params / 1e6).toFixed(1)}M parameters, seed ${seed}) to ${outDir} in ` +
      `${((performance.now() - started) / 1000).toFixed(2)} s; ${MODEL_FILE} is ${(size / 1e6).toFixed(1)} MB`,
  );
} catch (err) {
  process.stderr.write(`error: ${(err as Error).message}\n`);
  process.exit(1);
}
