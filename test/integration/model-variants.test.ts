/**
 * The GPU builds of the synthetic model (`pathembed model build --variant`): fp16 inside with
 * LayerNorm and Softmax in float32, and a uint8 input scaled inside the graph. Checks the graph's
 * types node by node, the half-precision conversion bit for bit, that the contract check accepts
 * each build and says which one is loaded, and the embeddings of real H&E patches (CMU-1, cut by
 * vips) against the fp32 model's, all on ONNX Runtime's CPU provider.
 *
 * How fp16 runs on the CPU: ORT's CPU provider has float16 kernels for few of these ops and inserts
 * Casts around the rest, so every op boundary rounds to float16 as on a GPU, but the arithmetic
 * inside an op is float32. The GPU's own figure comes from bench/gpu-check.sh.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildVit, VIT_S16, variantModelPath, writeSyntheticModel } from '../../models/build-vit.js';
import { floatToHalfBits, halfBitsToFloat, onnx } from '../../models/onnx-graph.js';
import { agreement } from '../../models/variant-agreement.js';
import { REPO_ROOT } from '../../scripts/dev-services/fixtures.js';
import { loadConfig } from '../../src/config.js';
import { engineOptions } from '../../src/domain-options.js';
import { EmbeddingEngine, type ModelVariant } from '../../src/embed/index.js';
import { realPatches } from '../helpers/real-patches.js';

const DataType = onnx.TensorProto.DataType;
/** The bar for fp16 against fp32, on plain cosine. */
const FP16_MIN_COSINE = 0.9999;
/**
 * Bound on the relative change of the distance between two patches' embeddings. The synthetic
 * (untrained) ViT maps neighbouring patches to embeddings 0.998 alike, so fp16 rounding of the
 * activations moves those distances a lot: mean 10.6 %, max 37.7 % measured on these 9 patches
 * (rounding only the weights: 0.02 %). A guard against a build that loses more; see models/README.md.
 */
const FP16_MAX_PAIR_DISTANCE_ERROR = 0.5;
const PATCH_GRID_SIDE = 3;
const silent = pino({ level: 'silent' });

function halfBytesOf(value: number): number {
  return floatToHalfBits(value);
}

describe('float to half conversion', () => {
  it('round-trips every finite half exactly', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      if ((bits & 0x7c00) === 0x7c00) continue; // infinities and NaNs
      const back = floatToHalfBits(halfBitsToFloat(bits));
      // -0 and +0 keep their signs; everything else maps back to itself.
      if (back !== bits) throw new Error(`half 0x${bits.toString(16)} came back as 0x${back.toString(16)}`);
    }
  });

  it('rounds to nearest even, keeps subnormals and saturates to infinity', () => {
    expect(halfBytesOf(1 + 2 ** -11)).toBe(0x3c00); // halfway between 1 and its successor: even (1)
    expect(halfBytesOf(1 + 3 * 2 ** -11)).toBe(0x3c02); // halfway, odd below: up to even
    expect(halfBytesOf(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(halfBytesOf(2 ** -26)).toBe(0x0000); // below half of it
    expect(halfBytesOf(65520)).toBe(0x7c00); // rounds past the largest half (65504)
    expect(halfBytesOf(-0.02)).toBe(0xa51f);
  });
});

describe('the fp16 and uint8 builds', () => {
  const graphOf = (variant: ModelVariant) => onnx.ModelProto.decode(buildVit({ variant }).bytes).graph!;

  it('keeps LayerNormalization, Softmax and the residual stream in float32 and the learned weights in float16', () => {
    const graph = graphOf('uint8-fp16');
    const producers = new Map(graph.node!.map((n) => [n.output![0], n]));
    const castsTo = (type: number) =>
      graph.node!.filter((n) => n.opType === 'Cast' && Number(n.attribute![0].i) === type).length;
    const softmaxes = graph.node!.filter((n) => n.opType === 'Softmax');
    expect(softmaxes).toHaveLength(12);
    for (const n of softmaxes) {
      const from = producers.get(n.input![0])!;
      expect([from.opType, Number(from.attribute![0].i)]).toEqual(['Cast', DataType.FLOAT]);
    }
    // Every LayerNorm reads the residual stream: a residual Add, or the embedded tokens cast to float32.
    const norms = graph.node!.filter((n) => n.opType === 'LayerNormalization');
    expect(norms).toHaveLength(2 * 12 + 1);
    for (const n of norms) expect(['Add', 'Cast']).toContain(producers.get(n.input![0])!.opType);
    // To float32: the uint8 pixels, the embedded tokens, each block's two branches, each Softmax.
    expect(castsTo(DataType.FLOAT)).toBe(1 + 1 + 2 * 12 + 12);
    // To float16: the scaled pixels, each branch's LayerNorm output, each Softmax output.
    expect(castsTo(DataType.FLOAT16)).toBe(1 + 2 * 12 + 12);
    const byName = new Map(graph.initializer!.map((t) => [t.name!, t]));
    const normParams = graph
      .node!.filter((n) => n.opType === 'LayerNormalization')
      .flatMap((n) => n.input!.slice(1));
    for (const name of normParams) expect(byName.get(name)!.dataType).toBe(DataType.FLOAT);
    const matmulWeights = graph
      .node!.filter((n) => n.opType === 'MatMul')
      .map((n) => byName.get(n.input![1]));
    expect(matmulWeights.filter((t) => t !== undefined).every((t) => t!.dataType === DataType.FLOAT16)).toBe(
      true,
    );
    expect(matmulWeights.filter((t) => t !== undefined)).toHaveLength(6 * 12);
    expect(graph.input![0].type!.tensorType!.elemType).toBe(DataType.UINT8);
    expect(graph.output![0].type!.tensorType!.elemType).toBe(DataType.FLOAT);
  });

  it('has the fp32 model parameters, rounded, at half the bytes', () => {
    const fp32 = buildVit();
    const fp16 = buildVit({ variant: 'fp16' });
    expect(fp16.parameters).toBe(fp32.parameters);
    expect(fp16.bytes.length / fp32.bytes.length).toBeGreaterThan(0.49);
    expect(fp16.bytes.length / fp32.bytes.length).toBeLessThan(0.51);
    const w32 = onnx.ModelProto.decode(fp32.bytes).graph!.initializer!.find(
      (t) => t.name === 'blocks.0/attn/q/weight',
    )!;
    const w16 = onnx.ModelProto.decode(fp16.bytes).graph!.initializer!.find(
      (t) => t.name === 'blocks.0/attn/q/weight',
    )!;
    const f32 = new Float32Array(new Uint8Array(w32.rawData!).slice().buffer);
    const f16 = new Uint16Array(new Uint8Array(w16.rawData!).slice().buffer);
    expect(f16.length).toBe(VIT_S16.embedDim * VIT_S16.embedDim);
    for (let i = 0; i < f16.length; i += 997) expect(f16[i]).toBe(floatToHalfBits(f32[i]));
  });

  it('leaves the fp32 default byte for byte as it was', () => {
    const props = onnx.ModelProto.decode(buildVit().bytes).metadataProps!.map((p) => p.key);
    expect(props).not.toContain('variant');
    expect(
      onnx.ModelProto.decode(buildVit({ variant: 'fp16' }).bytes).metadataProps!.map((p) => [p.key, p.value]),
    ).toContainEqual(['variant', 'fp16']);
  });
});

describe('embeddings of real patches, each build against fp32', () => {
  const variants: ModelVariant[] = ['fp32', 'uint8-fp32', 'fp16', 'uint8-fp16'];
  const embeddings = new Map<ModelVariant, Float32Array[]>();
  const loaded = new Map<ModelVariant, { variant: string; inputType: string; name: string }>();

  beforeAll(async () => {
    const patches = await realPatches(PATCH_GRID_SIDE);
    for (const variant of variants) {
      const modelPath = variantModelPath(REPO_ROOT, variant);
      // Built once per checkout (models/build is git-ignored); the builder's output is deterministic.
      if (!existsSync(modelPath)) await writeSyntheticModel(modelPath, { variant });
      const config = loadConfig({
        ...process.env,
        PATHEMBED_MODEL_PATH: modelPath,
        PATHEMBED_EXECUTION_PROVIDER: 'cpu',
        PATHEMBED_INTRA_OP_THREADS: '2',
        PATHEMBED_BATCH_SIZE: String(PATCH_GRID_SIDE * PATCH_GRID_SIDE),
      });
      const engine = await EmbeddingEngine.open(engineOptions(config), silent);
      try {
        embeddings.set(variant, await engine.embed(patches));
        loaded.set(variant, {
          variant: engine.variant,
          inputType: engine.inputType,
          name: engine.manifest.name,
        });
      } finally {
        await engine.close();
      }
    }
  });

  it('passes the contract check, which says which build is loaded', () => {
    expect(Object.fromEntries(loaded)).toEqual({
      fp32: { variant: 'fp32', inputType: 'float32', name: 'path-foundation-synthetic-vit-s16' },
      'uint8-fp32': {
        variant: 'uint8-fp32',
        inputType: 'uint8',
        name: 'path-foundation-synthetic-vit-s16-uint8-fp32',
      },
      fp16: { variant: 'fp16', inputType: 'float32', name: 'path-foundation-synthetic-vit-s16-fp16' },
      'uint8-fp16': {
        variant: 'uint8-fp16',
        inputType: 'uint8',
        name: 'path-foundation-synthetic-vit-s16-uint8-fp16',
      },
    });
    expect(path.basename(variantModelPath(REPO_ROOT, 'uint8-fp16'))).toBe(
      'path-foundation-synthetic-vit-s16-uint8-fp16.onnx',
    );
  });

  it('uint8 input scaled in the graph gives exactly the embeddings of float input scaled by the engine', () => {
    expect(agreement(embeddings.get('fp32')!, embeddings.get('uint8-fp32')!).maxAbsDiff).toBe(0);
    expect(agreement(embeddings.get('fp16')!, embeddings.get('uint8-fp16')!).maxAbsDiff).toBe(0);
  });

  it(`fp16 matches fp32 with cosine >= ${FP16_MIN_COSINE}`, () => {
    for (const variant of ['fp16', 'uint8-fp16'] as const) {
      const a = agreement(embeddings.get('fp32')!, embeddings.get(variant)!);
      expect(a.patches).toBe(PATCH_GRID_SIDE * PATCH_GRID_SIDE);
      expect(a.minCosine).toBeGreaterThanOrEqual(FP16_MIN_COSINE);
      expect(a.maxPairDistanceError).toBeLessThan(FP16_MAX_PAIR_DISTANCE_ERROR);
      // Not trivially equal: fp16 really rounds.
      expect(a.maxAbsDiff).toBeGreaterThan(0);
    }
  });
});
