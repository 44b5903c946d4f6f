import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** ONNX element types this builder emits. */
export const ElemType = {
  FLOAT: onnx.TensorProto.DataType.FLOAT,
  INT32: onnx.TensorProto.DataType.INT32,
  INT64: onnx.TensorProto.DataType.INT64,
  BOOL: onnx.TensorProto.DataType.BOOL,
  UINT8: onnx.TensorProto.DataType.UINT8,
} as const;
export type ElemType = (typeof ElemType)[keyof typeof ElemType];

/** A node attribute value; integers and floats are told apart explicitly because JS numbers can't. */
export type AttrValue =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'ints'; value: number[] }
  | { kind: 'string'; value: string };

/** An INT attribute. */
export const attrInt = (value: number): AttrValue => ({ kind: 'int', value });
/** A FLOAT attribute. */
export const attrFloat = (value: number): AttrValue => ({ kind: 'float', value });
/** An INTS attribute. */
export const attrInts = (value: number[]): AttrValue => ({ kind: 'ints', value });

/** A dimension of a graph input/output: a fixed size or a symbolic name. */
export type Dim = number | string;

function toAttribute(name: string, attr: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  switch (attr.kind) {
    case 'int':
      return { name, type: T.INT, i: attr.value };
    case 'float':
      return { name, type: T.FLOAT, f: attr.value };
    case 'ints':
      return { name, type: T.INTS, ints: attr.value };
    case 'string':
      return { name, type: T.STRING, s: new TextEncoder().encode(attr.value) };
  }
}

function valueInfo(name: string, elemType: ElemType, dims: Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** Views a typed array's bytes without copying (ONNX raw_data is little-endian, as is every host we run on). */
function bytesOf(data: Float32Array | BigInt64Array | Uint8Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Accumulates nodes, initializers and graph I/O, then serializes one ONNX
 * model. Node outputs get unique generated names so graph code can be written
 * as plain expressions (`b.op('Add', [x, y])`).
 */
export class GraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly usedNames = new Set<string>();
  private readonly constCache = new Map<string, string>();
  private counter = 0;

  /** Returns `base`, or `base_N` if that name is taken. */
  fresh(base: string): string {
    let name = base;
    while (this.usedNames.has(name)) name = `${base}_${++this.counter}`;
    this.usedNames.add(name);
    return name;
  }

  /** Declares a graph input. */
  input(name: string, elemType: ElemType, dims: Dim[]): string {
    this.claim(name);
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  /** Declares an existing value as a graph output. */
  output(name: string, elemType: ElemType, dims: Dim[]): void {
    this.outputs.push(valueInfo(name, elemType, dims));
  }

  /** Adds a float32 initializer; the data is referenced, not copied, until serialization. */
  float(name: string, dims: number[], data: Float32Array): string {
    if (data.length !== dims.reduce((a, b) => a * b, 1)) {
      throw new Error(`initializer ${name}: ${data.length} values for shape [${dims.join(', ')}]`);
    }
    const unique = this.fresh(name);
    this.initializers.push({ name: unique, dims, dataType: ElemType.FLOAT, rawData: bytesOf(data) });
    return unique;
  }

  /** Adds a uint8 initializer (quantized weights); the data is referenced, not copied, until serialization. */
  uint8(name: string, dims: number[], data: Uint8Array): string {
    if (data.length !== dims.reduce((a, b) => a * b, 1)) {
      throw new Error(`initializer ${name}: ${data.length} values for shape [${dims.join(', ')}]`);
    }
    const unique = this.fresh(name);
    this.initializers.push({ name: unique, dims, dataType: ElemType.UINT8, rawData: bytesOf(data) });
    return unique;
  }

  /** An int64 constant (shape vectors, axes); identical constants are shared. */
  int64(values: number[], dims: number[] = [values.length]): string {
    const key = `i64:${dims.join('x')}:${values.join(',')}`;
    const cached = this.constCache.get(key);
    if (cached) return cached;
    const name = this.fresh(`const_i64_${values.join('_').replace(/-/g, 'm')}`);
    this.initializers.push({
      name,
      dims,
      dataType: ElemType.INT64,
      rawData: bytesOf(BigInt64Array.from(values, (v) => BigInt(v))),
    });
    this.constCache.set(key, name);
    return name;
  }

  /** A float32 scalar constant; identical constants are shared. */
  scalar(value: number): string {
    const key = `f32:${value}`;
    const cached = this.constCache.get(key);
    if (cached) return cached;
    const name = this.fresh(`const_f32_${this.constCache.size}`);
    this.initializers.push({ name, dims: [], dataType: ElemType.FLOAT, rawData: bytesOf(Float32Array.of(value)) });
    this.constCache.set(key, name);
    return name;
  }

  /** Adds a node with one output and returns that output's name (or `outputName` when given). */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputName?: string): string {
    const [out] = this.opN(opType, inputs, 1, attrs, outputName ? [outputName] : undefined);
    return out!;
  }

  /**
   * Adds a node with `count` outputs. `outputNames` fixes some outputs'
   * names: an `undefined` entry gets a generated name, an empty string leaves
   * an optional output out (as an empty string in `inputs` leaves an optional
   * input out, as ONNX allows). `domain` names an operator set other than the
   * default one (e.g. `com.microsoft`); `build` must then import it.
   */
  opN(
    opType: string,
    inputs: string[],
    count: number,
    attrs: Record<string, AttrValue> = {},
    outputNames?: (string | undefined)[],
    domain?: string,
  ): string[] {
    const nodeName = this.fresh(`/${opType}`);
    const outputs = Array.from({ length: count }, (_, i) => {
      const fixed = outputNames?.[i];
      if (fixed === undefined) return this.fresh(`${nodeName}_output_${i}`);
      if (fixed !== '') this.claim(fixed);
      return fixed;
    });
    this.nodes.push({
      name: nodeName,
      opType,
      ...(domain ? { domain } : {}),
      input: inputs,
      output: outputs,
      attribute: Object.entries(attrs).map(([k, v]) => toAttribute(k, v)),
    });
    return outputs;
  }

  /**
   * Serializes the graph as an opset-`opset` model of the default domain,
   * importing `extraOpsets` (e.g. `{ 'com.microsoft': 1 }`) for nodes of other domains.
   */
  build(graphName: string, opset = 17, extraOpsets: Record<string, number> = {}): Uint8Array {
    const model: onnxProto.onnx.IModelProto = {
      // IR version 8 is the one that goes with opset 17.
      irVersion: 8,
      producerName: 'inference-server',
      opsetImport: [{ domain: '', version: opset }, ...Object.entries(extraOpsets).map(([domain, version]) => ({ domain, version }))],
      graph: {
        name: graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    };
    return onnx.ModelProto.encode(model).finish();
  }

  private claim(name: string): void {
    if (this.usedNames.has(name)) throw new Error(`duplicate value name ${name}`);
    this.usedNames.add(name);
  }
}
