import fs from 'node:fs';
import path from 'node:path';
import { AutoModelForCausalLM, AutoTokenizer, env, Tensor, type PreTrainedModel, type PreTrainedTokenizer } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/engine.js';
import { DECODER_SIDE_FILES } from '../../src/engine/hub-model-dir.js';
import { MODEL_FILE, MODEL_FUSED_FILE } from '../../src/engine/model-dir.js';
import { readDecoderConfig } from '../../src/engine/model-config.js';
import { plainChatPrompt } from '../../src/engine/tokenizer.js';
import type { ChatMessage, SamplingParams } from '../../src/engine/types.js';
import { GPT2_SOURCE, gpt2Files, SMOLLM2_SOURCE, smollm2Files, TEST_HUB_DECODER, testHubDecoderDir } from '../helpers/models.js';

env.allowRemoteModels = false;

/** New tokens per prompt. */
const N = 32;
/**
 * Smallest gap allowed between the two most probable next tokens (natural
 * log-probabilities) at any compared step: 10x what the fused and plain
 * graphs differ by. A closer call would make "equal" a coin toss, so the
 * test says so rather than passing or failing by luck.
 */
const MIN_MARGIN = 1e-4;

const conversation: ChatMessage[] = [
  { role: 'system', content: 'You are a concise assistant.' },
  { role: 'user', content: 'What is the capital of France?' },
  { role: 'assistant', content: 'Paris.' },
  { role: 'user', content: 'And of Italy?' },
];
const PROMPTS = ['Hello, world! Once upon a time', 'The capital of France is', 'def fibonacci(n):'];

const greedy: SamplingParams = { maxNewTokens: N, temperature: 0, topP: 1, topK: 0, repetitionPenalty: 1, seed: 0, stop: [], logprobs: 2 };

/** transformers.js's own greedy generate(): the new token ids (an end-of-sequence token it stopped on included). */
async function theirGreedy(model: PreTrainedModel, ids: number[]): Promise<number[]> {
  const inputIds = new Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]);
  const mask = new Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]);
  const out = (await model.generate({ input_ids: inputIds, attention_mask: mask, max_new_tokens: N, do_sample: false })) as { tolist(): bigint[][] };
  return out.tolist()[0]!.map(Number).slice(ids.length);
}

interface Ours {
  ids: number[];
  finish: string;
  /** Per step: top-1 minus top-2 log-probability. */
  margins: number[];
}

async function ourGreedy(engine: Engine, ids: number[]): Promise<Ours> {
  const out: number[] = [];
  const r = await engine.generate(ids, greedy, { onToken: (s) => out.push(s.id) });
  return { ids: out, finish: r.finishReason, margins: (r.logprobs ?? []).map((lp) => lp.top[0]!.logprob - lp.top[1]!.logprob) };
}

/** Ours equals theirs token for token; where ours stopped on an end token, theirs has an end token there. */
function expectSame(label: string, ours: Ours, theirs: number[], stopIds: Set<number>): void {
  expect(ours.ids, label).toEqual(theirs.slice(0, ours.ids.length));
  if (ours.finish === 'length') expect(theirs, label).toHaveLength(N);
  else expect(stopIds.has(theirs[ours.ids.length] ?? -1) || theirs.length === ours.ids.length, label).toBe(true);
  expect(Math.min(...ours.margins), `${label}: a near-tie between the two best tokens`).toBeGreaterThan(MIN_MARGIN);
}

/**
 * Runs every prompt through transformers.js's generate() and through our
 * engine on each graph, one at a time and all at once (one batch), and
 * compares the new tokens. Returns the tokens compared and the closest call.
 */
async function parity(dir: string, graphs: Array<'auto' | 'plain'>, prompts: number[][]): Promise<{ tokens: number; minMargin: number; graphsRun: string[] }> {
  const model = await AutoModelForCausalLM.from_pretrained(dir, { dtype: 'fp32' });
  const theirs: number[][] = [];
  try {
    for (const p of prompts) theirs.push(await theirGreedy(model, p));
  } finally {
    await model.dispose();
  }
  let tokens = 0;
  let minMargin = Infinity;
  const graphsRun: string[] = [];
  for (const graph of graphs) {
    const engine = await Engine.load(dir, { name: 'parity', source: dir, threads: 1, graph, limits: { maxBatchSize: 8, maxWaiting: 16, maxPrefillTokens: 512 } });
    try {
      graphsRun.push(engine.info.graph);
      const stopIds = new Set([...readDecoderConfig(dir).eosTokenIds, ...engine.tokenizer.endOfTurnIds()]);
      const alone: Ours[] = [];
      for (const p of prompts) alone.push(await ourGreedy(engine, p));
      const together = await Promise.all(prompts.map((p) => ourGreedy(engine, p)));
      prompts.forEach((_, i) => {
        expectSame(`${engine.info.graph} graph, prompt ${i} alone`, alone[i]!, theirs[i]!, stopIds);
        expectSame(`${engine.info.graph} graph, prompt ${i} in a batch of ${prompts.length}`, together[i]!, theirs[i]!, stopIds);
        tokens += alone[i]!.ids.length + together[i]!.ids.length;
        minMargin = Math.min(minMargin, ...alone[i]!.margins, ...together[i]!.margins);
      });
    } finally {
      await engine.close();
    }
  }
  return { tokens, minMargin, graphsRun };
}

describe.skipIf(!smollm2Files.present)(smollm2Files.title('a SmolLM2-135M-Instruct-shaped random model (real config, tokenizer and chat template)'), () => {
  let dir: string;
  let tokenizer: PreTrainedTokenizer;
  beforeAll(async () => {
    dir = testHubDecoderDir(SMOLLM2_SOURCE);
    tokenizer = await AutoTokenizer.from_pretrained(dir);
  });

  it("writes the hub's transformers.js layout: its config.json but for the layer count, its tokenizer files byte for byte", () => {
    const source = JSON.parse(fs.readFileSync(path.join(SMOLLM2_SOURCE, 'config.json'), 'utf8')) as Record<string, unknown>;
    const { inference_server: provenance, ...config } = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toEqual({ ...source, num_hidden_layers: TEST_HUB_DECODER.layers });
    expect(provenance).toMatchObject({ source: 'random', from: 'SmolLM2-135M-Instruct', seed: 1, std: 0.2, layers_of_source: 30 });
    for (const f of DECODER_SIDE_FILES) expect(fs.readFileSync(path.join(dir, f)).equals(fs.readFileSync(path.join(SMOLLM2_SOURCE, f))), f).toBe(true);
    for (const f of [MODEL_FILE, MODEL_FUSED_FILE]) expect(fs.existsSync(path.join(dir, f)), f).toBe(true);
    // The layer keeps SmolLM2's shape: 9 query heads over 3 KV heads of 64, 49,152 tokens, 8,192 positions.
    expect(readDecoderConfig(dir)).toMatchObject({ modelType: 'llama', layers: 2, attentionHeads: 9, kvHeads: 3, headDim: 64, hiddenSize: 576, vocabSize: 49152, contextWindow: 8192, eosTokenIds: [2] });
  });

  it('greedy decoding on the fused and plain graphs, alone and batched, equals transformers.js generate() token for token', async () => {
    const rendered = tokenizer.apply_chat_template(conversation, { tokenize: true, add_generation_prompt: true, return_tensor: false, return_dict: false }) as number[];
    const prompts = [...PROMPTS.map((p) => tokenizer.encode(p)), rendered];
    const r = await parity(dir, ['auto', 'plain'], prompts);
    expect(r.graphsRun).toEqual(['fused', 'plain']);
    expect(r.tokens).toBe(2 * 2 * prompts.length * N);
    console.info(`SmolLM2-shaped parity: ${r.tokens} tokens compared, closest top-2 log-probability gap ${r.minMargin.toExponential(2)}`);
  });
});

describe.skipIf(!gpt2Files.present)(gpt2Files.title('a GPT-2-shaped random model (real config and tokenizer)'), () => {
  let dir: string;
  let tokenizer: PreTrainedTokenizer;
  beforeAll(async () => {
    dir = testHubDecoderDir(GPT2_SOURCE);
    tokenizer = await AutoTokenizer.from_pretrained(dir);
  });

  it("writes gpt2's config.json but for n_layer, its tokenizer files, and the plain graph only", () => {
    const source = JSON.parse(fs.readFileSync(path.join(GPT2_SOURCE, 'config.json'), 'utf8')) as Record<string, unknown>;
    const { inference_server: provenance, ...config } = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toEqual({ ...source, n_layer: TEST_HUB_DECODER.layers });
    expect(provenance).toMatchObject({ from: 'gpt2', layers_of_source: 12 });
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'vocab.json', 'merges.txt', 'generation_config.json']) {
      expect(fs.readFileSync(path.join(dir, f)).equals(fs.readFileSync(path.join(GPT2_SOURCE, f))), f).toBe(true);
    }
    expect(fs.existsSync(path.join(dir, MODEL_FUSED_FILE))).toBe(false);
    expect(readDecoderConfig(dir)).toMatchObject({ modelType: 'gpt2', layers: 2, attentionHeads: 12, kvHeads: 12, headDim: 64, hiddenSize: 768, vocabSize: 50257, contextWindow: 1024, eosTokenIds: [50256] });
  });

  it('greedy decoding, alone and batched (left padding, learned positions), equals transformers.js generate() token for token', async () => {
    // GPT-2 has no chat template: the plain chat format is the conversation.
    const prompts = [...PROMPTS, plainChatPrompt(conversation)].map((p) => tokenizer.encode(p));
    const r = await parity(dir, ['auto'], prompts);
    expect(r.graphsRun).toEqual(['plain']);
    expect(r.tokens).toBe(2 * prompts.length * N);
    console.info(`GPT-2-shaped parity: ${r.tokens} tokens compared, closest top-2 log-probability gap ${r.minMargin.toExponential(2)}`);
  });
});
