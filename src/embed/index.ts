/**
 * The public API of the embedding layer: the engine, the model contract and manifest, provider
 * selection and the default (synthetic) model. Other folders import from here only.
 */
export { DEFAULT_MODEL_FILE, defaultModelPath, modelNotFound } from './default-model.js';
export { EmbeddingEngine } from './embedding-engine.js';
export type { EngineOptions, ExecutionProviderSetting } from './engine-options.js';
export {
  cudaProviderInstalled,
  type ExecutionProvider,
  executionProvidersFor,
  isProviderFailure,
  type OpenedSession,
  type OpenSessionOptions,
  openSession,
} from './execution-provider.js';
export {
  assertModelContract,
  CONTRACT_INPUT_SHAPE,
  CONTRACT_OUTPUT_SHAPE,
  CONTRACT_PREPROCESSING,
  contractDifferences,
  EMBEDDING_WIDTH,
  MODEL_INPUT_NAME,
  MODEL_OUTPUT_NAME,
  PATCH_BYTES,
  PATCH_CHANNELS,
  PATCH_SIZE_PX,
  PIXEL_SCALE,
} from './model-contract.js';
export {
  deriveManifest,
  loadManifest,
  type ModelManifest,
  manifestPathFor,
  readManifest,
  sha256OfFile,
  writeManifest,
} from './model-manifest.js';
export { WorkerEmbeddingEngine } from './worker-engine.js';
