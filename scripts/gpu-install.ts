/**
 * `npm run gpu:install`: installs ONNX Runtime's CUDA and TensorRT provider libraries from the npm
 * registry alone (no NuGet, no internet beyond the registry or its mirror). It fetches the pinned
 * package with `npm pack` (npm checks the tarball against the registry's integrity, and this script
 * against the integrity committed in src/embed/gpu-providers.ts), unpacks the libraries, checks the
 * sha256 of each against its pin, and places them beside onnxruntime-node's native library.
 *
 *   npm run gpu:install                        # fetch (or reuse the cached tarball) and install
 *   npm run gpu:install -- --from PKG.tgz      # offline: a tarball fetched elsewhere (npm pack)
 *   npm run gpu:install -- --target DIR        # place them elsewhere (default: onnxruntime-node's bin folder)
 *
 * deploy/Dockerfile.gpu runs it; deploy/gpu-install.md says what the libraries then need (CUDA 13).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import {
  assertMatchingOnnxruntime,
  GPU_PROVIDER_LIBRARIES,
  GPU_PROVIDER_PACKAGE,
  ortNativeFolder,
  type ProviderLibrary,
  placeProviderLibraries,
} from '../src/embed/gpu-providers.js';
import { PathembedError } from '../src/errors.js';

const run = promisify(execFile);
/** Where fetched tarballs are kept between runs: git-ignored, and pruned with node_modules. */
export const DEFAULT_CACHE = path.join('node_modules', '.cache', 'pathembed-gpu-providers');
/** npm pack's stdout is a JSON list; a 179 MB package needs no more than this to describe. */
const NPM_OUTPUT_LIMIT_BYTES = 16 * 1024 * 1024;
const PACKAGE_ROOT = 'package';

export function tarballName(): string {
  return `${GPU_PROVIDER_PACKAGE.name}-${GPU_PROVIDER_PACKAGE.version}.tgz`;
}

/** npm's "sha512-<base64>" integrity of a file. */
export async function integrityOf(file: string): Promise<string> {
  const hash = createHash('sha512');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return `sha512-${hash.digest('base64')}`;
}

async function assertIntegrity(tarball: string): Promise<void> {
  const actual = await integrityOf(tarball);
  if (actual !== GPU_PROVIDER_PACKAGE.integrity) {
    throw new PathembedError(
      'GPU_PROVIDER_INVALID',
      `${tarball} is not ${GPU_PROVIDER_PACKAGE.name}@${GPU_PROVIDER_PACKAGE.version}: its integrity is ${actual}, the pin is ${GPU_PROVIDER_PACKAGE.integrity}. Delete it and fetch again.`,
      { tarball, actual },
    );
  }
}

/**
 * The pinned package's tarball in `cacheDir`, fetched with `npm pack` unless a copy with the pinned
 * integrity is already there. Uses whatever registry npm is configured with (a site mirror too).
 */
export async function fetchProviderPackage(cacheDir: string = DEFAULT_CACHE): Promise<string> {
  const tarball = path.resolve(cacheDir, tarballName());
  if (existsSync(tarball)) {
    try {
      await assertIntegrity(tarball);
      return tarball;
    } catch {
      await rm(tarball, { force: true });
    }
  }
  await mkdir(cacheDir, { recursive: true });
  const spec = `${GPU_PROVIDER_PACKAGE.name}@${GPU_PROVIDER_PACKAGE.version}`;
  try {
    await run('npm', ['pack', spec, '--pack-destination', path.resolve(cacheDir), '--json', '--silent'], {
      maxBuffer: NPM_OUTPUT_LIMIT_BYTES,
    });
  } catch (err) {
    throw new PathembedError(
      'GPU_PROVIDER_INVALID',
      `npm could not fetch ${spec} from the registry: ${(err as Error).message.split('\n')[0]}. Check the registry (npm config get registry) or pass a tarball fetched elsewhere with --from.`,
      { spec },
      { cause: err },
    );
  }
  await assertIntegrity(tarball);
  return tarball;
}

/** Unpacks the given libraries of the package tarball into `dest` (flat); returns `dest`. */
export async function extractLibraries(
  tarball: string,
  dest: string,
  libraries: readonly ProviderLibrary[] = GPU_PROVIDER_LIBRARIES,
): Promise<string> {
  await mkdir(dest, { recursive: true });
  const members = libraries.map((l) => `${PACKAGE_ROOT}/${GPU_PROVIDER_PACKAGE.libraryFolder}/${l.file}`);
  // --strip-components drops package/Plugins/Linux/x64, so the files land flat in dest.
  const depth = `${PACKAGE_ROOT}/${GPU_PROVIDER_PACKAGE.libraryFolder}`.split('/').length;
  await run('tar', ['-xzf', tarball, '-C', dest, `--strip-components=${depth}`, ...members]);
  return dest;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      from: { type: 'string' },
      target: { type: 'string' },
      cache: { type: 'string' },
    },
  });
  assertMatchingOnnxruntime();
  const tarball = values.from ? path.resolve(values.from) : await fetchProviderPackage(values.cache);
  if (values.from) await assertIntegrity(tarball);
  const target = path.resolve(values.target ?? ortNativeFolder());
  const staging = await mkdtemp(path.join(path.dirname(tarball), 'unpacked-'));
  try {
    await extractLibraries(tarball, staging);
    const checks = await placeProviderLibraries(staging, target);
    process.stdout.write(
      `${JSON.stringify(
        {
          package: `${GPU_PROVIDER_PACKAGE.name}@${GPU_PROVIDER_PACKAGE.version}`,
          onnxruntime: GPU_PROVIDER_PACKAGE.onnxruntimeVersion,
          cuda: GPU_PROVIDER_PACKAGE.cudaMajor,
          target,
          libraries: checks.map((c) => ({ file: c.file, sha256: c.sha256 })),
          next: 'run `pathembed doctor` to see which CUDA libraries resolve on this machine',
        },
        null,
        2,
      )}\n`,
    );
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  try {
    await main();
  } catch (err) {
    process.stderr.write(`gpu:install failed: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
