/**
 * Writes a random-weight model of a named preset as a transformers.js model directory.
 *   tsx scripts/make-model.ts --preset tiny|distil --out DIR [--seed N]
 */
import fs from 'node:fs';
import path from 'node:path';
import { makeRandomModel, MODEL_FILE } from '../src/engine/model-dir.js';
import { getPreset, parameterCount, PRESETS } from '../src/engine/presets.js';
import { parseCli } from './cli-args.js';

const USAGE = `tsx scripts/make-model.ts --preset ${Object.keys(PRESETS).join('|')} --out DIR [--seed N]`;
const args = parseCli(
  { preset: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' }, help: { type: 'boolean' } },
  USAGE,
  ['preset', 'out'],
);

try {
  const config = getPreset(args.preset!);
  if (args.seed !== undefined && !/^\d{1,9}$/.test(args.seed)) throw new Error(`--seed must be a non-negative integer, got "${args.seed}"`);
  const seed = args.seed === undefined ? 1 : Number(args.seed);
  const outDir = path.resolve(args.out!);
  const started = performance.now();
  await makeRandomModel({ preset: args.preset!, seed, outDir });
  const size = fs.statSync(path.join(outDir, MODEL_FILE)).size;
  console.log(
    `wrote ${args.preset} (${(parameterCount(config) / 1e6).toFixed(1)}M parameters, seed ${seed}) to ${outDir} in ` +
      `${((performance.now() - started) / 1000).toFixed(2)} s; ${MODEL_FILE} is ${(size / 1e6).toFixed(1)} MB`,
  );
} catch (err) {
  process.stderr.write(`error: ${(err as Error).message}\n`);
  process.exit(1);
}
