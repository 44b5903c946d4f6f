import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { bertConfigFromHf, bertParameterCount, buildBertOnnx, type BertConfig } from '../../src/engine/bert-graph.js';
import { meanPool, truncateContent } from '../../src/engine/encoder.js';
import { randomBertWeights } from '../../src/engine/random-weights.js';
import { bertReference, erf, meanPooled } from '../helpers/bert-reference.js';
import { maxAbsDiff } from '../helpers/ort-decoder.js';

const { onnx } = onnxProto;
const TOL = 1e-4;
// Larger than the usual 0.02 so attention is far from uniform: masking and head mistakes then show.
const STD = 0.1;

/** A BERT small enough to check against the float64 reference in milliseconds. */
const SMALL: BertConfig = {
  vocabSize: 120,
  hiddenSize: 32,
  numLayers: 2,
  numHeads: 4,
  intermediateSize: 64,
  maxPositions: 40,
  typeVocabSize: 2,
  layerNormEps: 1e-12,
};

/** all-MiniLM-L6-v2's config.json (sentence-transformers), the shape of the embedding benchmark model. */
const MINILM_CONFIG = {
  architectures: ['BertModel'],
  hidden_act: 'gelu',
  hidden_size: 384,
  intermediate_size: 1536,
  layer_norm_eps: 1e-12,
  max_position_embeddings: 512,
  model_type: 'bert',
  num_attention_heads: 12,
  num_hidden_layers: 6,
  position_embedding_type: 'absolute',
  type_vocab_size: 2,
  vocab_size: 30522,
};

const int64 = (rows: number[][]) => new ort.Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0]!.length]);

/** Runs the graph on right-padded rows; returns last_hidden_state and its [batch, seq, hidden] dims. */
async function run(session: ort.InferenceSession, rows: number[][], types?: number[][]) {
  const seq = Math.max(...rows.map((r) => r.length));
  const pad = (r: number[], v: number) => [...r, ...Array<number>(seq - r.length).fill(v)];
  const out = await session.run({
    input_ids: int64(rows.map((r) => pad(r, 0))),
    attention_mask: int64(rows.map((r) => pad(r.map(() => 1), 0))),
    token_type_ids: int64(types ?? rows.map((r) => pad(r.map(() => 0), 0))),
  });
  const t = out.last_hidden_state!;
  return { data: t.data as Float32Array, seq, dims: t.dims };
}

const tokenAt = (data: Float32Array, seq: number, h: number, b: number, t: number) => data.subarray((b * seq + t) * h, (b * seq + t + 1) * h);

describe('erf (the reference GELU needs it)', () => {
  it('matches known values', () => {
    expect(erf(0)).toBe(0);
    expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 14);
    expect(erf(1)).toBeCloseTo(0.8427007929497149, 14);
    expect(erf(-2)).toBeCloseTo(-0.9953222650189527, 14);
    expect(erf(3)).toBeCloseTo(0.9999779095030014, 14);
  });
});

describe('buildBertOnnx', () => {
  const weights = randomBertWeights(SMALL, 3, STD);
  const h = SMALL.hiddenSize;
  let bytes: Uint8Array;
  let session: ort.InferenceSession;

  beforeAll(async () => {
    bytes = buildBertOnnx(weights);
    session = await ort.InferenceSession.create(bytes);
  });

  it('declares the transformers.js feature-extraction I/O, default domain only', () => {
    const model = onnx.ModelProto.decode(bytes);
    const graph = model.graph as onnxProto.onnx.GraphProto;
    const dims = (v: onnxProto.onnx.IValueInfoProto) => (v.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue)));
    expect(Object.fromEntries(graph.input.map((v) => [v.name, dims(v)]))).toEqual({
      input_ids: ['batch_size', 'sequence_length'],
      attention_mask: ['batch_size', 'sequence_length'],
      token_type_ids: ['batch_size', 'sequence_length'],
    });
    expect(Object.fromEntries(graph.output.map((v) => [v.name, dims(v)]))).toEqual({ last_hidden_state: ['batch_size', 'sequence_length', h] });
    expect(graph.input.map((v) => v.type?.tensorType?.elemType)).toEqual([7, 7, 7]); // int64
    expect(model.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 17]]);
    expect(graph.node.every((n) => !n.domain)).toBe(true);
  });

  it('matches a float64 transcription of Hugging Face BertModel, token by token', async () => {
    const ids = [1, 17, 99, 42, 42, 119, 5, 2];
    const ref = bertReference(weights, ids);
    const { data, seq } = await run(session, [ids]);
    ids.forEach((_, t) => expect(maxAbsDiff(tokenAt(data, seq, h, 0, t), ref[t]!)).toBeLessThan(TOL));
  });

  it('reads token_type_ids (segment B differs from segment A)', async () => {
    const ids = [1, 8, 9, 2];
    const types = [0, 0, 1, 1];
    const ref = bertReference(weights, ids, types);
    const { data, seq } = await run(session, [ids], [types]);
    ids.forEach((_, t) => expect(maxAbsDiff(tokenAt(data, seq, h, 0, t), ref[t]!)).toBeLessThan(TOL));
    const plain = await run(session, [ids]);
    expect(maxAbsDiff(tokenAt(data, seq, h, 0, 3), tokenAt(plain.data, seq, h, 0, 3))).toBeGreaterThan(1e-3);
  });

  it('gives every right-padded row of a batch the hidden states of the row alone; padding stays finite', async () => {
    const rows = [[1, 50, 60, 70, 80, 90, 2], [1, 3, 2], [1, 4, 5, 6, 2]];
    const batch = await run(session, rows);
    expect(batch.dims).toEqual([3, 7, h]);
    expect(batch.data.every(Number.isFinite)).toBe(true);
    for (const [b, row] of rows.entries()) {
      const alone = await run(session, [row]);
      row.forEach((_, t) => expect(maxAbsDiff(tokenAt(batch.data, batch.seq, h, b, t), tokenAt(alone.data, alone.seq, h, 0, t))).toBeLessThan(1e-5));
    }
  });

  it('mean pooling over the mask equals the reference pooled vector', async () => {
    const rows = [[1, 11, 12, 13, 2], [1, 14, 2]];
    const { data, seq } = await run(session, rows);
    const pooled = meanPool(data, seq, h, rows.map((r) => r.length));
    rows.forEach((r, i) => expect(maxAbsDiff(pooled[i]!, meanPooled(bertReference(weights, r)))).toBeLessThan(TOL));
  });

  it('rejects weights that do not fit the config', () => {
    const bad = randomBertWeights(SMALL, 1);
    bad.layers[1]!.bi = new Float32Array(3);
    expect(() => buildBertOnnx(bad)).toThrow(/layers\.1\.bi/);
  });
});

describe('bertConfigFromHf', () => {
  it("reads all-MiniLM-L6-v2's config (22.6M parameters: the published 22.7M less the pooler, which mean pooling never uses)", () => {
    const c = bertConfigFromHf(MINILM_CONFIG);
    expect(c).toEqual({ vocabSize: 30522, hiddenSize: 384, numLayers: 6, numHeads: 12, intermediateSize: 1536, maxPositions: 512, typeVocabSize: 2, layerNormEps: 1e-12 });
    expect(bertParameterCount(c) / 1e6).toBeCloseTo(22.57, 2);
  });

  it('refuses what the graph does not implement', () => {
    expect(() => bertConfigFromHf({ ...MINILM_CONFIG, hidden_act: 'gelu_new' })).toThrow(/hidden_act/);
    expect(() => bertConfigFromHf({ ...MINILM_CONFIG, position_embedding_type: 'relative_key' })).toThrow(/position_embedding_type/);
    expect(() => bertConfigFromHf({ ...MINILM_CONFIG, model_type: 'roberta' })).toThrow(/not bert/);
    expect(() => bertConfigFromHf({ ...MINILM_CONFIG, num_attention_heads: 7 })).toThrow(/multiple/);
  });
});

describe('truncateContent', () => {
  it('cuts the content and keeps the special tokens around it', () => {
    // [CLS] a b c d [SEP]
    expect(truncateContent([101, 1, 2, 3, 4, 102], [1, 2, 3, 4], 4)).toEqual([101, 1, 2, 102]);
    // BOS a b c (llama: a prefix only)
    expect(truncateContent([1, 7, 8, 9], [7, 8, 9], 3)).toEqual([1, 7, 8]);
    // No recognisable template: a plain cut.
    expect(truncateContent([5, 6, 7, 8], [9, 9], 2)).toEqual([5, 6]);
  });
});
