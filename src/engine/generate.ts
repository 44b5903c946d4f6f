import type { ModelRunner } from './runner.js';
import { SeededRng } from './rng.js';
import { sampleToken } from './sampling.js';
import { IncrementalDecoder, StopMatcher, type Tokenizer } from './tokenizer.js';
import type { FinishReason, GenerateOptions, SamplingParams } from './types.js';

export interface SequenceOutcome {
  text: string;
  completionTokens: number;
  finishReason: FinishReason;
  firstTokenAt: number | null;
  lastTokenAt: number | null;
}

/**
 * The decode loop for one sequence: prefill the prompt, then one step per
 * token with the KV cache, sampling with the request's own parameters and RNG.
 * `maxNewTokens` must already fit the context window.
 */
export async function generateSequence(
  runner: ModelRunner,
  tokenizer: Tokenizer,
  promptIds: readonly number[],
  params: SamplingParams,
  eosTokenIds: ReadonlySet<number>,
  opts: GenerateOptions,
): Promise<SequenceOutcome> {
  const ids = [...promptIds];
  const rng = new SeededRng(params.seed);
  const decoder = new IncrementalDecoder(tokenizer, ids);
  const stopper = new StopMatcher(params.stop);
  const seen = new Set<number>(ids);
  let text = '';
  const emit = (piece: string) => {
    if (piece.length === 0) return;
    text += piece;
    opts.onText?.(piece);
  };

  let past = null;
  let input = ids.slice();
  let completionTokens = 0;
  let finishReason: FinishReason = 'length';
  let firstTokenAt: number | null = null;
  let lastTokenAt: number | null = null;

  while (completionTokens < params.maxNewTokens) {
    if (opts.signal?.aborted) {
      finishReason = 'cancelled';
      break;
    }
    const pastLen = ids.length - input.length;
    const out = await runner.forward({
      batch: 1,
      seq: input.length,
      inputIds: BigInt64Array.from(input, BigInt),
      attentionMask: new BigInt64Array(ids.length).fill(1n),
      positionIds: BigInt64Array.from(input, (_, i) => BigInt(pastLen + i)),
      past,
    });
    past = out.present;
    const token = sampleToken(out.lastLogits[0]!, params, rng, seen);
    lastTokenAt = performance.now();
    firstTokenAt ??= lastTokenAt;
    completionTokens++;
    if (eosTokenIds.has(token)) {
      finishReason = 'stop';
      break;
    }
    ids.push(token);
    seen.add(token);
    emit(stopper.push(decoder.next()));
    if (stopper.stopped) {
      finishReason = 'stop';
      break;
    }
    input = [token];
  }
  if (!stopper.stopped) {
    emit(stopper.push(decoder.flush()));
    emit(stopper.flush());
  }
  return { text, completionTokens, finishReason, firstTokenAt, lastTokenAt };
}
