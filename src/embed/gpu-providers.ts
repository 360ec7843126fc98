/**
 * ONNX Runtime's CUDA and TensorRT provider libraries from the npm registry: the pinned package
 * that carries them, the sha256 of each library, and placing them beside onnxruntime-node's native
 * library, where ORT looks for `libonnxruntime_providers_*.so`. onnxruntime-node itself fetches
 * these from NuGet (a CUDA 12 build); sites that mirror only the npm registry get them from
 * `com.github.asus4.onnxruntime.linux-x64-gpu` instead, an MIT-licensed repackaging of the same
 * ORT release built for CUDA 13 (deploy/gpu-install.md says which route needs what).
 *
 * The libraries are native code loaded into the worker, so every one is checked against the sha256
 * committed here before anything is placed; one mismatch and nothing is placed.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync } from 'node:fs';
import { copyFile, mkdir, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { PathembedError } from '../errors.js';

/** The npm package carrying the providers, and what it was checked to contain (readelf -d, strings). */
export const GPU_PROVIDER_PACKAGE = {
  name: 'com.github.asus4.onnxruntime.linux-x64-gpu',
  version: '0.4.9',
  /** npm's dist.integrity of the tarball; `npm pack` refuses a tarball that differs. */
  integrity:
    'sha512-FopIhNE/Ng+v2X65wVc9clPCBCvhvA53Hxo2U0Kf5fGdVsC7iCA+mZ0KLWggcQAj7TIZ6pNidR4AC10g74Xo6w==',
  /** Folder of the libraries inside the package (npm unpacks into `package/`). */
  libraryFolder: 'Plugins/Linux/x64',
  /** The ONNX Runtime release the libraries are: the installed onnxruntime-node must be the same. */
  onnxruntimeVersion: '1.29.0',
  cudaMajor: 13,
  cudnnMajor: 9,
} as const;

export interface ProviderLibrary {
  readonly file: string;
  readonly sha256: string;
  readonly bytes: number;
  /** What the library is for, for messages. */
  readonly role: string;
  /** NEEDED entries outside glibc/libstdc++ (readelf -d), with how to get each. */
  readonly needs: readonly string[];
  /** Libraries it loads with dlopen at run time rather than through NEEDED. */
  readonly loadsAtRunTime: readonly string[];
}

/** The three libraries of GPU_PROVIDER_PACKAGE, as verified when the pin was set. */
export const GPU_PROVIDER_LIBRARIES: readonly ProviderLibrary[] = [
  {
    file: 'libonnxruntime_providers_shared.so',
    sha256: 'c6a12593396095f5670160e284c35d1700b7708cf3037b7042e2a5200ccae772',
    bytes: 14_632,
    role: 'the bridge every ORT provider library loads through',
    needs: [],
    loadsAtRunTime: [],
  },
  {
    file: 'libonnxruntime_providers_cuda.so',
    sha256: '56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037',
    bytes: 229_780_440,
    role: 'the CUDA execution provider',
    needs: ['libcublasLt.so.13', 'libcublas.so.13', 'libcurand.so.10', 'libcudart.so.13', 'libcuda.so.1'],
    loadsAtRunTime: ['libcudnn.so.9'],
  },
  {
    file: 'libonnxruntime_providers_tensorrt.so',
    sha256: 'ef6071798a339038ad66c428fb1a809cf8e499bffc3b6870e4e8bc4f4c6a6320',
    bytes: 859_144,
    role: 'the TensorRT execution provider',
    needs: [
      'libcublas.so.13',
      'libnvinfer.so.10',
      'libnvonnxparser.so.10',
      'libcudart.so.13',
      'libcudnn.so.9',
    ],
    loadsAtRunTime: [],
  },
];

/** onnxruntime-node's version, read from its package.json. */
export function installedOnnxruntimeVersion(): string {
  const require = createRequire(import.meta.url);
  const pkg = require('onnxruntime-node/package.json') as { version: string };
  return pkg.version;
}

/**
 * Folder of onnxruntime-node's native binding and libonnxruntime.so: bin/napi-v<N>/<platform>/<arch>.
 * The N-API version in the folder name has changed across releases, so it is found, not assumed.
 */
export function ortNativeFolder(): string {
  const entry = createRequire(import.meta.url).resolve('onnxruntime-node');
  const bin = path.join(path.dirname(entry), '..', 'bin');
  const napi = existsSync(bin)
    ? readdirSync(bin)
        .filter((d) => /^napi-v\d+$/.test(d))
        .sort((a, b) => Number(b.slice(6)) - Number(a.slice(6)))
    : [];
  return path.join(bin, napi[0] ?? 'napi-v6', process.platform, process.arch);
}

/** sha256 (hex) of a file, streamed (the CUDA provider is 230 MB). */
export async function sha256File(filePath: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(filePath)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface LibraryCheck {
  readonly file: string;
  readonly path: string;
  readonly present: boolean;
  readonly sha256?: string;
  readonly matches: boolean;
}

/** Hashes each library in `folder` and compares it with its pin; never throws for a mismatch. */
export async function checkProviderLibraries(
  folder: string,
  libraries: readonly ProviderLibrary[] = GPU_PROVIDER_LIBRARIES,
): Promise<LibraryCheck[]> {
  return Promise.all(
    libraries.map(async (lib) => {
      const file = path.join(folder, lib.file);
      if (!existsSync(file)) return { file: lib.file, path: file, present: false, matches: false };
      const sha256 = await sha256File(file);
      return { file: lib.file, path: file, present: true, sha256, matches: sha256 === lib.sha256 };
    }),
  );
}

/** Throws GPU_PROVIDER_INVALID naming every library that is missing from `folder` or differs from its pin. */
export async function verifyProviderLibraries(
  folder: string,
  libraries: readonly ProviderLibrary[] = GPU_PROVIDER_LIBRARIES,
): Promise<LibraryCheck[]> {
  const checks = await checkProviderLibraries(folder, libraries);
  const problems = checks
    .filter((c) => !c.matches)
    .map((c) => {
      const pin = libraries.find((l) => l.file === c.file);
      return c.present
        ? `${c.path} has sha256 ${c.sha256}, but ${GPU_PROVIDER_PACKAGE.name}@${GPU_PROVIDER_PACKAGE.version} is pinned to ${pin?.sha256}`
        : `${c.path} is missing`;
    });
  if (problems.length > 0) {
    throw new PathembedError(
      'GPU_PROVIDER_INVALID',
      `Refusing to install the GPU provider libraries: ${problems.join('; ')}. The file was altered or is from another release; fetch the pinned package again (npm run gpu:install).`,
      { folder, problems },
    );
  }
  return checks;
}

/** Throws GPU_PROVIDER_INVALID when onnxruntime-node is not the ORT release the providers are. */
export function assertMatchingOnnxruntime(installed: string = installedOnnxruntimeVersion()): void {
  const wanted = GPU_PROVIDER_PACKAGE.onnxruntimeVersion;
  if (installed === wanted) return;
  throw new PathembedError(
    'GPU_PROVIDER_INVALID',
    `onnxruntime-node ${installed} is installed, but the GPU providers of ${GPU_PROVIDER_PACKAGE.name}@${GPU_PROVIDER_PACKAGE.version} are ONNX Runtime ${wanted}: provider libraries only load into the exact ORT release they were built with. Install onnxruntime-node@${wanted} (package.json pins it).`,
    { installed, wanted },
  );
}

/**
 * Verifies every library in `sourceFolder` against its pin, then copies them into `targetFolder`
 * (each through a temporary name and a rename, so ORT never sees half a library). Nothing is
 * copied unless all match. Returns the checks.
 */
export async function placeProviderLibraries(
  sourceFolder: string,
  targetFolder: string,
  libraries: readonly ProviderLibrary[] = GPU_PROVIDER_LIBRARIES,
): Promise<LibraryCheck[]> {
  const checks = await verifyProviderLibraries(sourceFolder, libraries);
  await mkdir(targetFolder, { recursive: true });
  for (const lib of libraries) {
    const target = path.join(targetFolder, lib.file);
    const temp = `${target}.${process.pid}.tmp`;
    try {
      await copyFile(path.join(sourceFolder, lib.file), temp);
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }
  // The copies are checked again: a full disk or a racing writer must not leave a bad library.
  await verifyProviderLibraries(targetFolder, libraries);
  return checks;
}
