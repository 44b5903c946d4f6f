/**
 * Writes a preset's random weights (the same as `npm run make-model -- --preset
 * P --seed N` serves) as a llama2.c checkpoint plus its tokenizer, for
 * llama.cpp's `llama-convert-llama2c-to-ggml`:
 *   tsx bench/llamacpp/export-llama2c.ts --preset llama-85m --seed 1 --out DIR
 * writes DIR/model.bin and DIR/tokenizer.bin, then reads both back with the
 * engine's own parsers and checks every weight and piece survived.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseLlama2cCheckpoint, parseLlama2cTokenizer } from '../../src/engine/llama2c.js';
import type { LlamaWeights } from '../../src/engine/onnx-graph.js';
import { getPreset } from '../../src/engine/presets.js';
import { randomLlamaWeights } from '../../src/engine/random-weights.js';
import { buildSyntheticVocab } from '../../src/engine/synthetic-vocab.js';
import { parseCli } from '../../scripts/cli-args.js';
import { serializeLlama2cCheckpoint, serializeLlama2cTokenizer } from './llama2c-writer.js';

export interface ExportedLlama2c {
  checkpoint: string;
  tokenizer: string;
  bytes: number;
}

const bytesOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Throws unless `b` holds bit-identical weights to `a`. */
function assertSameWeights(a: LlamaWeights, b: LlamaWeights): void {
  if (JSON.stringify(a.config) !== JSON.stringify(b.config)) throw new Error(`config differs after round trip: ${JSON.stringify(b.config)}`);
  const pairs: Array<[string, Float32Array, Float32Array | undefined]> = [
    ['tokenEmbedding', a.tokenEmbedding, b.tokenEmbedding],
    ['rmsFinal', a.rmsFinal, b.rmsFinal],
  ];
  a.layers.forEach((l, i) => {
    for (const k of ['rmsAtt', 'wq', 'wk', 'wv', 'wo', 'rmsFfn', 'w1', 'w2', 'w3'] as const) pairs.push([`layers.${i}.${k}`, l[k], b.layers[i]?.[k]]);
  });
  for (const [name, x, y] of pairs) {
    if (!y || !bytesOf(x).equals(bytesOf(y))) throw new Error(`${name} differs after round trip`);
  }
  if ((a.wcls === undefined) !== (b.wcls === undefined)) throw new Error('classifier tying differs after round trip');
}

/** Writes `<outDir>/model.bin` and `<outDir>/tokenizer.bin` for a preset and seed, verified by parsing them back. */
export function exportLlama2cModel(opts: { preset: string; seed: number; outDir: string }): ExportedLlama2c {
  const config = getPreset(opts.preset);
  const weights = randomLlamaWeights(config, opts.seed);
  const vocab = buildSyntheticVocab(config.vocabSize);
  const ckpt = serializeLlama2cCheckpoint(weights);
  const tok = serializeLlama2cTokenizer(vocab);
  assertSameWeights(weights, parseLlama2cCheckpoint(ckpt));
  const vocabBack = parseLlama2cTokenizer(tok, config.vocabSize);
  if (vocabBack.pieces.some((p, i) => p !== vocab.pieces[i] || vocabBack.scores[i] !== vocab.scores[i])) throw new Error('tokenizer differs after round trip');
  fs.mkdirSync(opts.outDir, { recursive: true });
  const checkpoint = path.join(opts.outDir, 'model.bin');
  const tokenizer = path.join(opts.outDir, 'tokenizer.bin');
  fs.writeFileSync(`${checkpoint}.partial`, ckpt);
  fs.renameSync(`${checkpoint}.partial`, checkpoint);
  fs.writeFileSync(tokenizer, tok);
  return { checkpoint, tokenizer, bytes: ckpt.length };
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const args = parseCli(
    { preset: { type: 'string' }, seed: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean' } },
    'tsx bench/llamacpp/export-llama2c.ts --preset NAME [--seed N] --out DIR',
    ['preset', 'out'],
  );
  try {
    if (args.seed !== undefined && !/^\d{1,9}$/.test(args.seed)) throw new Error(`--seed must be a non-negative integer, got "${args.seed}"`);
    const started = performance.now();
    const out = exportLlama2cModel({ preset: args.preset!, seed: args.seed === undefined ? 1 : Number(args.seed), outDir: path.resolve(args.out!) });
    console.log(`wrote ${out.checkpoint} (${(out.bytes / 1e6).toFixed(1)} MB) and ${out.tokenizer} in ${((performance.now() - started) / 1000).toFixed(1)} s; round trip checked`);
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
