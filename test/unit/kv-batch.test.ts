import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { KvBatch } from '../../src/engine/kv-batch.js';
import { buildLlamaOnnxFused } from '../../src/engine/onnx-graph-fused.js';
import { buildLlamaOnnx, type LlamaConfig } from '../../src/engine/onnx-graph.js';
import { getPreset } from '../../src/engine/presets.js';
import { randomLlamaWeights } from '../../src/engine/random-weights.js';
import { emptyPast, logitsAt, maxAbsDiff, runStep } from '../helpers/ort-decoder.js';

const TOL = 1e-4;

/** Last-position logits of `tokens` run alone through the plain graph. */
async function alone(plain: ort.InferenceSession, c: LlamaConfig, tokens: number[]): Promise<Float32Array> {
  const r = await runStep(plain, c, [tokens], [tokens.map(() => 1)], [tokens.map((_, i) => i)], emptyPast(c, 1));
  return logitsAt(r.logits, tokens.length, c.vocabSize, 0, tokens.length - 1).slice();
}

describe('KvBatch (tiny preset)', () => {
  const config = getPreset('tiny');
  const weights = randomLlamaWeights(config, 3, 0.15);
  let plain: ort.InferenceSession;
  let fused: Uint8Array;

  beforeAll(async () => {
    plain = await ort.InferenceSession.create(buildLlamaOnnx(weights));
    fused = buildLlamaOnnxFused(weights);
  });

  it('keeps every row equal to that row decoded alone through appends at different times, steps, chunks and removals', async () => {
    // A 4-position initial reservation: the buffers must regrow while rows are live.
    const kv = await KvBatch.create(fused, config, { maxBatch: 5, initialCapacity: 4 });
    const seqs: number[][] = []; // the caller's view: row -> tokens so far
    let t = 100;
    const expectRows = async (logits: Float32Array[], rows: number[]): Promise<void> => {
      expect(logits).toHaveLength(rows.length);
      for (const [i, r] of rows.entries()) {
        expect(maxAbsDiff(logits[i]!, await alone(plain, config, seqs[r]!)), `row ${r}`).toBeLessThan(TOL);
        expect(kv.length(r)).toBe(seqs[r]!.length);
      }
    };
    const step = async (): Promise<void> => {
      const tokens = seqs.map(() => t++ % config.vocabSize);
      tokens.forEach((tok, r) => seqs[r]!.push(tok));
      await expectRows(await kv.step(tokens), [...seqs.keys()]);
    };
    const append = async (prompts: number[][]): Promise<void> => {
      const first = seqs.length;
      seqs.push(...prompts.map((p) => [...p]));
      await expectRows(await kv.append(prompts), prompts.map((_, i) => first + i));
    };
    const remove = (rows: number[]): void => {
      const mapping = kv.remove(rows);
      const next: number[][] = [];
      mapping.forEach((to, from) => {
        if (to >= 0) next[to] = seqs[from]!;
      });
      expect(next.filter(Boolean)).toHaveLength(seqs.length - rows.length);
      seqs.length = 0;
      seqs.push(...next);
      expect(kv.size).toBe(seqs.length);
    };

    await append([
      [1, 5, 9, 200, 3, 77, 8],
      [1, 300, 4],
    ]);
    expect(kv.reserved).toBeGreaterThanOrEqual(7);
    await step();
    await step();
    await append([[1, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70]]); // joins later, longer
    await step();
    const chunk = [400, 401, 402, 403, 404];
    seqs[1]!.push(...chunk);
    await expectRows([await kv.extend(1, chunk)], [1]);
    await step();
    remove([0]); // the last row moves into the hole
    await step();
    await append([[1, 2], [1, 3, 4, 5], [1, 6]]);
    expect(kv.size).toBe(5);
    await step();
    remove([1, 4, 2]); // several holes, one of them the last row
    await step();
    await step();
    // A long row regrows the reservation; when it leaves, the reservation shrinks back.
    const grown = kv.reserved;
    await append([Array.from({ length: 100 }, (_, i) => 3 + i)]);
    expect(kv.reserved).toBeGreaterThan(grown);
    await step();
    remove([seqs.length - 1]);
    expect(kv.reserved).toBe(grown);
    await step();
    remove([0, 1]);
    expect(kv.size).toBe(0);
    await append([[1, 9, 9, 9]]);
    await step();
    await kv.dispose();
  });

  it('rejects misuse with clear errors', async () => {
    const kv = await KvBatch.create(fused, config, { maxBatch: 2 });
    await expect(kv.append([[1], [2], [3]])).rejects.toThrow(/capacity 2/);
    await kv.append([[1, 2]]);
    await expect(kv.step([])).rejects.toThrow(/one token per row/);
    await expect(kv.extend(0, new Array(config.maxSeqLen).fill(3))).rejects.toThrow(/beyond the model's context/);
    await expect(kv.extend(1, [3])).rejects.toThrow(/row 1 is not live/);
    await expect(kv.append([[]])).rejects.toThrow(/at least one/);
    expect(() => kv.remove([3])).toThrow(/not live/);
    expect(kv.size).toBe(1);
    kv.rewind(0, 1);
    expect(kv.length(0)).toBe(1);
    await expect(KvBatch.create(buildLlamaOnnx(weights), config, { maxBatch: 1 })).rejects.toThrow(/not a fused graph/);
    await kv.dispose();
  });
});
