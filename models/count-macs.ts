/**
 * Multiply-accumulates per patch of any ONNX model meeting the contract, counted from its graph:
 * every MatMul, Gemm, Conv and Einsum node, with the shapes its tensors actually take for one
 * patch. Rather than re-implementing shape inference for every op a converter may emit, the graph
 * is re-encoded with those tensors exposed as extra outputs and run once on a zero patch; ONNX
 * Runtime reports their shapes. This works for the synthetic ViT and for a tf2onnx conversion of
 * the real Path Foundation alike.
 */
import { readFile } from 'node:fs/promises';
import type { onnx as OnnxTypes } from 'onnx-proto';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { onnx } from './onnx-graph.js';

const COUNTED_OPS = new Set(['MatMul', 'Gemm', 'Conv', 'Einsum']);
const ONE_PATCH = 1;

export interface MacCount {
  /** Multiply-accumulates for one patch. */
  total: number;
  /** The same, split by op type. */
  byOp: Record<string, number>;
  /** How many nodes were counted. */
  nodes: number;
}

type Shapes = Map<string, readonly number[]>;
type Node = OnnxTypes.NodeProto;

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

function attributeInt(node: Node, name: string, fallback: number): number {
  const attr = node.attribute.find((a) => a.name === name);
  return attr ? Number(attr.i) : fallback;
}

/** MACs of one node: output elements times the length of the reduction that makes each one. */
function nodeMacs(node: Node, shape: (name: string) => readonly number[]): number {
  const out = product(shape(node.output[0]));
  const a = shape(node.input[0]);
  switch (node.opType) {
    case 'MatMul':
      return out * a[a.length - 1];
    case 'Gemm':
      return out * (attributeInt(node, 'transA', 0) ? a[0] : a[1]);
    case 'Conv': {
      // Weight [outChannels, inChannels/group, k...]: each output element sums over the rest.
      const w = shape(node.input[1]);
      return out * product(w.slice(1));
    }
    case 'Einsum': {
      const equation = node.attribute.find((x) => x.name === 'equation')?.s;
      const [lhs, rhs = ''] = new TextDecoder()
        .decode(equation ?? new Uint8Array())
        .replace(/\s/g, '')
        .split('->');
      const sizes = new Map<string, number>();
      for (const [i, term] of lhs.split(',').entries()) {
        const dims = shape(node.input[i]);
        // Letters after an ellipsis count from the end of the shape.
        const [head, tail = ''] = term.split('...');
        for (const [j, letter] of [...head].entries()) sizes.set(letter, dims[j]);
        for (const [j, letter] of [...tail].entries()) sizes.set(letter, dims[dims.length - tail.length + j]);
      }
      const contracted = [...sizes.keys()].filter((letter) => !rhs.includes(letter));
      return out * product(contracted.map((letter) => sizes.get(letter) ?? 1));
    }
    default:
      return 0;
  }
}

/** Counts the model's multiply-accumulates for one patch (batch dimension 1). */
export async function countMacsPerPatch(modelPath: string): Promise<MacCount> {
  const model = onnx.ModelProto.decode(await readFile(modelPath));
  // Decoded messages are class instances whose repeated fields are always arrays.
  const graph = model.graph as OnnxTypes.GraphProto;
  const known: Shapes = new Map(
    (graph.initializer as OnnxTypes.TensorProto[]).map((t) => [t.name, t.dims.map(Number)]),
  );
  const nodes = (graph.node as Node[]).filter((n) => COUNTED_OPS.has(n.opType));

  const exposed = new Set<string>();
  for (const node of nodes) {
    for (const name of [...node.input.slice(0, 2), node.output[0]]) if (!known.has(name)) exposed.add(name);
  }
  const existingOutputs = new Set(graph.output.map((o) => o.name ?? ''));
  for (const name of exposed) {
    if (!existingOutputs.has(name)) {
      // Element type only: ORT infers the shape, which is what this run is for.
      graph.output.push(
        onnx.ValueInfoProto.create({
          name,
          type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } },
        }),
      );
    }
  }
  const session = await InferenceSession.create(onnx.ModelProto.encode(model).finish(), {
    executionProviders: ['cpu'],
  });
  try {
    const feeds: Record<string, Tensor> = {};
    for (const input of session.inputMetadata) {
      if (!input.isTensor) throw new Error(`input ${input.name} is not a tensor`);
      const dims = input.shape.map((d) => (typeof d === 'number' ? d : ONE_PATCH));
      feeds[input.name] = new Tensor('float32', new Float32Array(product(dims)), dims);
    }
    const results = await session.run(feeds, [...exposed]);
    for (const [name, value] of Object.entries(results)) known.set(name, (value as Tensor).dims);
  } finally {
    await session.release();
  }

  const byOp: Record<string, number> = {};
  let total = 0;
  for (const node of nodes) {
    const macs = nodeMacs(node, (name) => {
      const dims = known.get(name);
      if (!dims) throw new Error(`no shape for ${name} (input of ${node.name})`);
      return dims;
    });
    byOp[node.opType] = (byOp[node.opType] ?? 0) + macs;
    total += macs;
  }
  return { total, byOp, nodes: nodes.length };
}
