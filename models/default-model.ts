/**
 * Makes sure the default model exists: the synthetic ViT-S/16, built on first use by the demo, the
 * workers and the tests so that nothing needs downloading. A model at any other path is the user's
 * (a converted real Path Foundation, or a synthetic one they placed) and is never written over.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { modelNotFound } from '../src/embed/default-model.js';
import type { EngineOptions } from '../src/embed/engine-options.js';
import type { Logger } from '../src/log.js';
import { writeSyntheticModel } from './build-vit.js';

/**
 * Returns `modelPath`, building the synthetic model there first when it is the default path and
 * nothing is there yet. Processes racing here each build and rename an identical file into place,
 * so all of them load the same bytes. Throws MODEL_NOT_FOUND for a missing model elsewhere.
 */
export async function ensureDefaultModel(
  options: Pick<EngineOptions, 'modelPath' | 'defaultModelPath'>,
  logger?: Logger,
): Promise<string> {
  const { modelPath, defaultModelPath } = options;
  if (existsSync(modelPath)) return modelPath;
  if (path.resolve(modelPath) !== path.resolve(defaultModelPath))
    throw modelNotFound(modelPath, defaultModelPath);
  logger?.info({ modelPath }, 'building the synthetic Path Foundation stand-in (first use)');
  const manifest = await writeSyntheticModel(modelPath);
  logger?.info({ modelPath, sha256: manifest.sha256 }, 'synthetic model built');
  return modelPath;
}
