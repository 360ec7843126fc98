/**
 * Choosing where inference runs (PATHEMBED_EXECUTION_PROVIDER: auto, cpu, cuda, tensorrt) and
 * opening the ONNX Runtime session there. The npm build of onnxruntime-node is CPU-only unless its
 * CUDA provider libraries were installed (deploy/gpu-install.md); asking it for CUDA without them
 * throws. `auto` turns that into one warning and a CPU session; an explicit `cuda` or `tensorrt`
 * is a deployment error and fails with EXECUTION_PROVIDER_UNAVAILABLE saying what to install.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { InferenceSession } from 'onnxruntime-node';
import { PathembedError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ExecutionProvider, ExecutionProviderSetting } from './engine-options.js';
import { probeGpu } from './gpu-probe.js';
import { ortNativeFolder } from './gpu-providers.js';

export type { ExecutionProvider, ExecutionProviderSetting };

const GPU_INSTALL_HINT =
  'install the CUDA provider from the npm registry (`npm run gpu:install`, CUDA 13 and cuDNN 9) or the NuGet build of onnxruntime-node (ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci, CUDA 12 and cuDNN 9); `pathembed doctor` lists what is missing; see deploy/gpu-install.md';
const TENSORRT_INSTALL_HINT = `${GPU_INSTALL_HINT}, plus the TensorRT runtime libraries (libnvinfer) on the library path`;

/** Library files the CUDA build adds next to the ORT binding; their absence means a CPU-only install. */
const CUDA_PROVIDER_LIBRARY: Partial<Record<NodeJS.Platform, string>> = {
  linux: 'libonnxruntime_providers_cuda.so',
  win32: 'onnxruntime_providers_cuda.dll',
};

// ORT reports a provider it cannot load from SessionOptionsAppendExecutionProvider_* or with
// "Failed to load ... library"; anything else is a problem of the model itself.
const PROVIDER_FAILURE =
  /ExecutionProvider|shared library|Failed to load library|providers_(cuda|tensorrt|shared)/i;

/** Folder holding onnxruntime-node's native binding (and, in a CUDA build, its provider libraries). */
export function ortBinaryFolder(): string {
  return ortNativeFolder();
}

/** Whether the CUDA provider libraries of onnxruntime-node are installed (not whether a GPU works). */
export function cudaProviderInstalled(): boolean {
  const library = CUDA_PROVIDER_LIBRARY[process.platform];
  return library !== undefined && existsSync(path.join(ortBinaryFolder(), library));
}

/** ORT's executionProviders list for a provider; CPU is ORT's implicit last resort for unsupported ops. */
export function executionProvidersFor(
  provider: ExecutionProvider,
  deviceId: number,
): InferenceSession.ExecutionProviderConfig[] {
  switch (provider) {
    case 'cpu':
      return ['cpu'];
    case 'cuda':
      return [{ name: 'cuda', deviceId }];
    case 'tensorrt':
      // Nodes TensorRT does not take fall to CUDA rather than to the CPU.
      return [
        { name: 'tensorrt', deviceId },
        { name: 'cuda', deviceId },
      ];
  }
}

export interface OpenSessionOptions {
  /** PATHEMBED_EXECUTION_PROVIDER. */
  setting: ExecutionProviderSetting;
  /** PATHEMBED_DEVICE_ID: GPU for cuda/tensorrt. */
  deviceId: number;
  /** Everything but executionProviders (threads, optimisation level). */
  sessionOptions: Omit<InferenceSession.SessionOptions, 'executionProviders'>;
}

export interface OpenedSession {
  session: InferenceSession;
  /** The provider the session was created for: for `auto`, what it resolved to. */
  provider: ExecutionProvider;
}

/** Whether an ORT error is about loading a provider (as opposed to the model). */
export function isProviderFailure(err: unknown): boolean {
  return err instanceof Error && PROVIDER_FAILURE.test(err.message);
}

function unavailable(provider: ExecutionProvider, reason: string, cause?: unknown): PathembedError {
  const hint = provider === 'tensorrt' ? TENSORRT_INSTALL_HINT : GPU_INSTALL_HINT;
  return new PathembedError(
    'EXECUTION_PROVIDER_UNAVAILABLE',
    `PATHEMBED_EXECUTION_PROVIDER=${provider} but ONNX Runtime cannot use it: ${reason}. To run on the GPU, ${hint}; or set PATHEMBED_EXECUTION_PROVIDER=auto or cpu.`,
    { provider, reason },
    { cause },
  );
}

function unloadable(modelPath: string, err: unknown): PathembedError {
  const message = err instanceof Error ? err.message : String(err);
  return new PathembedError(
    'MODEL_CONTRACT_MISMATCH',
    `${modelPath} cannot be loaded as an ONNX model: ${message}`,
    { modelPath },
    { cause: err },
  );
}

async function create(
  modelPath: string,
  provider: ExecutionProvider,
  options: OpenSessionOptions,
): Promise<InferenceSession> {
  return InferenceSession.create(modelPath, {
    ...options.sessionOptions,
    executionProviders: executionProvidersFor(provider, options.deviceId),
  });
}

async function openOnGpu(
  modelPath: string,
  provider: Exclude<ExecutionProvider, 'cpu'>,
  options: OpenSessionOptions,
): Promise<InferenceSession> {
  // Checked first so that a CPU-only install fails with a plain sentence rather than ORT's
  // native "Failed to load library" lines on stderr.
  if (!cudaProviderInstalled()) {
    throw unavailable(
      provider,
      `the installed onnxruntime-node has no CUDA provider libraries (in ${ortBinaryFolder()})`,
    );
  }
  try {
    return await create(modelPath, provider, options);
  } catch (err) {
    if (isProviderFailure(err)) {
      // ORT says only "Failed to load shared library"; the probe names the library the loader missed.
      const probe = await probeGpu(provider).catch(() => undefined);
      const reason = probe?.firstProblem ?? (err as Error).message;
      throw unavailable(provider, reason, err);
    }
    throw unloadable(modelPath, err);
  }
}

/** Opens `modelPath` on the configured provider; see the module comment for the fallback rule. */
export async function openSession(
  modelPath: string,
  options: OpenSessionOptions,
  logger: Logger,
): Promise<OpenedSession> {
  const { setting } = options;
  if (setting === 'cuda' || setting === 'tensorrt') {
    return { session: await openOnGpu(modelPath, setting, options), provider: setting };
  }
  if (setting === 'auto') {
    try {
      return { session: await openOnGpu(modelPath, 'cuda', options), provider: 'cuda' };
    } catch (err) {
      if (!(err instanceof PathembedError && err.code === 'EXECUTION_PROVIDER_UNAVAILABLE')) throw err;
      logger.warn(
        { executionProvider: 'auto', reason: err.details.reason },
        'CUDA is not available to ONNX Runtime; running inference on the CPU (set PATHEMBED_EXECUTION_PROVIDER=cpu to silence this, or see deploy/gpu-install.md)',
      );
    }
  }
  try {
    return { session: await create(modelPath, 'cpu', options), provider: 'cpu' };
  } catch (err) {
    throw unloadable(modelPath, err);
  }
}
