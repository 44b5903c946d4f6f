import * as ort from 'onnxruntime-node';
import type { LlamaConfig } from '../../src/engine/onnx-graph.js';

/** One decoder call's results: logits [batch, seq, vocab] and the present cache per layer. */
export interface StepResult {
  logits: Float32Array;
  present: ort.Tensor[]; // key0, value0, key1, value1, ...
}

/** Empty past tensors `[batch, kv, 0, headDim]` for every layer. */
export function emptyPast(c: LlamaConfig, batch: number): ort.Tensor[] {
  const headDim = c.dim / c.nHeads;
  return Array.from({ length: 2 * c.nLayers }, () => new ort.Tensor('float32', new Float32Array(0), [batch, c.nKvHeads, 0, headDim]));
}

const int64 = (rows: number[][]): ort.Tensor =>
  new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0]!.length]);

/** Runs the decoder graph once with explicit inputs (rows must be equally long). */
export async function runStep(
  session: ort.InferenceSession,
  c: LlamaConfig,
  inputIds: number[][],
  attentionMask: number[][],
  positionIds: number[][],
  past: ort.Tensor[],
): Promise<StepResult> {
  const feeds: Record<string, ort.Tensor> = {
    input_ids: int64(inputIds),
    attention_mask: int64(attentionMask),
    position_ids: int64(positionIds),
  };
  for (let i = 0; i < c.nLayers; i++) {
    feeds[`past_key_values.${i}.key`] = past[2 * i]!;
    feeds[`past_key_values.${i}.value`] = past[2 * i + 1]!;
  }
  const out = await session.run(feeds);
  const present: ort.Tensor[] = [];
  for (let i = 0; i < c.nLayers; i++) present.push(out[`present.${i}.key`]!, out[`present.${i}.value`]!);
  return { logits: out.logits!.data as Float32Array, present };
}

/** Left-pads sequences to one length: ids padded with `pad`, mask 0, positions as transformers.js makes them. */
export function leftPad(seqs: number[][], pad = 0): { ids: number[][]; mask: number[][]; positions: number[][] } {
  const len = Math.max(...seqs.map((s) => s.length));
  const ids = seqs.map((s) => [...Array<number>(len - s.length).fill(pad), ...s]);
  const mask = seqs.map((s) => [...Array<number>(len - s.length).fill(0), ...Array<number>(s.length).fill(1)]);
  const positions = seqs.map((s) => [...Array<number>(len - s.length).fill(1), ...s.map((_, i) => i)]);
  return { ids, mask, positions };
}

/** Logits of row `b`, position `t` from a [batch, seq, vocab] buffer. */
export function logitsAt(logits: Float32Array, seqLen: number, vocab: number, b: number, t: number): Float32Array {
  const off = (b * seqLen + t) * vocab;
  return logits.subarray(off, off + vocab);
}

/** Largest absolute elementwise difference. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
