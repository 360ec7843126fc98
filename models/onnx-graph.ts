/**
 * A small ONNX graph writer over onnx-proto: nodes, initializers, typed inputs/outputs and model
 * metadata, encoded to the protobuf bytes ONNX Runtime loads. It knows nothing about ViTs; the
 * architecture lives in build-vit.ts. Encoding is deterministic (no timestamps, names from a
 * counter), so the same calls always produce the same bytes.
 */
import type { onnx as OnnxTypes } from 'onnx-proto';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
export type OnnxModelProto = InstanceType<typeof onnx.ModelProto>;
export { onnx };

/** Opset 17 is the first with LayerNormalization; ORT 1.30 runs it and tf2onnx can target it. */
export const ONNX_OPSET = 17;
/** IR version 8 is the newest onnx-proto 8 (ONNX 1.10) describes; ORT accepts it with opset 17. */
export const ONNX_IR_VERSION = 8;

const DataType = onnx.TensorProto.DataType;
const AttributeType = onnx.AttributeProto.AttributeType;

export type Dim = number | string;
export type Attribute = OnnxTypes.IAttributeProto;

export const intAttr = (name: string, i: number): Attribute => ({ name, type: AttributeType.INT, i });
export const floatAttr = (name: string, f: number): Attribute => ({ name, type: AttributeType.FLOAT, f });
export const stringAttr = (name: string, value: string): Attribute => ({
  name,
  type: AttributeType.STRING,
  s: new TextEncoder().encode(value),
});
export const intsAttr = (name: string, ints: readonly number[]): Attribute => ({
  name,
  type: AttributeType.INTS,
  ints: [...ints],
});

export type ElementType = 'float32' | 'float16' | 'uint8' | 'int64';
const ELEMENT_TYPES: Record<ElementType, number> = {
  float32: DataType.FLOAT,
  float16: DataType.FLOAT16,
  uint8: DataType.UINT8,
  int64: DataType.INT64,
};

/** The ONNX data type number of an element type (Cast's `to` attribute). */
export function onnxDataType(type: ElementType): number {
  return ELEMENT_TYPES[type];
}

const F32 = new Float32Array(1);
const F32_BITS = new Uint32Array(F32.buffer);
const HALF_EXPONENT_BIAS = 15;
const FLOAT_EXPONENT_BIAS = 127;
const HALF_INFINITY = 0x7c00;
const HALF_SIGN = 0x8000;

/**
 * IEEE 754 binary16 bits of a number, rounded to nearest even as ONNX Runtime's and CUDA's
 * float-to-half conversions round (Node 20 has no Float16Array). Subnormals are kept: ViT weights
 * drawn with std 0.02 reach below fp16's smallest normal (6.1e-5).
 */
export function floatToHalfBits(value: number): number {
  F32[0] = value;
  const bits = F32_BITS[0]!;
  const sign = (bits >>> 16) & HALF_SIGN;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | HALF_INFINITY | (mantissa ? 0x200 : 0);
  const e = exponent - FLOAT_EXPONENT_BIAS + HALF_EXPONENT_BIAS;
  if (e >= 0x1f) return sign | HALF_INFINITY;
  if (e <= 0) {
    // Below half the smallest subnormal: rounds to zero.
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    let half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const midpoint = 1 << (shift - 1);
    if (rest > midpoint || (rest === midpoint && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** The number binary16 bits stand for. */
export function halfBitsToFloat(bits: number): number {
  const sign = bits & HALF_SIGN ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - HALF_EXPONENT_BIAS);
}

/** Little-endian binary16 raw data of float values. */
export function toHalfBytes(data: Float32Array): Uint8Array {
  const halves = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) halves[i] = floatToHalfBits(data[i]!);
  return new Uint8Array(halves.buffer);
}

export interface TensorSignature {
  name: string;
  type: ElementType;
  /** Numbers are fixed sizes, strings are symbolic (dynamic) dimensions such as 'N'. */
  shape: readonly Dim[];
}

export interface ModelMetadata {
  producerVersion: string;
  docString: string;
  /** Written as metadata_props, in this order. */
  properties: ReadonlyArray<readonly [string, string]>;
}

function valueInfo(sig: TensorSignature) {
  return {
    name: sig.name,
    type: {
      tensorType: {
        elemType: ELEMENT_TYPES[sig.type],
        shape: {
          dim: sig.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  };
}

function littleEndianBytes(data: Float32Array): Uint8Array {
  // ONNX raw_data is little-endian; every platform ORT ships for (x64, arm64) is too, so the
  // Float32Array's own bytes can be written as they are.
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export interface NodeOptions {
  attributes?: readonly Attribute[];
  /** Name of the output value; default: a name derived from the current scope and op type. */
  output?: string;
}

/** Collects nodes and initializers in topological order (callers add nodes after their inputs). */
export class GraphBuilder {
  readonly #nodes: OnnxTypes.INodeProto[] = [];
  readonly #initializers: OnnxTypes.ITensorProto[] = [];
  readonly #names = new Set<string>();
  #scope = '';
  #floatElements = 0;
  #opCounts = new Map<string, number>();

  /** Prefix of the node and value names added while `fn` runs ("blocks.3/attn/..."). */
  scoped<T>(scope: string, fn: () => T): T {
    const outer = this.#scope;
    this.#scope = outer ? `${outer}/${scope}` : scope;
    try {
      return fn();
    } finally {
      this.#scope = outer;
    }
  }

  #uniqueName(base: string): string {
    const full = this.#scope ? `${this.#scope}/${base}` : base;
    let name = full;
    for (let i = 1; this.#names.has(name); i++) name = `${full}_${i}`;
    this.#names.add(name);
    return name;
  }

  /** A float32 weight tensor; counts toward `parameterCount`. Returns its value name. */
  floatInitializer(base: string, dims: readonly number[], data: Float32Array): string {
    const expected = dims.reduce((a, b) => a * b, 1);
    if (expected !== data.length) {
      throw new Error(`initializer ${base}: ${data.length} values for dims [${dims.join(',')}]`);
    }
    const name = this.#uniqueName(base);
    this.#initializers.push({
      name,
      dataType: DataType.FLOAT,
      dims: [...dims],
      rawData: littleEndianBytes(data),
    });
    this.#floatElements += data.length;
    return name;
  }

  /** A float16 weight tensor from float values (rounded to nearest even); counts toward `parameterCount`. */
  halfInitializer(base: string, dims: readonly number[], data: Float32Array): string {
    const expected = dims.reduce((a, b) => a * b, 1);
    if (expected !== data.length) {
      throw new Error(`initializer ${base}: ${data.length} values for dims [${dims.join(',')}]`);
    }
    const name = this.#uniqueName(base);
    this.#initializers.push({
      name,
      dataType: DataType.FLOAT16,
      dims: [...dims],
      rawData: toHalfBytes(data),
    });
    this.#floatElements += data.length;
    return name;
  }

  /** A scalar float16 constant. */
  halfConstant(base: string, value: number): string {
    const name = this.#uniqueName(base);
    this.#initializers.push({
      name,
      dataType: DataType.FLOAT16,
      dims: [],
      rawData: toHalfBytes(new Float32Array([value])),
    });
    return name;
  }

  /** A scalar float constant (scales, GELU's 0.5 and sqrt 2); not a learned parameter. */
  floatConstant(base: string, value: number): string {
    const name = this.#uniqueName(base);
    this.#initializers.push({ name, dataType: DataType.FLOAT, dims: [], floatData: [value] });
    return name;
  }

  /** An int64 constant (shapes, indices); `dims` undefined gives a 1-D tensor, [] a scalar. */
  int64Constant(base: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    const name = this.#uniqueName(base);
    this.#initializers.push({ name, dataType: DataType.INT64, dims: [...dims], int64Data: [...values] });
    return name;
  }

  /** Appends a node and returns the name of its (single) output. */
  node(opType: string, inputs: readonly string[], options: NodeOptions = {}): string {
    const output = options.output ?? this.#uniqueName(opType);
    if (options.output !== undefined) this.#names.add(options.output);
    this.#nodes.push({
      name: this.#uniqueName(`${opType}_node`),
      opType,
      input: [...inputs],
      output: [output],
      attribute: options.attributes ? [...options.attributes] : [],
    });
    this.#opCounts.set(opType, (this.#opCounts.get(opType) ?? 0) + 1);
    return output;
  }

  /** Learned float32 values in the initializers (scalar constants excluded). */
  get parameterCount(): number {
    return this.#floatElements;
  }

  /** How many nodes of each op type the graph has. */
  get opCounts(): ReadonlyMap<string, number> {
    return this.#opCounts;
  }

  /** The model as ONNX protobuf bytes. */
  encode(
    graphName: string,
    inputs: readonly TensorSignature[],
    outputs: readonly TensorSignature[],
    metadata: ModelMetadata,
  ): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: ONNX_IR_VERSION,
      opsetImport: [{ domain: '', version: ONNX_OPSET }],
      producerName: 'pathembed',
      producerVersion: metadata.producerVersion,
      docString: metadata.docString,
      graph: {
        name: graphName,
        node: this.#nodes,
        initializer: this.#initializers,
        input: inputs.map(valueInfo),
        output: outputs.map(valueInfo),
      },
      metadataProps: metadata.properties.map(([key, value]) => ({ key, value })),
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
