/**
 * The synthetic ViT-S/16 builder: architecture (parameters, blocks, contract shapes, opset),
 * byte-for-byte reproducibility, and the multiply-accumulate count measured from the graph.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BuiltVit,
  buildVit,
  VIT_S16,
  vitMacsPerPatch,
  writeSyntheticModel,
} from '../../models/build-vit.js';
import { countMacsPerPatch } from '../../models/count-macs.js';
import { GraphBuilder, intsAttr, onnx, stringAttr } from '../../models/onnx-graph.js';
import { SeededRandom } from '../../models/seeded-random.js';
import { readManifest, sha256OfFile } from '../../src/embed/index.js';

const FLOAT_BYTES = 4;

let built: BuiltVit;
let decoded: InstanceType<typeof onnx.ModelProto>;
let dir: string;

beforeAll(async () => {
  built = buildVit();
  decoded = onnx.ModelProto.decode(built.bytes);
  dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-vit-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function dims(valueInfo: InstanceType<typeof onnx.ValueInfoProto>): Array<number | string> {
  return valueInfo.type!.tensorType!.shape!.dim!.map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue)));
}

describe('synthetic ViT-S/16', () => {
  it('has 21-23 M learned parameters, counted from the initializers in the file', () => {
    let floats = 0;
    for (const t of decoded.graph!.initializer!) {
      if (t.dataType !== onnx.TensorProto.DataType.FLOAT) continue;
      const elements =
        t.rawData && t.rawData.length > 0 ? t.rawData.length / FLOAT_BYTES : t.floatData!.length;
      if (t.dims!.length > 0) floats += elements; // scalars are constants (scale, GELU), not parameters
    }
    expect(floats).toBe(built.parameters);
    expect(floats).toBeGreaterThanOrEqual(21_000_000);
    expect(floats).toBeLessThanOrEqual(23_000_000);
  });

  it('has 12 pre-norm attention blocks with exact GELU', () => {
    const ops = decoded.graph!.node!.map((n) => n.opType);
    const count = (op: string) => ops.filter((o) => o === op).length;
    expect(count('Softmax')).toBe(12);
    expect(count('LayerNormalization')).toBe(2 * 12 + 1);
    expect(count('Erf')).toBe(12);
    expect(count('Conv')).toBe(1);
    // Per block: Q, K, V, projection, Q.K^T, attention.V, two MLP layers.
    expect(count('MatMul')).toBe(8 * 12);
  });

  it('takes float32 [N,224,224,3] `inputs` and returns float32 [N,384] `output_0`, opset 17', () => {
    const graph = decoded.graph!;
    expect(graph.input!.map((i) => i.name)).toEqual(['inputs']);
    expect(graph.output!.map((o) => o.name)).toEqual(['output_0']);
    expect(dims(graph.input![0] as InstanceType<typeof onnx.ValueInfoProto>)).toEqual(['N', 224, 224, 3]);
    expect(dims(graph.output![0] as InstanceType<typeof onnx.ValueInfoProto>)).toEqual(['N', 384]);
    expect(graph.input![0].type!.tensorType!.elemType).toBe(onnx.TensorProto.DataType.FLOAT);
    expect(decoded.opsetImport!.map((o) => [o.domain, Number(o.version)])).toEqual([['', 17]]);
  });

  it('says in its metadata that the weights are synthetic', () => {
    const props = Object.fromEntries(decoded.metadataProps!.map((p) => [p.key, p.value]));
    expect(props.name).toBe('path-foundation-synthetic-vit-s16');
    expect(props.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(props.synthetic).toBe('true');
    expect(props.note).toMatch(/NO pathology meaning/);
  });

  it('writes the same bytes every time (two builds, identical sha256) with a manifest that matches', async () => {
    const a = path.join(dir, 'a', 'model.onnx');
    const b = path.join(dir, 'b', 'model.onnx');
    const [ma, mb] = [await writeSyntheticModel(a), await writeSyntheticModel(b)];
    const [sa, sb] = await Promise.all([sha256OfFile(a), sha256OfFile(b)]);
    expect(sa).toBe(sb);
    expect(ma.sha256).toBe(sa);
    expect(mb).toEqual(ma);
    expect(await readManifest(a)).toEqual(ma);
    expect(ma).toMatchObject({ synthetic: true, file: 'model.onnx', parameters: built.parameters });
    // A different seed is a different model: the hash really depends on the weights.
    const c = path.join(dir, 'c', 'model.onnx');
    expect((await writeSyntheticModel(c, { seed: 7, architecture: { depth: 1 } })).sha256).not.toBe(sa);
  });

  it('leaves no temporary files behind', async () => {
    const target = path.join(dir, 'clean', 'model.onnx');
    await writeSyntheticModel(target, { architecture: { depth: 1 } });
    const { readdir } = await import('node:fs/promises');
    expect((await readdir(path.dirname(target))).sort()).toEqual(['model.onnx', 'model.onnx.manifest.json']);
  });

  it('costs ~4.6 G multiply-accumulates per patch, the graph measured by ONNX Runtime agreeing with the formula', async () => {
    const file = path.join(dir, 'macs.onnx');
    const manifest = await writeSyntheticModel(file);
    const measured = await countMacsPerPatch(file);
    expect(measured.total).toBe(vitMacsPerPatch(VIT_S16));
    expect(manifest.macsPerPatch).toBe(measured.total);
    expect(measured.byOp.Conv).toBe(196 * 384 * 3 * 16 * 16);
    expect(measured.total).toBeGreaterThan(4.5e9);
    expect(measured.total).toBeLessThan(4.7e9);
    expect((await readFile(file)).length).toBeGreaterThan(built.parameters * FLOAT_BYTES);
  });
});

describe('countMacsPerPatch', () => {
  it('counts Einsum (as tf2onnx emits for Keras attention) and Gemm too', async () => {
    const g = new GraphBuilder();
    const w = g.floatInitializer('w', [3, 8], new Float32Array(24));
    const projected = g.node('Einsum', ['inputs', w], {
      attributes: [stringAttr('equation', 'nhwc,cd->nhwd')],
    });
    const pooled = g.node('ReduceMean', [projected], { attributes: [intsAttr('axes', [1, 2])] });
    const flat = g.node('Reshape', [pooled, g.int64Constant('shape', [1, 8])]);
    const head = g.floatInitializer('head', [8, 4], new Float32Array(32));
    g.node('Gemm', [flat, head], { output: 'output_0' });
    const file = path.join(dir, 'einsum.onnx');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(
      file,
      g.encode(
        'tiny',
        [{ name: 'inputs', type: 'float32', shape: ['N', 224, 224, 3] }],
        [{ name: 'output_0', type: 'float32', shape: [1, 4] }],
        { producerVersion: 'test', docString: '', properties: [] },
      ),
    );
    const measured = await countMacsPerPatch(file);
    expect(measured.byOp).toEqual({ Einsum: 224 * 224 * 8 * 3, Gemm: 4 * 8 });
    expect(measured.nodes).toBe(2);
  });
});

describe('SeededRandom', () => {
  it('repeats its sequence for a seed and differs across seeds', () => {
    const draw = (seed: number) => new SeededRandom(seed).fillTruncatedNormal(new Float32Array(1000), 1);
    expect(draw(1)).toEqual(draw(1));
    expect(draw(1)).not.toEqual(draw(2));
  });

  it('draws a normal truncated at two standard deviations', () => {
    const std = 0.02;
    const samples = new SeededRandom(42).fillTruncatedNormal(new Float32Array(200_000), std);
    let sum = 0;
    let sumSq = 0;
    let maxAbs = 0;
    for (const x of samples) {
      sum += x;
      sumSq += x * x;
      maxAbs = Math.max(maxAbs, Math.abs(x));
    }
    const mean = sum / samples.length;
    const sd = Math.sqrt(sumSq / samples.length - mean * mean);
    expect(Math.abs(mean)).toBeLessThan(std * 0.01);
    // A normal truncated at +-2 sd keeps ~88 % of its unit variance: sd ~ 0.88 std.
    expect(sd / std).toBeGreaterThan(0.86);
    expect(sd / std).toBeLessThan(0.9);
    expect(maxAbs).toBeLessThanOrEqual(2 * std * (1 + 1e-6));
  });
});
