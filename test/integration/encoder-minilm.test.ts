import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { pipeline } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bertConfigFromHf, type BertWeights } from '../../src/engine/bert-graph.js';
import { DecoderMeanPool } from '../../src/engine/decoder-pooling.js';
import { TransformersEncoder } from '../../src/engine/encoder.js';
import { resolveCheckpointModel } from '../../src/engine/model-dir.js';
import { randomBertWeights } from '../../src/engine/random-weights.js';
import { l2Normalize } from '../../src/services/embeddings/batcher.js';
import { bertReference, meanPooled } from '../helpers/bert-reference.js';
import { MINILM_SOURCE, minilmFiles, STORIES_CHECKPOINT, STORIES_TOKENIZER, storiesModel, TEST_ENCODER, testEncoderDir } from '../helpers/models.js';
import { maxAbsDiff } from '../helpers/ort-decoder.js';
import { MODEL_CACHE } from '../helpers/server.js';

const TEXTS = ['Hello, world! Once upon a time', 'A cat.', 'The quick brown fox jumps over the lazy dog near the river bank.'];

const norm = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));

describe.skipIf(!minilmFiles.present)(minilmFiles.title('a random-weight all-MiniLM-L6-v2, loaded as a hub model is'), () => {
  let dir: string;
  let weights: BertWeights;
  let encoder: TransformersEncoder;

  beforeAll(async () => {
    dir = testEncoderDir();
    weights = randomBertWeights(bertConfigFromHf(JSON.parse(fs.readFileSync(path.join(MINILM_SOURCE, 'config.json'), 'utf8'))), TEST_ENCODER.seed, TEST_ENCODER.std);
    encoder = await TransformersEncoder.load({ kind: 'dir', dir }, 1);
  });
  afterAll(async () => {
    await encoder?.close();
  });

  it('is a complete feature-extraction directory with the real config and tokenizer', () => {
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/model.onnx']) expect(fs.existsSync(path.join(dir, f))).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'tokenizer.json'))).toEqual(fs.readFileSync(path.join(MINILM_SOURCE, 'tokenizer.json')));
    expect(encoder.dimensions).toBe(384);
    expect(encoder.maxTokens).toBe(512);
  });

  it('tokenizes with WordPiece and [CLS] … [SEP], and truncates the content, not the specials', () => {
    expect(encoder.tokenize(TEXTS[0]!)).toEqual([101, 7592, 1010, 2088, 999, 2320, 2588, 1037, 2051, 102]);
    const long = encoder.tokenize('word '.repeat(600));
    expect(long.length).toBe(602);
    const cut = encoder.tokenize('word '.repeat(600), 512);
    expect(cut).toHaveLength(512);
    expect([cut[0], cut[510], cut[511]]).toEqual([101, long[510], 102]);
  });

  it('pools to the independent reference forward within 1e-4, padded together in one run', async () => {
    const rows = TEXTS.map((t) => encoder.tokenize(t));
    const pooled = await encoder.embed(rows);
    rows.forEach((ids, i) => {
      const ref = bertReference(weights, ids);
      expect(maxAbsDiff(pooled[i]!, meanPooled(ref))).toBeLessThan(1e-4);
      expect(maxAbsDiff(l2Normalize(Float32Array.from(pooled[i]!)), meanPooled(ref, true))).toBeLessThan(1e-4);
    });
  });

  it('gives a batch the vectors of its items run one by one', async () => {
    const rows = TEXTS.map((t) => encoder.tokenize(t));
    const batch = await encoder.embed(rows);
    for (const [i, row] of rows.entries()) {
      const [alone] = await encoder.embed([row]);
      expect(maxAbsDiff(batch[i]!, alone!)).toBeLessThan(1e-5);
    }
  });

  it("agrees with transformers.js's own pipeline('feature-extraction') on the same directory", async () => {
    const extractor = await pipeline('feature-extraction', dir, { local_files_only: true, dtype: 'fp32' });
    try {
      const theirs = await extractor(TEXTS, { pooling: 'mean', normalize: true });
      const ours = (await encoder.embed(TEXTS.map((t) => encoder.tokenize(t)))).map((v) => l2Normalize(v));
      ours.forEach((v, i) => {
        expect(maxAbsDiff(v, (theirs.data as Float32Array).subarray(i * 384, (i + 1) * 384))).toBeLessThan(1e-5);
        expect(norm(v)).toBeCloseTo(1, 6);
      });
    } finally {
      await extractor.dispose();
    }
  });
});

describe.skipIf(!storiesModel.present)(storiesModel.title("stories260K's mean-pooled hidden states (the decoder fallback)"), () => {
  let dir: string;
  let pool: DecoderMeanPool;
  let full: ort.InferenceSession;

  beforeAll(async () => {
    dir = await resolveCheckpointModel(STORIES_CHECKPOINT, STORIES_TOKENIZER, path.join(MODEL_CACHE, 'llama2c'));
    pool = await DecoderMeanPool.load(dir, 1);
    full = await ort.InferenceSession.create(path.join(dir, 'onnx/model.onnx'));
  });
  afterAll(async () => {
    await pool?.close();
    await full?.release();
  });

  it('has the decoder shape: 64 dimensions, 512 tokens, BOS first', () => {
    expect(pool.dimensions).toBe(64);
    expect(pool.maxTokens).toBe(512);
    expect(pool.tokenize('Once upon a time')[0]).toBe(1);
  });

  /** Mean of the full plain graph's last_hidden_state for one unpadded prompt (the chat graph, nothing pruned). */
  async function fullGraphMean(ids: number[]): Promise<Float64Array> {
    const n = ids.length;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, n]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from(ids, (_, i) => BigInt(i)), [1, n]),
    };
    for (const name of full.inputNames.filter((x) => x.startsWith('past_key_values'))) {
      feeds[name] = new ort.Tensor('float32', new Float32Array(0), [1, 4, 0, 8]);
    }
    const h = (await full.run(feeds, ['last_hidden_state'])).last_hidden_state!.data as Float32Array;
    const out = new Float64Array(64);
    for (let t = 0; t < n; t++) for (let d = 0; d < 64; d++) out[d]! += h[t * 64 + d]! / n;
    return out;
  }

  it('is the mean of the final hidden states over the prompt, rows right-padded in one run', async () => {
    const rows = ['Once upon a time', 'Lily', 'One day, a big bear went to the beach'].map((t) => pool.tokenize(t));
    const pooled = await pool.embed(rows);
    for (const [i, ids] of rows.entries()) expect(maxAbsDiff(pooled[i]!, await fullGraphMean(ids))).toBeLessThan(1e-5);
  });
});
