/**
 * Reading a caller's list of patches at once (a /v1/predict instance's patches): every frame the
 * list overlaps is announced and fetched ahead in multi-frame requests, the patches are cut as
 * their frames arrive, and the answer keeps the list's order. Read one after the other, each patch
 * would wait for its own request before the next one asked for anything.
 */
import type { RectPx } from '../geometry.js';
import type { PatchReader } from './patch-reader.js';
import { type ImageSizePx, readResizedPatch, sourceRectOfResized } from './resized-level.js';
import type { SlideLevel } from './slide-level.js';

export interface PatchListOptions {
  /** The patches' coordinates are in `level` resized to this size (Path Foundation's resize); default: `level` itself. */
  readonly size?: ImageSizePx;
  /** A patch not wholly inside the image fails PATCH_OUTSIDE_IMAGE instead of being padded. */
  readonly requireInside?: boolean;
  readonly signal?: AbortSignal;
}

/**
 * The RGB samples of each of `patches`, in order. When several fail, the error is the first
 * failing patch's in list order, as reading them one by one would give.
 */
export async function readPatchList(
  reader: PatchReader,
  level: SlideLevel,
  patches: readonly RectPx[],
  options: PatchListOptions = {},
): Promise<Uint8Array[]> {
  const { size, requireInside, signal } = options;
  const read = size ? patches.map((p) => sourceRectOfResized(level, size, p)) : patches;
  const choice = { level, scale: 1 };
  // Announced, so each frame leaves the cache after the last patch that needs it.
  reader.expectPatches(choice, read);
  // Not awaited first: patches are cut as their frames arrive. Its failure, if any, is also the
  // failure of a patch read below, which is what the caller is told.
  const prefetch = reader.prefetchPatches(choice, read, signal).catch(() => 0);
  const settled = await Promise.allSettled(
    patches.map((p) =>
      size
        ? readResizedPatch(reader, level, size, p, { requireInside, signal })
        : reader.readRegion(level, p.x, p.y, p.width, p.height, { requireInside, signal }),
    ),
  );
  await prefetch;
  const out: Uint8Array[] = [];
  for (const result of settled) {
    if (result.status === 'rejected') throw result.reason;
    out.push(result.value.data);
  }
  return out;
}
