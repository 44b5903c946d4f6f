import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseQuantizationConfig, type QuantizationInfo } from './quantize.js';

/** What the engine needs to know of a decoder model, whatever its config dialect (llama, gpt2, ...). */
export interface DecoderConfig {
  modelType: string;
  layers: number;
  attentionHeads: number;
  kvHeads: number;
  headDim: number;
  hiddenSize: number;
  vocabSize: number;
  contextWindow: number;
  /** Token ids that end generation. */
  eosTokenIds: number[];
  /** How the fused graph's weights are quantized (config.json `quantization`); null: fp32. */
  quantization: QuantizationInfo | null;
}

type Json = Record<string, unknown>;

function readJson(file: string): Json | undefined {
  if (!fs.existsSync(file)) return undefined;
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Json;
}

function num(cfg: Json, ...names: string[]): number | undefined {
  for (const n of names) {
    const v = cfg[n];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
  }
  return undefined;
}

function ids(v: unknown): number[] {
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number');
  return [];
}

/** Reads config.json (and generation_config.json for stop tokens) of a model directory. */
export function readDecoderConfig(dir: string): DecoderConfig {
  const cfg = readJson(path.join(dir, 'config.json'));
  if (!cfg) throw new Error(`${dir} has no config.json`);
  const gen = readJson(path.join(dir, 'generation_config.json')) ?? {};
  const need = (what: string, ...names: string[]) => {
    const v = num(cfg, ...names);
    if (v === undefined) throw new Error(`config.json lacks ${what} (${names.join(' or ')})`);
    return v;
  };
  const heads = need('attention heads', 'num_attention_heads', 'n_head');
  const hidden = need('hidden size', 'hidden_size', 'n_embd', 'd_model');
  const eos = [...new Set([...ids(gen.eos_token_id), ...ids(cfg.eos_token_id)])];
  return {
    modelType: typeof cfg.model_type === 'string' ? cfg.model_type : 'unknown',
    layers: need('layer count', 'num_hidden_layers', 'n_layer'),
    attentionHeads: heads,
    kvHeads: num(cfg, 'num_key_value_heads') ?? heads,
    headDim: num(cfg, 'head_dim') ?? hidden / heads,
    hiddenSize: hidden,
    vocabSize: need('vocabulary size', 'vocab_size'),
    contextWindow: need('context window', 'max_position_embeddings', 'n_positions', 'n_ctx'),
    eosTokenIds: eos,
    quantization: parseQuantizationConfig(cfg.quantization) ?? null,
  };
}

/** The decoder ONNX file of a model directory, in transformers.js's naming. */
export function findOnnxFile(dir: string): string {
  const candidates = ['onnx/model.onnx', 'onnx/decoder_model_merged.onnx', 'onnx/decoder_with_past_model.onnx', 'model.onnx'];
  for (const c of candidates) {
    const f = path.join(dir, c);
    if (fs.existsSync(f)) return f;
  }
  throw new Error(`${dir} has no ONNX model (looked for ${candidates.join(', ')})`);
}

/**
 * This project's fused decoder graph (shared KV buffer, one logits row per
 * sequence), written beside the plain one for models it builds; undefined
 * for other model directories, which run on the plain graph.
 */
export function findFusedOnnxFile(dir: string): string | undefined {
  const f = path.join(dir, 'onnx', 'model_fused.onnx');
  return fs.existsSync(f) ? f : undefined;
}

/** Files up to this size are hashed whole; larger ones (weights) by name, size and modification time. */
const HASH_WHOLE_BYTES = 16 * 1024 * 1024;

/**
 * A short hash of a model directory's files (OpenAI's system_fingerprint):
 * it changes when the weights, configuration or tokenizer change.
 */
export function modelFingerprint(dir: string): string {
  const hash = createHash('sha256');
  const walk = (d: string, rel: string) => {
    for (const name of fs.readdirSync(d).sort()) {
      const full = path.join(d, name);
      const stat = fs.statSync(full);
      if (stat.isDirectory()) walk(full, `${rel}${name}/`);
      else {
        hash.update(`${rel}${name}\0${stat.size}\0`);
        if (stat.size <= HASH_WHOLE_BYTES) hash.update(fs.readFileSync(full));
        else hash.update(String(stat.mtimeMs));
      }
    }
  };
  walk(dir, '');
  return hash.digest('hex').slice(0, 12);
}
