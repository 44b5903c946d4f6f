import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvBatch } from '../../src/engine/kv-batch.js';
import { readLlama2cCheckpoint } from '../../src/engine/llama2c.js';
import { importLlama2c, MODEL_FUSED_FILE } from '../../src/engine/model-dir.js';
import { Tokenizer } from '../../src/engine/tokenizer.js';
import { GOLDEN } from '../helpers/golden.js';
import { STORIES_CHECKPOINT as CHECKPOINT, STORIES_TOKENIZER as TOKENIZER, storiesModel } from '../helpers/models.js';

// KvBatch on the real stories260K model; its model-free tests are in test/unit/kv-batch.test.ts.

const argmax = (a: Float32Array): number => {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
};

describe.skipIf(!storiesModel.present)(storiesModel.title('KvBatch (stories260K)'), () => {
  let tmp: string;
  let dir: string;
  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kv-batch-'));
    dir = path.join(tmp, 'model');
    await importLlama2c({ checkpoint: CHECKPOINT, tokenizer: TOKENIZER, outDir: dir });
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('reproduces the golden run.c outputs, all prompts decoded together, rows removed as they finish', async () => {
    const config = readLlama2cCheckpoint(CHECKPOINT).config;
    const tokenizer = await Tokenizer.fromDirectory(dir);
    const kv = await KvBatch.create(path.join(dir, MODEL_FUSED_FILE), config, { maxBatch: GOLDEN.length, initialCapacity: 16 });
    const ids = GOLDEN.map(([prompt]) => tokenizer.encode(prompt));
    const rowOf = ids.map((_, i) => i); // request -> row (-1 when done)
    let logits = await kv.append(ids);
    const maxNew = 120;
    for (let stepNo = 0; kv.size > 0; stepNo++) {
      const done: number[] = [];
      rowOf.forEach((row, req) => {
        if (row < 0) return;
        const tok = argmax(logits[row]!);
        if (tok === 1 || tok === 2 || stepNo >= maxNew) done.push(row);
        else ids[req]!.push(tok);
      });
      if (done.length) {
        const mapping = kv.remove(done);
        rowOf.forEach((row, req) => (rowOf[req] = row < 0 ? -1 : mapping[row]!));
      }
      if (kv.size === 0) break;
      const tokens = new Array<number>(kv.size);
      rowOf.forEach((row, req) => {
        if (row >= 0) tokens[row] = ids[req]!.at(-1)!;
      });
      logits = await kv.step(tokens);
    }
    for (const [i, [prompt, golden]] of GOLDEN.entries()) {
      const text = tokenizer.decode(ids[i]!);
      expect(text.startsWith(golden), `${prompt}\n got: ${text}`).toBe(true);
    }
    await kv.dispose();
  });
});
