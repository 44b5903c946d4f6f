import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { AutoModelForCausalLM, AutoTokenizer, env, type PreTrainedTokenizer } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLlama2cCheckpoint, readLlama2cCheckpoint, readLlama2cTokenizer } from '../../src/engine/llama2c.js';
import { findTokenizerBeside, importLlama2c, MODEL_FILE, MODEL_FUSED_FILE, resolveCheckpointModel } from '../../src/engine/model-dir.js';
import type { LlamaConfig } from '../../src/engine/onnx-graph.js';
import { STORIES_CHECKPOINT as CHECKPOINT, STORIES_TOKENIZER as TOKENIZER, storiesModel } from '../helpers/models.js';
import { emptyPast, runStep } from '../helpers/ort-decoder.js';

env.allowRemoteModels = false;

/** Golden greedy outputs of llama2.c run.c (../shared/models/README.md). */
const GOLDEN: [string, string][] = [
  [
    'Once upon a time',
    'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.',
  ],
  ["Lily's mom said", `Lily's mom said, "Lily, we can go to the park with her mom. We can play with the park."`],
  [
    'One day, a big bear',
    'One day, a big bear named Ben went to the beach with his mom. They saw a big, red ball. The ball was very shiny and shiny. Ben wanted to play with the ball.',
  ],
];

/** Greedy decoding straight on the ONNX session with a KV cache; stops at BOS or EOS. */
async function greedy(session: ort.InferenceSession, c: LlamaConfig, prompt: number[], maxNew: number): Promise<number[]> {
  const ids = [...prompt];
  let input = prompt;
  let past = emptyPast(c, 1);
  for (let step = 0; step < maxNew; step++) {
    const start = ids.length - input.length;
    const r = await runStep(session, c, [input], [ids.map(() => 1)], [input.map((_, i) => start + i)], past);
    const last = r.logits.subarray((input.length - 1) * c.vocabSize, input.length * c.vocabSize);
    let best = 0;
    for (let v = 1; v < c.vocabSize; v++) if (last[v]! > last[best]!) best = v;
    if (best === 1 || best === 2) break;
    ids.push(best);
    input = [best];
    past = r.present;
  }
  return ids;
}

describe.skipIf(!storiesModel.present)(storiesModel.title('llama2.c stories260K import'), () => {
  let tmp: string;
  let dir: string;
  let config: LlamaConfig;

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'llama2c-import-'));
    dir = path.join(tmp, 'model');
    await importLlama2c({ checkpoint: CHECKPOINT, tokenizer: TOKENIZER, outDir: dir });
    config = readLlama2cCheckpoint(CHECKPOINT).config;
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('reads the header and tied weights', () => {
    expect(config).toMatchObject({ dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, maxSeqLen: 512 });
    expect(readLlama2cCheckpoint(CHECKPOINT).wcls).toBeUndefined();
    const vocab = readLlama2cTokenizer(TOKENIZER, 512);
    expect(vocab.pieces[259]).toBe(' t');
  });

  it('reads an untied classifier when the header vocab is negative', () => {
    const buf = fs.readFileSync(CHECKPOINT);
    const untied = Buffer.concat([buf, Buffer.alloc(512 * 64 * 4, 0x3f)]); // wcls filled with a recognizable value
    untied.writeInt32LE(-512, 20);
    const w = parseLlama2cCheckpoint(untied);
    expect(w.wcls).toHaveLength(512 * 64);
    expect(w.wcls![0]).toBeCloseTo(0.7470588, 6); // float32 0x3f3f3f3f
    expect(() => parseLlama2cCheckpoint(buf.subarray(0, 1000))).toThrow(/truncated/);
  });

  it('writes a transformers.js model directory', () => {
    for (const f of [MODEL_FILE, MODEL_FUSED_FILE, 'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']) {
      expect(fs.existsSync(path.join(dir, f)), f).toBe(true);
    }
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(cfg).toMatchObject({ model_type: 'llama', num_key_value_heads: 4, head_dim: 8, tie_word_embeddings: true });
  });

  it('reproduces the golden run.c outputs with a greedy loop on onnxruntime-node', async () => {
    const session = await ort.InferenceSession.create(path.join(dir, MODEL_FILE));
    const tokenizer: PreTrainedTokenizer = await AutoTokenizer.from_pretrained(dir);
    for (const [prompt, expected] of GOLDEN) {
      const ids = await greedy(session, config, tokenizer.encode(prompt), 120);
      const text = tokenizer.decode(ids, { skip_special_tokens: true });
      expect(text.startsWith(expected), `${prompt}\n got: ${text}`).toBe(true);
    }
  });

  it('loads and generates with plain transformers.js', async () => {
    const tokenizer = await AutoTokenizer.from_pretrained(dir);
    const model = await AutoModelForCausalLM.from_pretrained(dir, { dtype: 'fp32' });
    try {
      const inputs = tokenizer('Once upon a time');
      const out = (await model.generate({ ...inputs, max_new_tokens: 30, do_sample: false })) as { tolist(): bigint[][] };
      const text = tokenizer.decode(out.tolist()[0]!.map(Number), { skip_special_tokens: true });
      const golden = GOLDEN[0]![1];
      expect(text.length).toBeGreaterThan('Once upon a time'.length + 60);
      // 30 new tokens stop short of the golden text's end.
      expect(golden.startsWith(text), text).toBe(true);
    } finally {
      await model.dispose();
    }
  });

  it('caches imports by content hash and reuses them', async () => {
    const cache = path.join(tmp, 'cache');
    const first = await resolveCheckpointModel(CHECKPOINT, undefined, cache);
    const modelPath = path.join(first, MODEL_FILE);
    const mtime = fs.statSync(modelPath).mtimeMs;
    await new Promise((r) => setTimeout(r, 20));
    const second = await resolveCheckpointModel(CHECKPOINT, TOKENIZER, cache);
    expect(second).toBe(first);
    expect(fs.statSync(modelPath).mtimeMs).toBe(mtime);
    // Only the finished folder remains: no temporary debris.
    expect(fs.readdirSync(cache)).toEqual([path.basename(first)]);
    expect(findTokenizerBeside(CHECKPOINT, 512)).toBe(TOKENIZER);
  });

  it('replaces an incomplete cache folder left by a crash', async () => {
    const cache = path.join(tmp, 'cache-crash');
    const good = await resolveCheckpointModel(CHECKPOINT, TOKENIZER, cache);
    fs.rmSync(path.join(good, 'import-info.json'));
    fs.rmSync(path.join(good, MODEL_FILE));
    const again = await resolveCheckpointModel(CHECKPOINT, TOKENIZER, cache);
    expect(again).toBe(good);
    expect(fs.existsSync(path.join(again, MODEL_FILE))).toBe(true);
  });
});
