/**
 * The real small GPU provider libraries (libonnxruntime_providers_shared.so, 15 KB, and
 * libonnxruntime_providers_tensorrt.so, 0.9 MB) for the install verifier's tests. The first run on
 * a machine fetches the pinned npm package once (179 MB, through `npm pack`), keeps only these two
 * files in the git-ignored fixture cache and deletes the tarball; later runs read the cache.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT } from '../../scripts/dev-services/fixtures.js';
import { extractLibraries, fetchProviderPackage } from '../../scripts/gpu-install.js';
import { checkProviderLibraries, GPU_PROVIDER_LIBRARIES } from '../../src/embed/gpu-providers.js';

const CACHE = path.join(REPO_ROOT, '.cache', 'gpu-providers');
const SMALL = new Set(['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_tensorrt.so']);
export const SMALL_PROVIDER_LIBRARIES = GPU_PROVIDER_LIBRARIES.filter((l) => SMALL.has(l.file));

/** Folder holding the two small real libraries, verified against their pins. */
export async function smallProviderLibraries(): Promise<string> {
  const checks = await checkProviderLibraries(CACHE, SMALL_PROVIDER_LIBRARIES);
  if (checks.every((c) => c.matches)) return CACHE;
  const download = await mkdtemp(path.join(REPO_ROOT, '.cache', 'gpu-providers-download-'));
  try {
    const tarball = await fetchProviderPackage(download);
    await extractLibraries(tarball, CACHE, SMALL_PROVIDER_LIBRARIES);
  } finally {
    await rm(download, { recursive: true, force: true });
  }
  if (!existsSync(CACHE)) throw new Error(`extracting the provider libraries into ${CACHE} failed`);
  return CACHE;
}
