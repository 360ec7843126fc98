/**
 * The model manifest: the JSON beside a model file (`<model>.manifest.json`) saying what the
 * model is (name, version, sha256, whether its weights are synthetic) and the contract it meets.
 * Results quote it so that every embedding can be traced to the exact model bytes. A model with no
 * manifest (a user's converted real Path Foundation) gets one derived from the file itself.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { PathembedError } from '../errors.js';
import type { Logger } from '../log.js';
import { writeFileAtomic } from './atomic-write.js';
import {
  CONTRACT_INPUT_SHAPE,
  CONTRACT_OUTPUT_SHAPE,
  CONTRACT_PREPROCESSING,
  MODEL_INPUT_NAME,
  MODEL_OUTPUT_NAME,
  MODEL_VARIANTS,
  type ModelVariant,
} from './model-contract.js';

const MANIFEST_SUFFIX = '.manifest.json';
const UNKNOWN_VERSION = 'unknown';
const JSON_INDENT = 2;

const dim = z.union([z.number().int().nonnegative(), z.string()]);

const manifestSchema = z.object({
  name: z.string().min(1),
  version: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  file: z.string().min(1),
  inputName: z.string().min(1),
  inputShape: z.array(dim),
  outputName: z.string().min(1),
  outputShape: z.array(dim),
  preprocessing: z.object({
    layout: z.literal('NHWC'),
    channels: z.literal('RGB'),
    scale: z.literal('1/255'),
    mean: z.null(),
    std: z.null(),
  }),
  synthetic: z.boolean(),
  note: z.string(),
  /** Learned float values, when known (the builder counts them). */
  parameters: z.number().int().positive().optional(),
  /** Multiply-accumulates of one 224x224 patch, when known. */
  macsPerPatch: z.number().int().positive().optional(),
  /** Which build (MODEL_VARIANTS): precision inside and input element type; absent means fp32 float input. */
  variant: z.enum(Object.keys(MODEL_VARIANTS) as [ModelVariant, ...ModelVariant[]]).optional(),
});

export type ModelManifest = z.infer<typeof manifestSchema>;

export function manifestPathFor(modelPath: string): string {
  return `${modelPath}${MANIFEST_SUFFIX}`;
}

/** sha256 (hex) of a file, streamed: real models are hundreds of megabytes. */
export async function sha256OfFile(filePath: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(filePath)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The manifest fields every model meeting the contract shares. */
export function contractFields(): Pick<
  ModelManifest,
  'inputName' | 'inputShape' | 'outputName' | 'outputShape' | 'preprocessing'
> {
  return {
    inputName: MODEL_INPUT_NAME,
    inputShape: [...CONTRACT_INPUT_SHAPE],
    outputName: MODEL_OUTPUT_NAME,
    outputShape: [...CONTRACT_OUTPUT_SHAPE],
    preprocessing: { ...CONTRACT_PREPROCESSING },
  };
}

/** The manifest of a model that came without one: all we know is its file and its hash. */
export function deriveManifest(modelPath: string, sha256: string): ModelManifest {
  const file = path.basename(modelPath);
  return {
    name: file.replace(/\.onnx$/i, ''),
    version: UNKNOWN_VERSION,
    sha256,
    file,
    ...contractFields(),
    synthetic: false,
    note: 'Derived from the model file (no manifest was found beside it): name from the file name, sha256 of its bytes. The contract was checked when the model was loaded.',
  };
}

/** Reads `<model>.manifest.json`; undefined when absent. Throws CONFIG_INVALID when malformed. */
export async function readManifest(modelPath: string): Promise<ModelManifest | undefined> {
  const manifestPath = manifestPathFor(modelPath);
  let text: string;
  try {
    text = await readFile(manifestPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new PathembedError(
      'CONFIG_INVALID',
      `${manifestPath} is not valid JSON: ${(err as Error).message}`,
      {
        manifestPath,
      },
    );
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new PathembedError(
      'CONFIG_INVALID',
      `${manifestPath} is not a model manifest: ${issues.join('; ')}`,
      {
        manifestPath,
        issues,
      },
    );
  }
  return parsed.data;
}

export async function writeManifest(modelPath: string, manifest: ModelManifest): Promise<void> {
  await writeFileAtomic(manifestPathFor(modelPath), `${JSON.stringify(manifest, null, JSON_INDENT)}\n`);
}

/**
 * The manifest of the model at `modelPath`, its sha256 checked against the file. A missing manifest,
 * or one describing other bytes (the file was replaced), gives a derived one, which is saved beside
 * the model when the folder is writable so later loads find it.
 */
export async function loadManifest(modelPath: string, logger?: Logger): Promise<ModelManifest> {
  const [stored, sha256] = await Promise.all([readManifest(modelPath), sha256OfFile(modelPath)]);
  if (stored && stored.sha256 === sha256) return stored;
  if (stored) {
    logger?.warn(
      { modelPath, manifestSha256: stored.sha256, fileSha256: sha256 },
      'the model manifest describes other bytes than the model file; deriving a new manifest from the file',
    );
  }
  const derived = deriveManifest(modelPath, sha256);
  try {
    await writeManifest(modelPath, derived);
  } catch (err) {
    // A read-only model folder (a mounted volume) is normal in deployment; the derived manifest
    // still serves this process.
    logger?.debug({ modelPath, err: (err as Error).message }, 'could not save the derived model manifest');
  }
  return derived;
}
