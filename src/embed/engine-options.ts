/**
 * What opening an embedding engine takes: the model file, where it runs and how it is batched.
 * Plain data, filled from the configuration by the process that starts the engine (the CLI or a
 * worker) and sent as is to an inference worker thread.
 */

/** `auto` tries CUDA and falls back to the CPU with one warning; the others are explicit. */
export type ExecutionProviderSetting = 'auto' | 'cpu' | 'cuda' | 'tensorrt';

/** The provider a session runs on (`auto` resolved). */
export type ExecutionProvider = Exclude<ExecutionProviderSetting, 'auto'>;

export interface EngineOptions {
  /** ONNX model file meeting the Path Foundation contract. */
  readonly modelPath: string;
  /** Where the model is built when missing (the synthetic stand-in), for MODEL_NOT_FOUND's advice. */
  readonly defaultModelPath: string;
  readonly executionProvider: ExecutionProviderSetting;
  /** GPU device id for cuda/tensorrt. */
  readonly deviceId: number;
  /** Most patches per ONNX Runtime run. */
  readonly batchSize: number;
  /** ONNX Runtime intra-op threads; 0 runs one per core (os.availableParallelism()). */
  readonly intraOpThreads: number;
}
