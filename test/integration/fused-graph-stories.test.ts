import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { readLlama2cCheckpoint } from '../../src/engine/llama2c.js';
import { buildLlamaOnnxFused, gqaRotarySupported } from '../../src/engine/onnx-graph-fused.js';
import { buildLlamaOnnx } from '../../src/engine/onnx-graph.js';
import { alone, GqaHarness, runExternal } from '../helpers/fused-graph-harness.js';
import { needFiles, STORIES_CHECKPOINT as STORIES } from '../helpers/models.js';
import { maxAbsDiff } from '../helpers/ort-decoder.js';

// The fused graph on the real stories260K weights; its tests on random weights are in test/unit/fused-graph.test.ts.

const TOL = 1e-4;
const checkpoint = needFiles(STORIES);

describe.skipIf(!checkpoint.present)(checkpoint.title('buildLlamaOnnxFused (stories260K, head_dim 8)'), () => {
  it('rotates with RotaryEmbedding where GroupQueryAttention cannot, in both attention modes', async () => {
    const w = readLlama2cCheckpoint(STORIES);
    const c = w.config;
    expect(gqaRotarySupported(c.dim / c.nHeads)).toBe(false);
    const plain = await ort.InferenceSession.create(buildLlamaOnnx(w));
    const prompts = [
      [1, 403, 407, 261, 378],
      [1, 365, 267],
    ];
    const L = 5;
    const h = new GqaHarness(await ort.InferenceSession.create(buildLlamaOnnxFused(w, { attention: 'gqa' })), c, 2);
    const g = await h.run(0, prompts, prompts.map((p) => p.length - 1), L);
    const empty = Array.from({ length: 2 * c.nLayers }, () => new Float32Array(2 * c.nKvHeads * (c.dim / c.nHeads)));
    const e = (await runExternal(await ort.InferenceSession.create(buildLlamaOnnxFused(w)), c, prompts, [0, 0], empty, 1)).logits!.data as Float32Array;
    for (const [b, p] of prompts.entries()) {
      const ref = await alone(plain, c, p);
      expect(maxAbsDiff(g.subarray(b * c.vocabSize, (b + 1) * c.vocabSize), ref)).toBeLessThan(TOL);
      expect(maxAbsDiff(e.subarray(b * c.vocabSize, (b + 1) * c.vocabSize), ref)).toBeLessThan(TOL);
    }
  });
});
