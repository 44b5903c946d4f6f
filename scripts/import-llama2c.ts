/**
 * Imports a llama2.c checkpoint into a transformers.js model directory.
 *   tsx scripts/import-llama2c.ts --checkpoint model.bin [--tokenizer tok512.bin] --out DIR [--quantize int8|int4]
 * Without --tokenizer, the tok*.bin beside the checkpoint is used. With
 * --quantize, the fused graph's linear weights are block-quantized
 * (MatMulNBits; src/engine/quantize.ts); the plain graph stays fp32.
 */
import fs from 'node:fs';
import path from 'node:path';
import { findTokenizerBeside, importLlama2c, MODEL_FILE, MODEL_FUSED_FILE } from '../src/engine/model-dir.js';
import { parseQuantizeMode, QUANTIZE_MODES } from '../src/engine/quantize.js';
import { readLlama2cHeader } from '../src/engine/llama2c.js';
import { parseCli } from './cli-args.js';

const USAGE = `tsx scripts/import-llama2c.ts --checkpoint FILE.bin [--tokenizer tok*.bin] --out DIR [--quantize ${QUANTIZE_MODES.join('|')}]`;
const args = parseCli(
  { checkpoint: { type: 'string' }, tokenizer: { type: 'string' }, out: { type: 'string' }, quantize: { type: 'string' }, help: { type: 'boolean' } },
  USAGE,
  ['checkpoint', 'out'],
);

try {
  const checkpoint = path.resolve(args.checkpoint!);
  if (!fs.existsSync(checkpoint)) throw new Error(`checkpoint not found: ${checkpoint}`);
  const vocabSize = readLlama2cHeader(checkpoint).config.vocabSize;
  const tokenizer = args.tokenizer ? path.resolve(args.tokenizer) : findTokenizerBeside(checkpoint, vocabSize);
  if (!fs.existsSync(tokenizer)) throw new Error(`tokenizer not found: ${tokenizer}`);
  const quantize = args.quantize === undefined ? undefined : parseQuantizeMode(args.quantize);
  const outDir = path.resolve(args.out!);
  const started = performance.now();
  await importLlama2c({ checkpoint, tokenizer, outDir, ...(quantize ? { quantize } : {}) });
  const mb = (f: string) => `${(fs.statSync(path.join(outDir, f)).size / 1e6).toFixed(2)} MB`;
  console.log(
    `imported ${checkpoint} (+ ${path.basename(tokenizer)}) into ${outDir} in ${((performance.now() - started) / 1000).toFixed(2)} s; ` +
      `${MODEL_FILE} is ${mb(MODEL_FILE)} (fp32), ${MODEL_FUSED_FILE} is ${mb(MODEL_FUSED_FILE)} (${quantize ?? 'fp32'})`,
  );
} catch (err) {
  process.stderr.write(`error: ${(err as Error).message}\n`);
  process.exit(1);
}
