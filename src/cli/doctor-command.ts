/**
 * `pathembed doctor [--execution-provider cuda|tensorrt]`: can this machine run inference on the
 * GPU, and if not, what exactly is missing. Prints JSON on stdout: onnxruntime-node's version, the
 * provider libraries found beside it with their sha256 (and whether they are the pinned npm ones),
 * every shared library they need with where the loader finds it, LD_LIBRARY_PATH, and the driver
 * and GPUs from nvidia-smi. When all of that resolves it opens a small model on the provider and
 * runs one batch. Anything missing ends in EXECUTION_PROVIDER_UNAVAILABLE naming the first missing
 * piece and how to install it (exit status 1).
 */
import { performance } from 'node:perf_hooks';
import type { Command } from 'commander';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { buildVit } from '../../models/build-vit.js';
import {
  executionProvidersFor,
  GPU_PROVIDER_PACKAGE,
  type GpuProbe,
  installedOnnxruntimeVersion,
  MODEL_INPUT_NAME,
  MODEL_OUTPUT_NAME,
  probeGpu,
} from '../embed/index.js';
import { PathembedError } from '../errors.js';

const JSON_INDENT = 2;
/** A one-block ViT at 32 px: enough to prove that a session opens and runs on the device, built in memory. */
const PROBE_ARCHITECTURE = { imageSizePx: 32, patchSizePx: 16, embedDim: 32, depth: 1, heads: 2 } as const;
const PROBE_BATCH = 2;
const PROVIDERS = ['cuda', 'tensorrt'] as const;
type GpuProvider = (typeof PROVIDERS)[number];

interface SessionCheck {
  ok: boolean;
  ms?: number;
  error?: string;
}

async function trySession(provider: GpuProvider, deviceId: number): Promise<SessionCheck> {
  const built = buildVit({ architecture: PROBE_ARCHITECTURE });
  const started = performance.now();
  try {
    const session = await InferenceSession.create(built.bytes, {
      executionProviders: executionProvidersFor(provider, deviceId),
    });
    try {
      const side = PROBE_ARCHITECTURE.imageSizePx;
      const input = new Tensor('float32', new Float32Array(PROBE_BATCH * side * side * 3).fill(0.5), [
        PROBE_BATCH,
        side,
        side,
        3,
      ]);
      const out = await session.run({ [MODEL_INPUT_NAME]: input }, [MODEL_OUTPUT_NAME]);
      const values = out[MODEL_OUTPUT_NAME]?.data as Float32Array | undefined;
      if (!values) return { ok: false, error: `the probe model returned no ${MODEL_OUTPUT_NAME}` };
      if (!values.every(Number.isFinite))
        return { ok: false, error: 'the probe model returned non-finite values' };
      return { ok: true, ms: Math.round(performance.now() - started) };
    } finally {
      await session.release();
    }
  } catch (err) {
    return { ok: false, error: (err as Error).message.split('\n')[0] };
  }
}

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('Check that this machine can run inference on the GPU and say what is missing (JSON)')
    .option('--execution-provider <provider>', 'cuda or tensorrt', 'cuda')
    .option('--device-id <id>', 'GPU to open the probe session on', '0')
    .option(
      '--provider-folder <dir>',
      "where the provider libraries are (default: beside onnxruntime-node's library)",
    )
    .action(async (opts: { executionProvider: string; deviceId: string; providerFolder?: string }) => {
      const provider = opts.executionProvider as GpuProvider;
      if (!PROVIDERS.includes(provider)) {
        throw new PathembedError(
          'INVALID_ARGUMENT',
          `--execution-provider must be cuda or tensorrt, not ${provider}`,
        );
      }
      const probe: GpuProbe = await probeGpu(provider, { providerFolder: opts.providerFolder });
      const session =
        probe.firstProblem === undefined ? await trySession(provider, Number(opts.deviceId)) : undefined;
      const report = {
        executionProvider: provider,
        onnxruntimeNode: installedOnnxruntimeVersion(),
        pinnedPackage: {
          name: GPU_PROVIDER_PACKAGE.name,
          version: GPU_PROVIDER_PACKAGE.version,
          onnxruntime: GPU_PROVIDER_PACKAGE.onnxruntimeVersion,
          cuda: GPU_PROVIDER_PACKAGE.cudaMajor,
        },
        providerFolder: probe.providerFolder,
        providers: probe.providers.map((p) => ({
          file: p.file,
          present: p.present,
          sha256: p.sha256,
          pinned: p.pinned,
        })),
        libraries: probe.libraries,
        missing: [...new Set(probe.missing.map((m) => m.soname))],
        problems: probe.problems,
        ldLibraryPath: probe.ldLibraryPath,
        driver: probe.driver,
        session,
        ok: probe.firstProblem === undefined && session?.ok === true,
      };
      process.stdout.write(`${JSON.stringify(report, null, JSON_INDENT)}\n`);
      const problem =
        probe.firstProblem ??
        (session?.ok ? undefined : `ONNX Runtime could not run on ${provider}: ${session?.error}`);
      if (problem !== undefined) {
        throw new PathembedError(
          'EXECUTION_PROVIDER_UNAVAILABLE',
          `${provider} cannot run on this machine: ${problem}.`,
          { provider, missing: report.missing, problem },
        );
      }
    });
}
