/**
 * What a GPU session needs on this machine, looked up the way the dynamic loader will: the provider
 * libraries beside onnxruntime-node (and whether they are the pinned ones), every shared library
 * they need resolved through `ldd` (so LD_LIBRARY_PATH, RUNPATH and the ldconfig cache all count),
 * cuDNN (which the CUDA provider loads at run time, not through NEEDED), and the driver and GPUs
 * that `nvidia-smi` reports. `pathembed doctor` prints it; a failed GPU session quotes its first
 * missing piece. Nothing here starts a session.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ExecutionProvider } from './engine-options.js';
import {
  checkProviderLibraries,
  GPU_PROVIDER_PACKAGE,
  type LibraryCheck,
  ortNativeFolder,
} from './gpu-providers.js';

const run = promisify(execFile);
/** CUDA 13 needs an R580 driver or newer (NVIDIA's CUDA 13.0 release notes, minimum driver table). */
export const MIN_DRIVER_MAJOR_CUDA_13 = 580;
const COMMAND_TIMEOUT_MS = 10_000;
const CUDA_MAJOR = GPU_PROVIDER_PACKAGE.cudaMajor;

/** How to get each library the providers need; keyed by soname without its version suffix. */
const INSTALL_HINTS: Record<string, string> = {
  'libcublas.so': `cuBLAS for CUDA ${CUDA_MAJOR}: pip wheel nvidia-cublas, or NVIDIA's apt package libcublas-${CUDA_MAJOR}-0, or a nvidia/cuda:${CUDA_MAJOR}.x-cudnn-runtime image`,
  'libcublasLt.so': `cuBLASLt (part of cuBLAS) for CUDA ${CUDA_MAJOR}: pip wheel nvidia-cublas, or apt libcublas-${CUDA_MAJOR}-0`,
  'libcudart.so': `the CUDA ${CUDA_MAJOR} runtime: pip wheel nvidia-cuda-runtime, or apt cuda-cudart-${CUDA_MAJOR}-0`,
  'libcurand.so': `cuRAND for CUDA ${CUDA_MAJOR}: pip wheel nvidia-curand, or apt libcurand-${CUDA_MAJOR}-0`,
  'libcudnn.so': `cuDNN 9 for CUDA ${CUDA_MAJOR}: pip wheel nvidia-cudnn-cu${CUDA_MAJOR}, or apt libcudnn9-cuda-${CUDA_MAJOR}`,
  'libcuda.so':
    'the NVIDIA driver (on the host; in a container run it with --gpus all and the NVIDIA container toolkit)',
  'libnvinfer.so': `TensorRT 10 for CUDA ${CUDA_MAJOR} (pip wheel tensorrt-cu${CUDA_MAJOR}-libs, or apt libnvinfer10)`,
  'libnvonnxparser.so': `TensorRT 10's ONNX parser (pip wheel tensorrt-cu${CUDA_MAJOR}-libs, or apt libnvonnxparsers10)`,
};
const LIBRARY_PATH_HINT =
  'then add the folder holding it to LD_LIBRARY_PATH (pip wheels put it in site-packages/nvidia/*/lib)';

/** The CUDA provider loads cuDNN itself; ldd cannot see it. */
const RUNTIME_LOADED = ['libcudnn.so.9'];

export function installHint(soname: string): string {
  const base = soname.replace(/\.so(\.\d+)*$/, '.so');
  const hint = INSTALL_HINTS[base] ?? `a package providing ${soname}`;
  return `${hint}; ${LIBRARY_PATH_HINT}`;
}

export interface ResolvedLibrary {
  readonly soname: string;
  /** Which provider library needs it. */
  readonly neededBy: string;
  /** Where the loader finds it; undefined when it does not. */
  readonly path?: string;
}

export interface GpuInfo {
  readonly index: number;
  readonly name: string;
  readonly memoryMiB: number;
}

export interface GpuProbe {
  readonly providerFolder: string;
  readonly providers: readonly (LibraryCheck & { pinned: boolean })[];
  readonly libraries: readonly ResolvedLibrary[];
  readonly missing: readonly ResolvedLibrary[];
  readonly ldLibraryPath: readonly string[];
  readonly driver: { readonly version?: string; readonly gpus: readonly GpuInfo[]; readonly error?: string };
  /** Everything known to stop `provider` from loading, each with how to fix it, in the order to fix them. */
  readonly problems: readonly string[];
  /** problems[0]; undefined when nothing is known to stop it. */
  readonly firstProblem?: string;
}

/** `ldd` lines "\tlibx.so.1 => /path (0x..)" or "\tlibx.so.1 => not found"; lines without "=>" are the loader itself. */
export function parseLdd(output: string): Array<{ soname: string; path?: string }> {
  const found: Array<{ soname: string; path?: string }> = [];
  for (const line of output.split('\n')) {
    const m = /^\s*(\S+)\s+=>\s+(not found|(\S+))/.exec(line);
    if (!m) continue;
    const soname = m[1]!;
    found.push(m[2] === 'not found' || m[3] === undefined ? { soname } : { soname, path: m[3] });
  }
  return found;
}

function libraryPathFolders(): string[] {
  return (process.env.LD_LIBRARY_PATH ?? '').split(':').filter((d) => d.length > 0);
}

/** A library the loader would find by name alone: LD_LIBRARY_PATH first, then the ldconfig cache. */
async function findByName(soname: string): Promise<string | undefined> {
  for (const dir of libraryPathFolders()) {
    const candidate = path.join(dir, soname);
    if (existsSync(candidate)) return candidate;
  }
  try {
    const { stdout } = await run('ldconfig', ['-p'], { timeout: COMMAND_TIMEOUT_MS });
    const line = stdout.split('\n').find((l) => l.trim().startsWith(`${soname} `));
    return line?.split('=>')[1]?.trim();
  } catch {
    return undefined;
  }
}

async function lddOf(library: string): Promise<Array<{ soname: string; path?: string }>> {
  // ldd exits non-zero when a dependency is missing but still prints every line.
  const result = await run('ldd', [library], { timeout: COMMAND_TIMEOUT_MS }).catch(
    (err: { stdout?: string; code?: unknown; message: string }) => {
      if (typeof err.stdout === 'string' && err.stdout.length > 0) return { stdout: err.stdout };
      if (err.code === 'ENOENT')
        throw new Error('ldd is not installed (it comes with glibc: apt install libc-bin)');
      throw err;
    },
  );
  return parseLdd(result.stdout);
}

/** nvidia-smi's driver version and GPUs; an error sentence when it is absent or fails. */
export async function probeDriver(): Promise<GpuProbe['driver']> {
  try {
    const { stdout } = await run(
      'nvidia-smi',
      ['--query-gpu=index,name,memory.total,driver_version', '--format=csv,noheader,nounits'],
      { timeout: COMMAND_TIMEOUT_MS },
    );
    const rows = stdout
      .trim()
      .split('\n')
      .filter((l) => l.trim().length > 0)
      .map((l) => l.split(',').map((f) => f.trim()));
    return {
      version: rows[0]?.[3],
      gpus: rows.map(([index, name = '', memory]) => ({
        index: Number(index),
        name,
        memoryMiB: Number(memory),
      })),
    };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    const error =
      e.code === 'ENOENT'
        ? 'nvidia-smi is not installed: no NVIDIA driver on this machine (in a container, run it with --gpus all and the NVIDIA container toolkit)'
        : `nvidia-smi failed: ${(e.stderr || e.message).trim().split('\n')[0]}`;
    return { gpus: [], error };
  }
}

/** Which provider libraries `provider` loads. */
function providerFiles(provider: Exclude<ExecutionProvider, 'cpu'>): string[] {
  const files = ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'];
  return provider === 'tensorrt' ? [...files, 'libonnxruntime_providers_tensorrt.so'] : files;
}

export interface ProbeOptions {
  /** Where the provider libraries are; default: beside onnxruntime-node's native library. */
  providerFolder?: string;
}

/** Looks everything up; never throws for something missing (that is what it reports). */
export async function probeGpu(
  provider: Exclude<ExecutionProvider, 'cpu'> = 'cuda',
  options: ProbeOptions = {},
): Promise<GpuProbe> {
  const providerFolder = options.providerFolder ?? ortNativeFolder();
  const checks = await checkProviderLibraries(providerFolder);
  const providers = checks.map((c) => ({ ...c, pinned: c.matches }));
  const wanted = providerFiles(provider);
  const libraries: ResolvedLibrary[] = [];
  const problems: string[] = [];

  const absent = providers.filter((p) => wanted.includes(p.file) && !p.present);
  if (absent.length > 0) {
    problems.push(
      `${absent.map((p) => p.file).join(', ')} not installed in ${providerFolder}: run \`npm run gpu:install\` (CUDA ${CUDA_MAJOR}, from the npm registry) or install onnxruntime-node's NuGet build (ONNXRUNTIME_NODE_INSTALL=cuda12, CUDA 12); see deploy/gpu-install.md`,
    );
  }
  for (const p of providers) {
    if (!wanted.includes(p.file) || !p.present) continue;
    try {
      for (const dep of await lddOf(p.path)) libraries.push({ ...dep, neededBy: p.file });
    } catch (err) {
      problems.push(`cannot list what ${p.file} needs: ${(err as Error).message}`);
    }
  }
  if (providers.some((p) => p.file === 'libonnxruntime_providers_cuda.so' && p.present)) {
    for (const soname of RUNTIME_LOADED) {
      libraries.push({
        soname,
        neededBy: 'libonnxruntime_providers_cuda.so',
        path: await findByName(soname),
      });
    }
  }
  const missing = libraries.filter((l) => l.path === undefined);
  // One line per missing library, the first listed first: a user fixes them in this order.
  const seen = new Set<string>();
  for (const m of missing) {
    if (seen.has(m.soname)) continue;
    seen.add(m.soname);
    problems.push(
      `${m.soname} (needed by ${m.neededBy}) is not found by the loader: install ${installHint(m.soname)}`,
    );
  }
  const driver = await probeDriver();
  const driverMajor = driver.version ? Number.parseInt(driver.version, 10) : undefined;
  if (driver.error) problems.push(driver.error);
  else if (
    driverMajor !== undefined &&
    driverMajor < MIN_DRIVER_MAJOR_CUDA_13 &&
    providers.some((p) => p.pinned)
  ) {
    problems.push(
      `NVIDIA driver ${driver.version} is older than CUDA ${CUDA_MAJOR} needs (${MIN_DRIVER_MAJOR_CUDA_13} or newer): update the driver, or use the CUDA 12 route (deploy/gpu-install.md)`,
    );
  }
  return {
    providerFolder,
    providers,
    libraries,
    missing,
    ldLibraryPath: libraryPathFolders(),
    driver,
    problems,
    firstProblem: problems[0],
  };
}
