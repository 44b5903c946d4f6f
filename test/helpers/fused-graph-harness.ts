import * as ort from 'onnxruntime-node';
import type { LlamaConfig } from '../../src/engine/onnx-graph.js';
import { emptyPast, logitsAt, runStep } from './ort-decoder.js';

// Drivers of the fused graph's two attention modes, shared by its tests on
// random weights (test/unit) and on stories260K (test/integration).

const i64 = (v: number[], dims: number[]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(v.map(BigInt)), dims);
const padRight = (rows: number[][], len: number): number[] => rows.flatMap((r) => [...r, ...Array<number>(len - r.length).fill(0)]);

/** Last-position logits of `tokens` run alone through the plain graph. */
export async function alone(plain: ort.InferenceSession, c: LlamaConfig, tokens: number[]): Promise<Float32Array> {
  const r = await runStep(plain, c, [tokens], [tokens.map(() => 1)], [tokens.map((_, i) => i)], emptyPast(c, 1));
  return logitsAt(r.logits, tokens.length, c.vocabSize, 0, tokens.length - 1).slice();
}

/**
 * Drives the fused graph with 'gqa' attention over one big KV buffer per
 * layer and kind, [maxBatch, kv, maxSeqLen, hd], feeding rows first..first+n-1
 * as a subarray view passed as both past input and present fetch.
 */
export class GqaHarness {
  readonly bufs: Float32Array[];
  readonly rowFloats: number;
  constructor(
    readonly s: ort.InferenceSession,
    readonly c: LlamaConfig,
    maxBatch: number,
  ) {
    this.rowFloats = c.nKvHeads * c.maxSeqLen * (c.dim / c.nHeads);
    this.bufs = Array.from({ length: 2 * c.nLayers }, () => new Float32Array(maxBatch * this.rowFloats).fill(777));
  }
  async run(first: number, rows: number[][], seqlensK: number[], total: number): Promise<Float32Array> {
    const c = this.c;
    const n = rows.length;
    const seq = Math.max(...rows.map((r) => r.length));
    const feeds: Record<string, ort.Tensor> = {
      input_ids: i64(padRight(rows, seq), [n, seq]),
      seqlens_k: new ort.Tensor('int32', Int32Array.from(seqlensK), [n]),
      total_sequence_length: new ort.Tensor('int32', Int32Array.of(total), []),
      logits_index: i64(rows.map((r, b) => b * seq + r.length - 1), [n]),
    };
    const logits = new Float32Array(n * c.vocabSize);
    const fetches: Record<string, ort.Tensor> = { logits: new ort.Tensor('float32', logits, [n, c.vocabSize]) };
    for (let l = 0; l < c.nLayers; l++) {
      for (const [j, kind] of ['key', 'value'].entries()) {
        const t = new ort.Tensor('float32', this.bufs[2 * l + j]!.subarray(first * this.rowFloats, (first + n) * this.rowFloats), [n, c.nKvHeads, c.maxSeqLen, c.dim / c.nHeads]);
        feeds[`past_key_values.${l}.${kind}`] = t;
        fetches[`present.${l}.${kind}`] = t;
      }
    }
    await this.s.run(feeds, fetches);
    return logits; // the preallocated fetch was filled in place
  }
}

/** Runs the fused graph with 'external' attention once; `past` is [n, kv, cap, hd] per layer and kind. */
export async function runExternal(s: ort.InferenceSession, c: LlamaConfig, rows: number[][], pastLens: number[], past: Float32Array[], cap: number) {
  const n = rows.length;
  const seq = Math.max(...rows.map((r) => r.length));
  const hd = c.dim / c.nHeads;
  const feeds: Record<string, ort.Tensor> = {
    input_ids: i64(padRight(rows, seq), [n, seq]),
    past_sequence_lengths: i64(pastLens, [n]),
    logits_index: i64(rows.map((r, b) => b * seq + r.length - 1), [n]),
  };
  for (let l = 0; l < c.nLayers; l++) {
    feeds[`past_key_values.${l}.key`] = new ort.Tensor('float32', past[2 * l]!, [n, c.nKvHeads, cap, hd]);
    feeds[`past_key_values.${l}.value`] = new ort.Tensor('float32', past[2 * l + 1]!, [n, c.nKvHeads, cap, hd]);
  }
  return s.run(feeds);
}
