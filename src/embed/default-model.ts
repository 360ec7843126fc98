/**
 * Where the default model lives: the synthetic ViT-S/16 that `pathembed model build` writes
 * (models/build-vit.ts). The engine only loads model files; building one is the models/ tool's job,
 * so this module knows the path and the advice to give when nothing is there.
 */
import path from 'node:path';
import { PathembedError } from '../errors.js';

/** File name of the synthetic model under models/build/. */
export const DEFAULT_MODEL_FILE = 'path-foundation-synthetic-vit-s16.onnx';

export function defaultModelPath(projectRoot: string): string {
  return path.join(projectRoot, 'models', 'build', DEFAULT_MODEL_FILE);
}

/** MODEL_NOT_FOUND, saying how to get a model at that path. */
export function modelNotFound(modelPath: string, defaultPath: string): PathembedError {
  const remedy =
    path.resolve(modelPath) === path.resolve(defaultPath)
      ? 'run `pathembed model build` to build the synthetic model'
      : `run \`pathembed model build --output ${modelPath}\` for the synthetic model, convert the real Path Foundation there (models/README.md), or point PATHEMBED_MODEL_PATH at an existing model`;
  return new PathembedError('MODEL_NOT_FOUND', `No ONNX model at ${modelPath}: ${remedy}.`, { modelPath });
}
