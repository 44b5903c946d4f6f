import fs from 'node:fs';
import path from 'node:path';
import { resolveCheckpointModel } from './model-dir.js';

/** Where the model comes from, decided from configuration before anything loads. */
export type ModelSource =
  | { kind: 'directory'; dir: string; name: string }
  | { kind: 'llama2c'; checkpoint: string; tokenizer: string | undefined; name: string }
  | { kind: 'hub'; id: string; name: string };

export class ModelSourceError extends Error {}

/**
 * MODEL_PATH (a model directory, or a llama2.c `.bin` checkpoint) wins over
 * MODEL_NAME (a hub id). Throws ModelSourceError when MODEL_PATH names nothing usable.
 */
export function resolveModelSource(modelPath: string | undefined, tokenizerPath: string | undefined, modelName: string): ModelSource {
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
      return resolveCheckpointModel(source.checkpoint, source.tokenizer, path.join(cacheDir, 'llama2c'));
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
