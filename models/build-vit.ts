/**
 * Builds the synthetic stand-in for Google Path Foundation: a ViT-S/16 with the real model's
 * contract (float32 [N,224,224,3] NHWC in `inputs`, float32 [N,384] out of `output_0`) and its
 * cost (~22 M parameters, ~4.6 G multiply-accumulates per patch), but weights drawn from a fixed
 * seed. Its embeddings carry NO pathology meaning; it exists so that the whole service runs, is
 * tested and is benchmarked at the real model's cost where the real weights cannot be had.
 *
 * The same options always give the same bytes (the weight PRNG is seeded, the encoder writes no
 * timestamps), so the model's sha256 identifies it.
 *
 * Run directly: `npx tsx models/build-vit.ts [--output PATH]`; the CLI's `pathembed model build`
 * does the same.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.js';
import { writeFileAtomic } from '../src/embed/atomic-write.js';
import { defaultModelPath } from '../src/embed/default-model.js';
import {
  BATCH_DIM,
  CONTRACT_PREPROCESSING,
  DEFAULT_MODEL_VARIANT,
  type Dim,
  MODEL_INPUT_NAME,
  MODEL_OUTPUT_NAME,
  MODEL_VARIANTS,
  type ModelVariant,
  PIXEL_SCALE,
} from '../src/embed/model-contract.js';
import { type ModelManifest, writeManifest } from '../src/embed/model-manifest.js';
import { floatAttr, GraphBuilder, intAttr, intsAttr, onnxDataType } from './onnx-graph.js';
import { SeededRandom } from './seeded-random.js';

export const SYNTHETIC_MODEL_NAME = 'path-foundation-synthetic-vit-s16';
/** Bump whenever the graph or the weights change: the version names the bytes. */
export const SYNTHETIC_MODEL_VERSION = '1.0.0';
export const DEFAULT_SEED = 20_240_917;
export const SYNTHETIC_NOTE =
  'Synthetic weights (seeded PRNG): a ViT-S/16 with the Path Foundation contract and cost. Its embeddings carry NO pathology meaning.';

/** ViT initialisation (timm, DeiT): weights truncated normal std 0.02, biases 0, LayerNorm 1/0. */
const INIT_STD = 0.02;
/** Path Foundation (and the JAX ViTs it derives from) use LayerNorm epsilon 1e-6. */
const LAYER_NORM_EPSILON = 1e-6;
const CLASS_TOKEN_COUNT = 1;
const CLASS_TOKEN_INDEX = 0;

export interface VitArchitecture {
  imageSizePx: number;
  patchSizePx: number;
  channels: number;
  embedDim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
}

/** ViT-S/16 at 224 px, the Path Foundation backbone. */
export const VIT_S16: VitArchitecture = {
  imageSizePx: 224,
  patchSizePx: 16,
  channels: 3,
  embedDim: 384,
  depth: 12,
  heads: 6,
  mlpRatio: 4,
};

/** Manifest and file name of a variant: the fp32 default keeps the plain name. */
export function variantModelName(variant: ModelVariant): string {
  return variant === DEFAULT_MODEL_VARIANT ? SYNTHETIC_MODEL_NAME : `${SYNTHETIC_MODEL_NAME}-${variant}`;
}

export interface VitBuildOptions {
  /** Overrides of VIT_S16; smaller architectures serve tests (e.g. a wrong output width). Default: none. */
  architecture?: Partial<VitArchitecture>;
  /** Seed of the weight PRNG. Default: DEFAULT_SEED. */
  seed?: number;
  /** 'NHWC' meets the contract; 'NCHW' builds a model that deliberately does not. Default: 'NHWC'. */
  inputLayout?: 'NHWC' | 'NCHW';
  /**
   * Precision and input type (MODEL_VARIANTS). fp16 keeps weights and the attention and MLP
   * branches in float16 but LayerNormalization, Softmax (their sums of squares and exponentials
   * lose most in half precision), the residual stream and the output in float32. uint8 takes raw pixels and divides by 255 in the graph,
   * in float32, exactly as the engine does on the CPU for the float input. Default: 'fp32'.
   */
  variant?: ModelVariant;
}

export interface BuiltVit {
  bytes: Uint8Array;
  variant: ModelVariant;
  architecture: VitArchitecture;
  /** Learned float values (weights, biases, tokens, position embeddings, LayerNorm). */
  parameters: number;
  /** Multiply-accumulates for one image: patch Conv, the linear MatMuls and attention's two MatMuls. */
  macsPerPatch: number;
  inputShape: Dim[];
  outputShape: Dim[];
  opCounts: Record<string, number>;
}

/** Grid side and token count (patches plus the class token) of an architecture. */
function tokenGeometry(arch: VitArchitecture): { gridSide: number; patchTokens: number; tokens: number } {
  const gridSide = arch.imageSizePx / arch.patchSizePx;
  if (!Number.isInteger(gridSide)) {
    throw new Error(`image size ${arch.imageSizePx} is not a multiple of patch size ${arch.patchSizePx}`);
  }
  const patchTokens = gridSide * gridSide;
  return { gridSide, patchTokens, tokens: patchTokens + CLASS_TOKEN_COUNT };
}

/** Multiply-accumulates of one image through the architecture, counted analytically. */
export function vitMacsPerPatch(arch: VitArchitecture): number {
  const { patchTokens, tokens } = tokenGeometry(arch);
  const d = arch.embedDim;
  const hidden = d * arch.mlpRatio;
  const patchEmbed = patchTokens * d * arch.channels * arch.patchSizePx * arch.patchSizePx;
  const qkvAndProjection = 4 * tokens * d * d;
  // Q.K^T and attention.V: each heads x T x T x headDim = T x T x D.
  const attention = 2 * tokens * tokens * d;
  const mlp = 2 * tokens * d * hidden;
  return patchEmbed + arch.depth * (qkvAndProjection + attention + mlp);
}

class VitGraph {
  readonly g = new GraphBuilder();
  readonly #rng: SeededRandom;
  readonly #arch: VitArchitecture;
  readonly #half: string;
  readonly #one: string;
  readonly #sqrt2: string;
  /** Compute in float16 (LayerNorm and Softmax excepted). */
  readonly #fp16: boolean;

  constructor(arch: VitArchitecture, seed: number, fp16 = false) {
    this.#arch = arch;
    this.#rng = new SeededRandom(seed);
    this.#fp16 = fp16;
    this.#half = this.#constant('const.half', 0.5);
    this.#one = this.#constant('const.one', 1);
    this.#sqrt2 = this.#constant('const.sqrt2', Math.SQRT2);
  }

  #constant(name: string, value: number): string {
    return this.#fp16 ? this.g.halfConstant(name, value) : this.g.floatConstant(name, value);
  }

  /** Weights in the compute precision; fp16 rounds the same draws, so variants share their weights. */
  #computeInitializer(name: string, dims: number[], data: Float32Array): string {
    return this.#fp16 ? this.g.halfInitializer(name, dims, data) : this.g.floatInitializer(name, dims, data);
  }

  #weight(name: string, dims: number[]): string {
    const size = dims.reduce((a, b) => a * b, 1);
    return this.#computeInitializer(
      name,
      dims,
      this.#rng.fillTruncatedNormal(new Float32Array(size), INIT_STD),
    );
  }

  #filled(name: string, size: number, value: number): string {
    return this.#computeInitializer(name, [size], new Float32Array(size).fill(value));
  }

  cast(x: string, to: 'float32' | 'float16'): string {
    return this.g.node('Cast', [x], { attributes: [intAttr('to', onnxDataType(to))] });
  }

  /** x in float32 for an op kept in float32 (identity in an fp32 graph). */
  #toFloat32(x: string): string {
    return this.#fp16 ? this.cast(x, 'float32') : x;
  }

  /** A float32 result back to the compute precision (identity in an fp32 graph). */
  toCompute(x: string): string {
    return this.#fp16 ? this.cast(x, 'float16') : x;
  }

  /** x @ W + b with W [inDim, outDim]. */
  linear(name: string, x: string, inDim: number, outDim: number): string {
    return this.g.scoped(name, () => {
      const w = this.#weight('weight', [inDim, outDim]);
      const b = this.#filled('bias', outDim, 0);
      return this.g.node('Add', [this.g.node('MatMul', [x, w]), b]);
    });
  }

  /** LayerNormalization of the (float32) residual stream, in float32 whatever the compute precision. */
  layerNorm(name: string, x: string): string {
    return this.g.scoped(name, () => {
      const d = this.#arch.embedDim;
      const gamma = this.g.floatInitializer('weight', [d], new Float32Array(d).fill(1));
      const beta = this.g.floatInitializer('bias', [d], new Float32Array(d).fill(0));
      return this.g.node('LayerNormalization', [x, gamma, beta], {
        attributes: [intAttr('axis', -1), floatAttr('epsilon', LAYER_NORM_EPSILON)],
      });
    });
  }

  /** Exact GELU, x * 0.5 * (1 + erf(x / sqrt 2)); opset 17 has no Gelu op. Written in the
   * Div-Erf-Add-Mul-Mul order that ONNX Runtime's GeluFusion recognises and fuses. */
  gelu(x: string): string {
    const erf = this.g.node('Erf', [this.g.node('Div', [x, this.#sqrt2])]);
    return this.g.node('Mul', [this.g.node('Mul', [x, this.g.node('Add', [erf, this.#one])]), this.#half]);
  }

  /** [N,T,D] -> [N,heads,T,headDim] (or [N,heads,headDim,T] for keys, ready for Q.K^T). */
  splitHeads(x: string, perm: readonly number[]): string {
    const { heads, embedDim } = this.#arch;
    const shape = this.g.int64Constant('heads_shape', [0, 0, heads, embedDim / heads]);
    return this.g.node('Transpose', [this.g.node('Reshape', [x, shape])], {
      attributes: [intsAttr('perm', perm)],
    });
  }

  attention(x: string): string {
    const { heads, embedDim } = this.#arch;
    const headDim = embedDim / heads;
    return this.g.scoped('attn', () => {
      const q = this.splitHeads(this.linear('q', x, embedDim, embedDim), [0, 2, 1, 3]);
      const kT = this.splitHeads(this.linear('k', x, embedDim, embedDim), [0, 2, 3, 1]);
      const v = this.splitHeads(this.linear('v', x, embedDim, embedDim), [0, 2, 1, 3]);
      const scale = this.#constant('scale', 1 / Math.sqrt(headDim));
      const scores = this.g.node('Mul', [this.g.node('MatMul', [q, kT]), scale]);
      const weights = this.toCompute(
        this.g.node('Softmax', [this.#toFloat32(scores)], { attributes: [intAttr('axis', -1)] }),
      );
      const context = this.g.node('Transpose', [this.g.node('MatMul', [weights, v])], {
        attributes: [intsAttr('perm', [0, 2, 1, 3])],
      });
      const merged = this.g.node('Reshape', [context, this.g.int64Constant('merge_shape', [0, 0, embedDim])]);
      return this.linear('proj', merged, embedDim, embedDim);
    });
  }

  mlp(x: string): string {
    const { embedDim, mlpRatio } = this.#arch;
    const hidden = embedDim * mlpRatio;
    return this.g.scoped('mlp', () =>
      this.linear('fc2', this.gelu(this.linear('fc1', x, embedDim, hidden)), hidden, embedDim),
    );
  }

  /**
   * Pre-norm block: x + attn(LN(x)), then x + mlp(LN(x)). The residual stream x stays float32 in
   * every build: the patch-specific part of it is small beside what all patches share, and rounding
   * the sum to fp16 twelve times over lost up to a third of the distance between neighbouring
   * patches (measured; models/README.md). The branches compute in the compute precision.
   */
  block(index: number, x: string): string {
    return this.g.scoped(`blocks.${index}`, () => {
      const attention = this.#toFloat32(this.attention(this.toCompute(this.layerNorm('norm1', x))));
      const afterAttention = this.g.node('Add', [x, attention]);
      const mlp = this.#toFloat32(this.mlp(this.toCompute(this.layerNorm('norm2', afterAttention))));
      return this.g.node('Add', [afterAttention, mlp]);
    });
  }

  /** Patch embedding, class token and position embeddings: image -> [N,T,D]. */
  embed(image: string, nchw: string): string {
    const { embedDim, channels, patchSizePx } = this.#arch;
    const { tokens } = tokenGeometry(this.#arch);
    return this.g.scoped('embed', () => {
      const convWeight = this.#weight('patch_embed.weight', [embedDim, channels, patchSizePx, patchSizePx]);
      const convBias = this.#filled('patch_embed.bias', embedDim, 0);
      const grid = this.g.node('Conv', [nchw, convWeight, convBias], {
        attributes: [
          intsAttr('kernel_shape', [patchSizePx, patchSizePx]),
          intsAttr('strides', [patchSizePx, patchSizePx]),
        ],
      });
      const flat = this.g.node('Reshape', [grid, this.g.int64Constant('flatten_shape', [0, embedDim, -1])]);
      const patchTokens = this.g.node('Transpose', [flat], { attributes: [intsAttr('perm', [0, 2, 1])] });

      // The class token is one learned vector; Expand copies it to the dynamic batch size.
      const classToken = this.#weight('cls_token', [1, CLASS_TOKEN_COUNT, embedDim]);
      const batch = this.g.node('Shape', [image], { attributes: [intAttr('start', 0), intAttr('end', 1)] });
      const classShape = this.g.node(
        'Concat',
        [batch, this.g.int64Constant('cls_shape_tail', [CLASS_TOKEN_COUNT, embedDim])],
        {
          attributes: [intAttr('axis', 0)],
        },
      );
      const classTokens = this.g.node('Expand', [classToken, classShape]);
      const sequence = this.g.node('Concat', [classTokens, patchTokens], {
        attributes: [intAttr('axis', 1)],
      });
      const positions = this.#weight('pos_embed', [1, tokens, embedDim]);
      return this.g.node('Add', [sequence, positions]);
    });
  }

  build(inputLayout: 'NHWC' | 'NCHW', uint8Input = false): string {
    // Transposed before any conversion: moving uint8 is a quarter of the bytes.
    let nchw =
      inputLayout === 'NHWC'
        ? this.g.node('Transpose', [MODEL_INPUT_NAME], { attributes: [intsAttr('perm', [0, 3, 1, 2])] })
        : MODEL_INPUT_NAME;
    if (uint8Input) {
      // Divided in float32, as the engine divides for a float input, before any rounding to fp16.
      const scale = this.g.floatConstant('const.pixel_scale', PIXEL_SCALE);
      nchw = this.g.node('Div', [this.cast(nchw, 'float32'), scale]);
    }
    // Tokens enter the float32 residual stream once embedded; the embedding is float32 too.
    let x = this.#toFloat32(this.embed(MODEL_INPUT_NAME, this.toCompute(nchw)));
    for (let i = 0; i < this.#arch.depth; i++) x = this.block(i, x);
    const normed = this.layerNorm('norm', x);
    const index = this.g.int64Constant('cls_index', [CLASS_TOKEN_INDEX], []);
    return this.g.node('Gather', [normed, index], {
      attributes: [intAttr('axis', 1)],
      output: MODEL_OUTPUT_NAME,
    });
  }
}

/** Builds the model in memory. */
export function buildVit(options: VitBuildOptions = {}): BuiltVit {
  const architecture = { ...VIT_S16, ...options.architecture };
  if (architecture.embedDim % architecture.heads !== 0) {
    throw new Error(`embedDim ${architecture.embedDim} is not divisible by ${architecture.heads} heads`);
  }
  const seed = options.seed ?? DEFAULT_SEED;
  const inputLayout = options.inputLayout ?? 'NHWC';
  const variant = options.variant ?? DEFAULT_MODEL_VARIANT;
  const { precision, inputType } = MODEL_VARIANTS[variant];
  const graph = new VitGraph(architecture, seed, precision === 'fp16');
  graph.build(inputLayout, inputType === 'uint8');

  const { imageSizePx: s, channels: c, embedDim } = architecture;
  const inputShape: Dim[] = inputLayout === 'NHWC' ? [BATCH_DIM, s, s, c] : [BATCH_DIM, c, s, s];
  const outputShape: Dim[] = [BATCH_DIM, embedDim];
  const macsPerPatch = vitMacsPerPatch(architecture);
  const bytes = graph.g.encode(
    'vit',
    [{ name: MODEL_INPUT_NAME, type: inputType, shape: inputShape }],
    [{ name: MODEL_OUTPUT_NAME, type: 'float32', shape: outputShape }],
    {
      producerVersion: SYNTHETIC_MODEL_VERSION,
      docString: SYNTHETIC_NOTE,
      properties: [
        ['name', variantModelName(variant)],
        ['version', SYNTHETIC_MODEL_VERSION],
        ['synthetic', 'true'],
        ['note', SYNTHETIC_NOTE],
        ['seed', String(seed)],
        ['architecture', JSON.stringify(architecture)],
        ['input_layout', inputLayout],
        ['preprocessing', JSON.stringify(CONTRACT_PREPROCESSING)],
        // The fp32 default's bytes (and so its sha256) predate variants and stay as they were.
        ...(variant === DEFAULT_MODEL_VARIANT ? [] : ([['variant', variant]] as const)),
      ],
    },
  );
  return {
    bytes,
    variant,
    architecture,
    parameters: graph.g.parameterCount,
    macsPerPatch,
    inputShape,
    outputShape,
    opCounts: Object.fromEntries(graph.g.opCounts),
  };
}

/**
 * Builds the synthetic model and writes it with its manifest (`<output>.manifest.json`). Both are
 * written to temporary files and renamed into place, manifest first, so a concurrent reader never
 * sees a partial model nor a model without its manifest. Returns the manifest.
 */
export async function writeSyntheticModel(
  outputPath: string,
  options: VitBuildOptions = {},
): Promise<ModelManifest> {
  const built = buildVit(options);
  const manifest: ModelManifest = {
    name: variantModelName(built.variant),
    version: SYNTHETIC_MODEL_VERSION,
    sha256: createHash('sha256').update(built.bytes).digest('hex'),
    file: path.basename(outputPath),
    inputName: MODEL_INPUT_NAME,
    inputShape: built.inputShape,
    outputName: MODEL_OUTPUT_NAME,
    outputShape: built.outputShape,
    preprocessing: { ...CONTRACT_PREPROCESSING },
    synthetic: true,
    note: SYNTHETIC_NOTE,
    parameters: built.parameters,
    macsPerPatch: built.macsPerPatch,
    variant: built.variant,
  };
  await writeManifest(outputPath, manifest);
  await writeFileAtomic(outputPath, built.bytes);
  return manifest;
}

/** Where `model build --variant V` writes by default: beside the default model, the variant in the name. */
export function variantModelPath(projectRoot: string, variant: ModelVariant): string {
  const base = defaultModelPath(projectRoot);
  if (variant === DEFAULT_MODEL_VARIANT) return base;
  return path.join(path.dirname(base), `${variantModelName(variant)}.onnx`);
}

/** Parses a --variant value, listing the choices when it is none of them. */
export function parseVariant(value: string | undefined): ModelVariant {
  if (value === undefined) return DEFAULT_MODEL_VARIANT;
  if (value in MODEL_VARIANTS) return value as ModelVariant;
  throw new Error(
    `unknown model variant '${value}'; choose one of ${Object.keys(MODEL_VARIANTS).join(', ')}`,
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { output: { type: 'string' }, variant: { type: 'string' } } });
  const variant = parseVariant(values.variant);
  const output = path.resolve(values.output ?? variantModelPath(loadConfig().projectRoot, variant));
  const manifest = await writeSyntheticModel(output, { variant });
  process.stdout.write(`${JSON.stringify({ path: output, manifest }, null, 2)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  await main();
}
