/**
 * The default model: the synthetic ViT-S/16 at PATHEMBED_MODEL_PATH's default location, built on
 * first use by the demo and the tests so that nothing needs downloading. A model at any other path
 * is the user's (a converted real Path Foundation, or a synthetic one they placed) and is never
 * written over.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { defaultModelPath, writeSyntheticModel } from '../../models/build-vit.js';
import type { Config } from '../config.js';
import { PathembedError } from '../errors.js';
import type { Logger } from '../log.js';

export { defaultModelPath };

export function isDefaultModelPath(config: Config, modelPath: string): boolean {
  return path.resolve(modelPath) === defaultModelPath(config.projectRoot);
}

/** MODEL_NOT_FOUND, saying how to get a model at that path. */
export function modelNotFound(config: Config, modelPath: string): PathembedError {
  const remedy = isDefaultModelPath(config, modelPath)
    ? 'run `pathembed model build` to build the synthetic model'
    : `run \`pathembed model build --output ${modelPath}\` for the synthetic model, convert the real Path Foundation there (models/README.md), or point PATHEMBED_MODEL_PATH at an existing model`;
  return new PathembedError('MODEL_NOT_FOUND', `No ONNX model at ${modelPath}: ${remedy}.`, { modelPath });
}

/**
 * Returns PATHEMBED_MODEL_PATH, building the synthetic model there first when it is the default
 * path and nothing is there yet. Processes racing here each build and rename an identical file
 * into place, so all of them end up loading the same bytes. Throws MODEL_NOT_FOUND for a missing
 * model at a non-default path.
 */
export async function ensureDefaultModel(config: Config, logger?: Logger): Promise<string> {
  const modelPath = config.PATHEMBED_MODEL_PATH;
  if (existsSync(modelPath)) return modelPath;
  if (!isDefaultModelPath(config, modelPath)) throw modelNotFound(config, modelPath);
  logger?.info({ modelPath }, 'building the synthetic Path Foundation stand-in (first use)');
  const manifest = await writeSyntheticModel(modelPath);
  logger?.info({ modelPath, sha256: manifest.sha256 }, 'synthetic model built');
  return modelPath;
}
