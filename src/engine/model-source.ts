import fs from 'node:fs';
import path from 'node:path';
import { resolveCheckpointModel } from './model-dir.js';
import type { QuantizeMode } from './quantize.js';

/** Where the model comes from, decided from configuration before anything loads. */
export type ModelSource =
  | { kind: 'directory'; dir: string; name: string }
  | { kind: 'llama2c'; checkpoint: string; tokenizer: string | undefined; name: string; quantize?: QuantizeMode }
  | { kind: 'hub'; id: string; name: string };

export class ModelSourceError extends Error {}

/**
 * MODEL_PATH (a model directory, or a llama2.c `.bin` checkpoint) wins over
 * MODEL_NAME (a hub id). Throws ModelSourceError when MODEL_PATH names
 * nothing usable, or when MODEL_QUANTIZE (`quantize`) is set for a source
 * that is not a checkpoint imported here (a model directory is quantized
 * when it is made; hub models are served as published).
 */
export function resolveModelSource(
  modelPath: string | undefined,
  tokenizerPath: string | undefined,
  modelName: string,
  quantize?: QuantizeMode,
): ModelSource {
  const source = resolveSource(modelPath, tokenizerPath, modelName);
  if (quantize === undefined) return source;
  if (source.kind !== 'llama2c') {
    throw new ModelSourceError(
      `MODEL_QUANTIZE=${quantize} applies only to a llama2.c checkpoint imported at start-up (MODEL_PATH=FILE.bin), ` +
        `but the model comes from ${source.kind === 'hub' ? `the hub (MODEL_NAME=${source.id})` : `the model directory MODEL_PATH=${source.dir}`}. ` +
        `Unset MODEL_QUANTIZE, or quantize when the directory is made: npm run import-llama2c -- ... --quantize ${quantize} ` +
        `(or npm run make-model -- ... --quantize ${quantize}).`,
    );
  }
  return { ...source, quantize };
}

function resolveSource(modelPath: string | undefined, tokenizerPath: string | undefined, modelName: string): ModelSource {
  if (modelPath === undefined) return { kind: 'hub', id: modelName, name: modelName.split('/').pop() ?? modelName };
  if (!fs.existsSync(modelPath)) {
    throw new ModelSourceError(`MODEL_PATH=${modelPath} does not exist. Set MODEL_PATH to a transformers.js model directory or a llama2.c .bin checkpoint.`);
  }
  const stat = fs.statSync(modelPath);
  if (stat.isDirectory()) return { kind: 'directory', dir: modelPath, name: path.basename(modelPath) };
  if (modelPath.endsWith('.bin')) {
    return { kind: 'llama2c', checkpoint: modelPath, tokenizer: tokenizerPath, name: path.basename(modelPath, '.bin') };
  }
  throw new ModelSourceError(`MODEL_PATH=${modelPath} is neither a model directory nor a llama2.c .bin checkpoint.`);
}

/** Error for a hub model that cannot be fetched: the server cannot run without a model. */
export function offlineMessage(id: string, cause: string): string {
  return (
    `No model available: MODEL_PATH is not set and the hub model MODEL_NAME=${id} could not be fetched ` +
    `or found in the local cache (${cause}). On a machine without internet access, set MODEL_PATH to a ` +
    `local transformers.js model directory or a llama2.c checkpoint, for example ` +
    `MODEL_PATH=../shared/models/stories260K/stories260K.bin, then start the server again.`
  );
}

/**
 * Turns a source into a local model directory: imports a checkpoint once
 * (cached by content hash), or fetches a hub model through transformers.js.
 */
export async function materializeModel(source: ModelSource, cacheDir: string): Promise<string> {
  switch (source.kind) {
    case 'directory':
      return source.dir;
    case 'llama2c':
      return resolveCheckpointModel(source.checkpoint, source.tokenizer, path.join(cacheDir, 'llama2c'), source.quantize);
    case 'hub':
      return fetchHubModel(source.id, path.join(cacheDir, 'hub'));
  }
}

async function fetchHubModel(id: string, hubCache: string): Promise<string> {
  const { env, AutoModelForCausalLM, AutoTokenizer } = await import('@huggingface/transformers');
  env.cacheDir = hubCache;
  const dir = path.join(hubCache, id);
  if (!fs.existsSync(path.join(dir, 'config.json'))) {
    // transformers.js downloads the files into its cache as it loads them.
    await AutoTokenizer.from_pretrained(id);
    const model = await AutoModelForCausalLM.from_pretrained(id, { dtype: 'fp32' });
    await model.dispose();
  }
  return dir;
}
