import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readDecoderConfig } from '../../src/engine/model-config.js';
import { MODEL_FUSED_FILE, resolveCheckpointModel } from '../../src/engine/model-dir.js';
import { resolveModelSource } from '../../src/engine/model-source.js';
import { GOLDEN } from '../helpers/golden.js';
import { STORIES_CHECKPOINT, STORIES_TOKENIZER, storiesModel } from '../helpers/models.js';
import { authHeaders, gql, postJson, startServer, type RunningServer } from '../helpers/server.js';

describe.skipIf(!storiesModel.present)(storiesModel.title('stories260K imported with MODEL_QUANTIZE=int8'), () => {
  let server: RunningServer;
  let cache: string;

  beforeAll(async () => {
    cache = fs.mkdtempSync(path.join(os.tmpdir(), 'quantized-cache-'));
    server = await startServer({ MODEL_QUANTIZE: 'int8', MODEL_CACHE_DIR: cache });
  }, 180_000);
  afterAll(async () => {
    await server?.stop();
    fs.rmSync(cache, { recursive: true, force: true });
  });

  it('imports into its own cache folder, beside (not over) the fp32 import, and records the quantization', async () => {
    const root = path.join(cache, 'llama2c');
    const int8 = await resolveCheckpointModel(STORIES_CHECKPOINT, STORIES_TOKENIZER, root, 'int8'); // the server's import, reused
    const fp32 = await resolveCheckpointModel(STORIES_CHECKPOINT, STORIES_TOKENIZER, root);
    expect(int8).not.toBe(fp32);
    expect(readDecoderConfig(fp32).quantization).toBeNull();
    expect(readDecoderConfig(int8).quantization).toMatchObject({ mode: 'int8', bits: 8, blockSize: 32, method: 'MatMulNBits', lmHead: false, embedding: false });
    expect(fs.statSync(path.join(int8, MODEL_FUSED_FILE)).size).toBeLessThan(fs.statSync(path.join(fp32, MODEL_FUSED_FILE)).size / 2);
  });

  it('/v1/health, /v1/models and GraphQL report the quantization', async () => {
    const health = await (await fetch(`${server.url}/v1/health`)).json();
    expect(health.status).toBe('ok');
    expect(health.quantization).toEqual({
      mode: 'int8',
      method: 'MatMulNBits',
      bits: 8,
      block_size: 32,
      symmetric: true,
      scale_method: 'mse',
      accuracy_level: 4,
      linear_layers: true,
      lm_head: false,
      embedding: false,
      graph: 'fused',
    });

    const models = await (await fetch(`${server.url}/v1/models`, { headers: authHeaders })).json();
    expect(models.data[0].quantization).toMatchObject({ mode: 'int8', bits: 8 });

    const { json } = await gql(
      server.url,
      '{ model { graph quantization { mode bits blockSize accuracyLevel lmHead embedding linearLayers } } health { quantization { mode } } models { kind quantization { mode } } }',
    );
    expect(json.errors).toBeUndefined();
    expect(json.data.model).toEqual({
      graph: 'FUSED',
      quantization: { mode: 'INT8', bits: 8, blockSize: 32, accuracyLevel: 4, lmHead: false, embedding: false, linearLayers: true },
    });
    expect(json.data.health.quantization).toEqual({ mode: 'INT8' });
    expect(json.data.models[0]).toEqual({ kind: 'CHAT', quantization: { mode: 'INT8' } });
  });

  it('chat answers (greedy, the story starts as fp32 writes it)', async () => {
    const [prompt, reference] = GOLDEN[0]!;
    const { status, json } = await postJson(`${server.url}/v1/chat`, { prompt, temperature: 0, max_new_tokens: 40 });
    expect(status).toBe(200);
    expect(json.completion_tokens).toBeGreaterThan(10);
    expect((prompt + json.response).slice(0, 40)).toBe(reference.slice(0, 40));
  });
});

describe('MODEL_QUANTIZE with a source that is not a start-up import', () => {
  it('is a clear start-up error for a model directory or a hub model', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantize-dir-'));
    try {
      expect(() => resolveModelSource(dir, undefined, 'x/y', 'int4')).toThrow(/MODEL_QUANTIZE=int4 applies only to a llama2\.c checkpoint.*--quantize int4/);
      expect(() => resolveModelSource(undefined, undefined, 'Xenova/distilgpt2', 'int8')).toThrow(/the hub \(MODEL_NAME=Xenova\/distilgpt2\)/);
      expect(resolveModelSource(dir, undefined, 'x/y')).toMatchObject({ kind: 'directory' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!storiesModel.present)('a checkpoint source carries the mode', () => {
    expect(resolveModelSource(STORIES_CHECKPOINT, undefined, 'x', 'int8')).toMatchObject({ kind: 'llama2c', quantize: 'int8' });
  });
});
