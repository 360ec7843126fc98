/**
 * The Path Foundation model contract: one float32 input `inputs` of shape [N,224,224,3] (NHWC,
 * RGB, pixel/255, no mean/std) and a float32 output `output_0` of shape [N,384]. Any ONNX file
 * meeting it can be served; this module checks a loaded session against it and refuses with
 * MODEL_CONTRACT_MISMATCH, naming every difference, before a single patch is run.
 *
 * One variant of the input is accepted for GPUs: uint8 raw pixels, the /255 done inside the graph,
 * a quarter of the bytes to the device and no float conversion on the CPU. Which input a model
 * takes is what the check reports; the engine feeds it accordingly. Internal precision (fp16) does
 * not show in the inputs and outputs and is recorded in the manifest (MODEL_VARIANTS).
 */
import type { InferenceSession } from 'onnxruntime-node';
import { PathembedError } from '../errors.js';

export const PATCH_SIZE_PX = 224;
export const PATCH_CHANNELS = 3;
/** Bytes of one RGB uint8 interleaved patch, the unit `EmbeddingEngine.embed` takes. */
export const PATCH_BYTES = PATCH_SIZE_PX * PATCH_SIZE_PX * PATCH_CHANNELS;
export const EMBEDDING_WIDTH = 384;
/** Path Foundation scales 8-bit pixels to [0, 1] and applies no mean/std normalisation. */
export const PIXEL_SCALE = 255;

export const MODEL_INPUT_NAME = 'inputs';
export const MODEL_OUTPUT_NAME = 'output_0';
/** Name of the dynamic batch dimension in models this project writes; any symbolic name is accepted. */
export const BATCH_DIM = 'N';

export type Dim = number | string;
export const CONTRACT_INPUT_SHAPE: readonly Dim[] = [BATCH_DIM, PATCH_SIZE_PX, PATCH_SIZE_PX, PATCH_CHANNELS];
export const CONTRACT_OUTPUT_SHAPE: readonly Dim[] = [BATCH_DIM, EMBEDDING_WIDTH];
const CONTRACT_ELEMENT_TYPE = 'float32';
/** Element types of the input the engine can feed: float32 pixel/255, or uint8 pixels scaled in the graph. */
export const MODEL_INPUT_TYPES = ['float32', 'uint8'] as const;
export type ModelInputType = (typeof MODEL_INPUT_TYPES)[number];

/** The builds `pathembed model build --variant` writes: internal precision and input element type. */
export const MODEL_VARIANTS = {
  fp32: { precision: 'fp32', inputType: 'float32' },
  fp16: { precision: 'fp16', inputType: 'float32' },
  'uint8-fp32': { precision: 'fp32', inputType: 'uint8' },
  'uint8-fp16': { precision: 'fp16', inputType: 'uint8' },
} as const satisfies Record<string, { precision: 'fp32' | 'fp16'; inputType: ModelInputType }>;
export type ModelVariant = keyof typeof MODEL_VARIANTS;
export const DEFAULT_MODEL_VARIANT: ModelVariant = 'fp32';

export const CONTRACT_PREPROCESSING = {
  layout: 'NHWC',
  channels: 'RGB',
  scale: '1/255',
  mean: null,
  std: null,
} as const;

type ValueMetadata = InferenceSession.ValueMetadata;

export function formatShape(shape: readonly Dim[]): string {
  // ORT reports an unnamed dynamic dimension as an empty string.
  return `[${shape.map((d) => (d === '' ? '?' : String(d))).join(',')}]`;
}

function shapeMatches(actual: readonly Dim[], contract: readonly Dim[]): boolean {
  if (actual.length !== contract.length) return false;
  // The batch dimension must be dynamic (symbolic) so that batches of any size run; a model
  // exported with a fixed batch of 1 would fail on every batch but the last.
  return actual.every((d, i) => (i === 0 ? typeof d === 'string' : d === contract[i]));
}

function describeValue(
  kind: 'input' | 'output',
  value: ValueMetadata,
  contractShape: readonly Dim[],
  problems: string[],
): void {
  if (!value.isTensor) {
    problems.push(`${kind} '${value.name}' is not a tensor; the Path Foundation contract needs a tensor`);
    return;
  }
  const accepted: readonly string[] = kind === 'input' ? MODEL_INPUT_TYPES : [CONTRACT_ELEMENT_TYPE];
  if (!accepted.includes(value.type)) {
    const needs =
      kind === 'input'
        ? `${CONTRACT_ELEMENT_TYPE} (pixel/255), or uint8 (pixels, scaled inside the graph)`
        : CONTRACT_ELEMENT_TYPE;
    problems.push(
      `${kind} '${value.name}' has element type ${value.type}; the Path Foundation contract needs ${needs}`,
    );
  }
  if (!shapeMatches(value.shape, contractShape)) {
    problems.push(
      `${kind} '${value.name}' has shape ${formatShape(value.shape)}; the Path Foundation contract needs ${formatShape(contractShape)}`,
    );
  }
}

/** Every way the given input/output metadata departs from the contract; empty when it complies. */
export function contractDifferences(
  inputs: readonly ValueMetadata[],
  outputs: readonly ValueMetadata[],
): string[] {
  const problems: string[] = [];
  const names = (values: readonly ValueMetadata[]) => values.map((v) => `'${v.name}'`).join(', ');

  const input = inputs.find((v) => v.name === MODEL_INPUT_NAME);
  if (inputs.length !== 1) {
    problems.push(
      `the model has ${inputs.length} inputs (${names(inputs)}); the Path Foundation contract needs exactly one, '${MODEL_INPUT_NAME}'`,
    );
  } else if (!input) {
    problems.push(
      `the model's input is named '${inputs[0]!.name}'; the Path Foundation contract needs '${MODEL_INPUT_NAME}'`,
    );
  }
  // Check the shape of the one input even when misnamed: a user fixing the name wants to know
  // whether the shape is right too.
  const inputToCheck = input ?? (inputs.length === 1 ? inputs[0] : undefined);
  if (inputToCheck) describeValue('input', inputToCheck, CONTRACT_INPUT_SHAPE, problems);

  const output = outputs.find((v) => v.name === MODEL_OUTPUT_NAME);
  if (output) {
    describeValue('output', output, CONTRACT_OUTPUT_SHAPE, problems);
  } else {
    problems.push(
      `the model has no output '${MODEL_OUTPUT_NAME}' (its outputs: ${names(outputs)}); the Path Foundation contract needs '${MODEL_OUTPUT_NAME}'`,
    );
    if (outputs.length === 1) describeValue('output', outputs[0]!, CONTRACT_OUTPUT_SHAPE, problems);
  }
  return problems;
}

/**
 * Throws MODEL_CONTRACT_MISMATCH unless the session takes and returns what the contract says;
 * returns the element type of the input the model takes.
 */
export function assertModelContract(
  session: Pick<InferenceSession, 'inputMetadata' | 'outputMetadata'>,
  modelPath: string,
): ModelInputType {
  const problems = contractDifferences(session.inputMetadata, session.outputMetadata);
  if (problems.length === 0) {
    const input = session.inputMetadata[0];
    return input?.isTensor && input.type === 'uint8' ? 'uint8' : 'float32';
  }
  throw new PathembedError(
    'MODEL_CONTRACT_MISMATCH',
    `${modelPath} does not meet the Path Foundation model contract: ${problems.join('; ')}`,
    { modelPath, problems },
  );
}
