import { QUANTIZE_MODES, type QuantizationInfo } from '../engine/quantize.js';
import { builder } from './builder.js';
import { enumFrom } from './enums.js';

const QuantizeModeRef = enumFrom('QuantizeMode', QUANTIZE_MODES, {
  description: 'How the weights of the running graph are stored.',
  values: {
    int8: '8-bit codes, one float32 scale per block of 32 weights.',
    int4: '4-bit codes (two a byte), one float32 scale per block of 32 weights.',
  },
});

/** The served model's weight quantization (REST: `quantization` in /v1/health and /v1/models). */
export const Quantization = builder.objectRef<QuantizationInfo>('Quantization').implement({
  description:
    "How the served model's weights are quantized: block-wise symmetric, run by ONNX Runtime's MatMulNBits (README: Quantization). Null where a field has it: fp32.",
  fields: (t) => ({
    mode: t.field({ type: QuantizeModeRef, description: 'int8 or int4.', resolve: (q) => q.mode }),
    method: t.exposeString('method', { description: "The ONNX Runtime operator that runs the weights (MatMulNBits, com.microsoft)." }),
    bits: t.exposeInt('bits', { description: 'Bits per weight code (8 or 4).' }),
    blockSize: t.exposeInt('blockSize', { description: 'Weights per block along the input dimension; each block has one scale.' }),
    symmetric: t.exposeBoolean('symmetric', { description: 'No zero points stored: codes are centred on 2^(bits-1).' }),
    scaleMethod: t.exposeString('scaleMethod', {
      description: "How each block's scale was chosen: absmax (the largest magnitude maps to the end code) or mse (least squared error).",
    }),
    accuracyLevel: t.exposeInt('accuracyLevel', {
      description: "MatMulNBits' accuracy_level: 0 or 1 multiply float32 activations; 4 lets ONNX Runtime quantize activations to int8.",
    }),
    linearLayers: t.exposeBoolean('linearLayers', { description: "Whether every layer's linear weights (q/k/v, o, gate/up, down) are quantized (always true)." }),
    lmHead: t.exposeBoolean('lmHead', { description: 'Whether the LM head (classifier) is quantized too.' }),
    embedding: t.exposeBoolean('embedding', { description: 'Whether the token embedding is quantized (false: it stays float32).' }),
    graph: t.exposeString('graph', { description: 'Which graph file carries the quantized weights (fused); the plain transformers.js graph stays fp32.' }),
  }),
});
