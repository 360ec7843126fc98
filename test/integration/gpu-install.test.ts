/**
 * The GPU install's checks (src/embed/gpu-providers.ts, scripts/gpu-install.ts) on the real
 * provider libraries of the pinned npm package: they match their committed sha256 and are placed;
 * a tampered or missing library is refused with a message naming it, and nothing is placed; an
 * onnxruntime-node of another release is refused. The full 230 MB CUDA library is checked by
 * `npm run gpu:install` itself (docs/benchmarks.md), not on every test run: see
 * test/helpers/gpu-provider-libs.ts for what is fetched.
 */

import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertMatchingOnnxruntime,
  GPU_PROVIDER_PACKAGE,
  installedOnnxruntimeVersion,
  placeProviderLibraries,
  sha256File,
  verifyProviderLibraries,
} from '../../src/embed/gpu-providers.js';
import { isPathembedError, type PathembedError } from '../../src/errors.js';
import { SMALL_PROVIDER_LIBRARIES, smallProviderLibraries } from '../helpers/gpu-provider-libs.js';

let real: string;
let dir: string;

beforeAll(async () => {
  real = await smallProviderLibraries();
  dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-gpu-install-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function rejection(promise: Promise<unknown>): Promise<PathembedError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isPathembedError(err)) throw new Error(`expected a PathembedError, got ${String(err)}`);
  return err;
}

describe('the GPU provider libraries of the pinned npm package', () => {
  it('match their committed sha256 and are placed byte for byte', async () => {
    const target = path.join(dir, 'placed');
    const checks = await placeProviderLibraries(real, target, SMALL_PROVIDER_LIBRARIES);
    expect(checks.map((c) => c.matches)).toEqual([true, true]);
    for (const lib of SMALL_PROVIDER_LIBRARIES) {
      const placed = await readFile(path.join(target, lib.file));
      expect(placed.byteLength).toBe(lib.bytes);
      expect(placed.equals(await readFile(path.join(real, lib.file)))).toBe(true);
      expect(await sha256File(path.join(target, lib.file))).toBe(lib.sha256);
    }
  });

  it('refuses a tampered library, naming it and both hashes, and places nothing', async () => {
    const source = path.join(dir, 'tampered');
    const target = path.join(dir, 'tampered-target');
    await rm(source, { recursive: true, force: true });
    await mkdir(source, { recursive: true });
    for (const lib of SMALL_PROVIDER_LIBRARIES)
      await copyFile(path.join(real, lib.file), path.join(source, lib.file));
    const shared = path.join(source, 'libonnxruntime_providers_shared.so');
    const bytes = await readFile(shared);
    // One flipped bit in the ELF header's padding: a loader would still map it, the pin must not pass it.
    bytes[9] ^= 1;
    await writeFile(shared, bytes);
    const tamperedSha = await sha256File(shared);

    const err = await rejection(placeProviderLibraries(source, target, SMALL_PROVIDER_LIBRARIES));
    expect(err.code).toBe('GPU_PROVIDER_INVALID');
    expect(err.message).toContain(`${shared} has sha256 ${tamperedSha}`);
    expect(err.message).toContain(`pinned to ${SMALL_PROVIDER_LIBRARIES[0].sha256}`);
    expect(err.message).toContain('npm run gpu:install');
    expect(err.message).not.toContain('tensorrt');
    expect(existsSync(target)).toBe(false);
  });

  it('refuses a folder with a library missing, naming it', async () => {
    const source = path.join(dir, 'partial');
    await mkdir(source, { recursive: true });
    await copyFile(
      path.join(real, SMALL_PROVIDER_LIBRARIES[0].file),
      path.join(source, SMALL_PROVIDER_LIBRARIES[0].file),
    );
    const err = await rejection(verifyProviderLibraries(source, SMALL_PROVIDER_LIBRARIES));
    expect(err.code).toBe('GPU_PROVIDER_INVALID');
    expect(err.details.problems).toEqual([
      `${path.join(source, 'libonnxruntime_providers_tensorrt.so')} is missing`,
    ]);
    expect(await readdir(source)).toEqual([SMALL_PROVIDER_LIBRARIES[0].file]);
  });

  it('needs the onnxruntime-node release the providers were built with', () => {
    expect(installedOnnxruntimeVersion()).toBe(GPU_PROVIDER_PACKAGE.onnxruntimeVersion);
    expect(() => assertMatchingOnnxruntime()).not.toThrow();
    let thrown: unknown;
    try {
      assertMatchingOnnxruntime('1.30.0');
    } catch (err) {
      thrown = err;
    }
    expect(isPathembedError(thrown) && thrown.code).toBe('GPU_PROVIDER_INVALID');
    expect((thrown as Error).message).toContain('onnxruntime-node 1.30.0 is installed');
    expect((thrown as Error).message).toContain('Install onnxruntime-node@1.29.0');
  });
});
