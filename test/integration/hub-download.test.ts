import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { AutoModelForCausalLM, AutoTokenizer, env, Tensor } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL_FILE } from '../../src/engine/model-dir.js';
import { GPT2_SOURCE, gpt2Files, SMOLLM2_SOURCE, smollm2Files, testHubDecoderDir } from '../helpers/models.js';
import { API_KEY, authHeaders, gql, postJson, startServer, type RunningServer } from '../helpers/server.js';

env.allowRemoteModels = false;

const HUB_ID = 'HuggingFaceTB/SmolLM2-135M-Instruct';
/**
 * What a hub repository holds (weights aside, byte for byte the files in
 * ../shared/models): transformers.js fetches from it what it needs. No
 * model_fused.onnx: that file is this project's own and no hub repository has it.
 */
const REPO_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt', MODEL_FILE];

/** transformers.js's greedy generate() on a directory: the new token ids. */
async function transformersGreedy(dir: string, ids: number[], maxNewTokens: number): Promise<number[]> {
  const model = await AutoModelForCausalLM.from_pretrained(dir, { dtype: 'fp32' });
  try {
    const out = (await model.generate({
      input_ids: new Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]),
      attention_mask: new Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
      max_new_tokens: maxNewTokens,
      do_sample: false,
    })) as { tolist(): bigint[][] };
    return out.tolist()[0]!.map(Number).slice(ids.length);
  } finally {
    await model.dispose();
  }
}

/**
 * A stand-in for huggingface.co: `GET|HEAD /<id>/resolve/main/<file>` from a
 * directory, 404 for anything else, every request recorded. The server
 * reaches it through HF_ENDPOINT exactly as it reaches the real hub.
 */
async function fakeHub(id: string, dir: string): Promise<{ url: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const prefix = `/${id}/resolve/main/`;
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent((req.url ?? '').split('?')[0]!);
    requests.push(`${req.method} ${url}`);
    const file = url.startsWith(prefix) ? url.slice(prefix.length) : undefined;
    if (!file || !REPO_FILES.includes(file)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Entry not found');
      return;
    }
    const full = path.join(dir, file);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': fs.statSync(full).size });
    if (req.method === 'HEAD') res.end();
    else fs.createReadStream(full).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const messages = [
  { role: 'system' as const, content: 'You are a concise assistant.' },
  { role: 'user' as const, content: 'Name three colours.' },
];

// The honest reading of "loads through the same code path a hub download takes": nothing is placed by
// hand. The server is started with MODEL_NAME only; materializeModel -> fetchHubModel runs
// transformers.js's from_pretrained against a hub (a local mirror via HF_ENDPOINT, since this machine has no
// internet), which downloads into MODEL_CACHE_DIR/hub/<id>; the engine loads that directory. A second start,
// offline, serves from the same cache without a request.
describe.skipIf(!smollm2Files.present)(smollm2Files.title('MODEL_NAME=HuggingFaceTB/SmolLM2-135M-Instruct: downloaded from a hub by transformers.js, cached, served'), () => {
  let built: string;
  let hub: Awaited<ReturnType<typeof fakeHub>>;
  let cacheDir: string;
  let server: RunningServer | undefined;
  const start = (extra: Record<string, string>) =>
    startServer({ MODEL_PATH: '', MODEL_NAME: HUB_ID, MODEL_CACHE_DIR: cacheDir, EMBEDDING_MODEL: '', RATE_LIMIT_PER_MINUTE: '0', ...extra });

  beforeAll(async () => {
    built = testHubDecoderDir(SMOLLM2_SOURCE);
    hub = await fakeHub(HUB_ID, built);
    cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-download-'));
    server = await start({ HF_HUB_OFFLINE: '0', HF_ENDPOINT: hub.url });
  });
  afterAll(async () => {
    await server?.stop();
    await hub?.close();
    if (cacheDir) fs.rmSync(cacheDir, { recursive: true, force: true });
  });

  it('transformers.js fetched the model files from the hub into MODEL_CACHE_DIR/hub/<id>, and the engine loaded that directory', async () => {
    const fetched = hub.requests.filter((r) => r.startsWith('GET ')).map((r) => r.slice(`GET /${HUB_ID}/resolve/main/`.length));
    console.info(`hub requests: ${hub.requests.join(', ')}`);
    for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', MODEL_FILE]) expect(fetched, f).toContain(f);
    const cached = path.join(cacheDir, 'hub', HUB_ID);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', MODEL_FILE]) {
      expect(fs.readFileSync(path.join(cached, f)).equals(fs.readFileSync(path.join(built, f))), f).toBe(true);
    }
    const r = await gql(server!.url, '{ model { name state architecture graph layers attentionHeads kvHeads contextWindow vocabSize source } }');
    // A download has no fused graph: the plain graph serves it.
    expect(r.json.data.model).toEqual({
      name: 'SmolLM2-135M-Instruct',
      state: 'READY',
      architecture: 'llama',
      graph: 'PLAIN',
      layers: 2,
      attentionHeads: 9,
      kvHeads: 3,
      contextWindow: 8192,
      vocabSize: 49152,
      source: HUB_ID,
    });
  });

  it("answers /v1/chat/completions (model named by its hub id) with transformers.js's own greedy answer to the rendered conversation", async () => {
    const client = new OpenAI({ apiKey: API_KEY, baseURL: `${server!.url}/v1`, maxRetries: 0 });
    const r = await client.chat.completions.create({ model: HUB_ID, messages, max_tokens: 16, temperature: 0 });
    const tokenizer = await AutoTokenizer.from_pretrained(built);
    const ids = tokenizer.apply_chat_template(messages, { tokenize: true, add_generation_prompt: true, return_tensor: false, return_dict: false }) as number[];
    const theirs = await transformersGreedy(built, ids, 16);
    expect(r.choices[0]!.message.content).toBe(tokenizer.decode(theirs, { skip_special_tokens: true }));
    expect(r.usage).toMatchObject({ prompt_tokens: ids.length, completion_tokens: theirs.length });
    expect(r.model).toBe('SmolLM2-135M-Instruct');
    // The SDK puts the id in the path percent-encoded (HuggingFaceTB%2FSmolLM2-135M-Instruct).
    expect(await client.models.retrieve(HUB_ID)).toMatchObject({ id: 'SmolLM2-135M-Instruct', context_window: 8192 });
  });

  it('<|im_end|> ends the answer (finish_reason stop) and never appears in its text, streamed or not', async () => {
    // Random weights never choose <|im_end|> (id 2) by themselves: logit_bias makes it the pick as soon as min_tokens allows.
    const body = { model: HUB_ID, messages, max_tokens: 12, temperature: 0, logit_bias: { '2': 100 }, min_tokens: 3 };
    const r = await postJson(`${server!.url}/v1/chat/completions`, body);
    expect(r.status).toBe(200);
    expect(r.json.choices[0].finish_reason).toBe('stop');
    expect(r.json.usage.completion_tokens).toBe(4);
    const text = r.json.choices[0].message.content as string;
    expect(text.length).toBeGreaterThan(0);
    expect(text).not.toContain('<|im_end|>');
    expect(text).not.toContain('<|im_start|>');
    const streamed = await fetch(`${server!.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders, body: JSON.stringify({ ...body, stream: true }) });
    const chunks = (await streamed.text())
      .split('\n\n')
      .filter((b) => b.startsWith('data: {'))
      .map((b) => JSON.parse(b.slice(6)) as { choices: Array<{ delta: { content?: string }; finish_reason: string | null }> });
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(text);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('stop');
  });

  it('a second start with HF_HUB_OFFLINE=1 serves from the cache without asking the hub', async () => {
    await server!.stop();
    server = undefined;
    const before = hub.requests.length;
    server = await start({ HF_HUB_OFFLINE: '1' });
    const r = await postJson(`${server.url}/v1/chat/completions`, { messages, max_tokens: 4, temperature: 0 });
    expect(r.status).toBe(200);
    expect(r.json.usage.completion_tokens).toBe(4);
    expect(hub.requests.length).toBe(before);
  });
});

// The server's default MODEL_NAME, Xenova/distilgpt2 (the original service's model): GPT-2 through the same path.
describe.skipIf(!gpt2Files.present)(gpt2Files.title('MODEL_NAME unset (Xenova/distilgpt2): a GPT-2 model downloaded from a hub and served'), () => {
  const id = 'Xenova/distilgpt2';
  let built: string;
  let hub: Awaited<ReturnType<typeof fakeHub>>;
  let cacheDir: string;
  let server: RunningServer | undefined;
  beforeAll(async () => {
    built = testHubDecoderDir(GPT2_SOURCE);
    hub = await fakeHub(id, built);
    cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-download-gpt2-'));
    server = await startServer({ MODEL_PATH: '', MODEL_CACHE_DIR: cacheDir, EMBEDDING_MODEL: '', HF_HUB_OFFLINE: '0', HF_ENDPOINT: hub.url });
  });
  afterAll(async () => {
    await server?.stop();
    await hub?.close();
    if (cacheDir) fs.rmSync(cacheDir, { recursive: true, force: true });
  });

  it("downloads into MODEL_CACHE_DIR/hub/Xenova/distilgpt2 and answers /v1/completions with transformers.js's greedy tokens", async () => {
    expect(hub.requests).toContain(`GET /${id}/resolve/main/${MODEL_FILE}`);
    expect(fs.existsSync(path.join(cacheDir, 'hub', id, MODEL_FILE))).toBe(true);
    const prompt = 'The capital of France is';
    const client = new OpenAI({ apiKey: API_KEY, baseURL: `${server!.url}/v1`, maxRetries: 0 });
    const r = await client.completions.create({ model: id, prompt, max_tokens: 12, temperature: 0 });
    const tokenizer = await AutoTokenizer.from_pretrained(built);
    const theirs = await transformersGreedy(built, tokenizer.encode(prompt), 12);
    expect(r.choices[0]!.text).toBe(tokenizer.decode(theirs, { skip_special_tokens: true }));
    const m = await gql(server!.url, '{ model { name architecture graph layers kvHeads contextWindow } }');
    expect(m.json.data.model).toEqual({ name: 'distilgpt2', architecture: 'gpt2', graph: 'PLAIN', layers: 2, kvHeads: 12, contextWindow: 1024 });
  });
});
