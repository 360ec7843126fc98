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
export { type GpuProbe, installHint, parseLdd, probeGpu } from './gpu-probe.js';
export {
  checkProviderLibraries,
  GPU_PROVIDER_LIBRARIES,
  GPU_PROVIDER_PACKAGE,
  installedOnnxruntimeVersion,
  type LibraryCheck,
  ortNativeFolder,
  type ProviderLibrary,
  placeProviderLibraries,
  verifyProviderLibraries,
} from './gpu-providers.js';
export {
  assertModelContract,
  CONTRACT_INPUT_SHAPE,
  CONTRACT_OUTPUT_SHAPE,
  CONTRACT_PREPROCESSING,
  contractDifferences,
  DEFAULT_MODEL_VARIANT,
  EMBEDDING_WIDTH,
  MODEL_INPUT_NAME,
  MODEL_INPUT_TYPES,
  MODEL_OUTPUT_NAME,
  MODEL_VARIANTS,
  type ModelInputType,
  type ModelVariant,
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
