/**
 * Patches of a level resized to caller-given dimensions: Path Foundation's
 * `extensions.image_dimensions` for DICOM, which EZ-WSI sends for `level.resize(...)`. The patch
 * coordinates are pixels of the resized image; each patch is read from a stored level and shrunk
 * to its size by area averaging (resample.ts).
 *
 * Geometry, as Google's serving code does it, so the pixels match: a patch [x, x + w) of the
 * resized image maps to source columns [round(x * sx), round((x + w) * sx)) of the stored level,
 * sx = level width / resized width (Python's round, halves to even; rows alike), and that source
 * block is area-averaged to w x h. Source pixels past the level's edge are black, unless the caller
 * requires the patch inside, which is checked on the source block.
 *
 * Which stored level: the one the request names when the resized image is no larger than it (a
 * downsample, at most MAX_RESIZE_DOWNSAMPLE); when the request asks for more pixels than the named
 * level has, the smallest finer level that has enough, so pixels are averaged from real detail
 * instead of interpolated (Google upsamples the named level with a cubic kernel; see
 * docs/predict-compat.md).
 */
import type { RgbFrame } from '../codecs/index.js';
import { PathembedError } from '../errors.js';
import type { PatchReader } from './patch-reader.js';
import { isInsideImage, type RectPx } from './region.js';
import { resizeByArea } from './resample.js';
import type { SlideLevel } from './slide-level.js';

/** Path Foundation refuses a resize that shrinks the named level more than this. */
export const MAX_RESIZE_DOWNSAMPLE = 8;

export interface ImageSizePx {
  readonly widthPx: number;
  readonly heightPx: number;
}

/** Python 3's round(): halves go to the even neighbour. */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const diff = v - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Level pixels per resized pixel along each axis, and the larger of the two. */
export function resizeFactors(level: ImageSizePx, size: ImageSizePx): { x: number; y: number; max: number } {
  const x = level.widthPx / size.widthPx;
  const y = level.heightPx / size.heightPx;
  return { x, y, max: Math.max(x, y) };
}

/**
 * The stored level to read a resize of `named` to `size` from: `named` when the resize shrinks it
 * (DOWNSAMPLING_TOO_LARGE past 8x), else the smallest level at least `size` on both axes.
 */
export function levelForResize<L extends SlideLevel>(levels: readonly L[], named: L, size: ImageSizePx): L {
  const f = resizeFactors(named, size);
  if (f.max > MAX_RESIZE_DOWNSAMPLE) {
    throw new PathembedError(
      'RESIZE_DOWNSAMPLING_TOO_LARGE',
      `Image downsampling ${f.max.toFixed(5)}X exceeds ${MAX_RESIZE_DOWNSAMPLE}x: level ${named.index} (${named.widthPx}x${named.heightPx}) cannot be resized to ${size.widthPx}x${size.heightPx}. Name a coarser level in instance_uids or ask for larger image_dimensions.`,
      { level: named.index, ...size, downsample: f.max },
    );
  }
  if (size.widthPx <= named.widthPx && size.heightPx <= named.heightPx) return named;
  const bigEnough = levels
    .filter((l) => l.widthPx >= size.widthPx && l.heightPx >= size.heightPx)
    .sort((a, b) => a.widthPx * a.heightPx - b.widthPx * b.heightPx)[0];
  if (!bigEnough) {
    const finest = levels.reduce((a, b) => (a.widthPx * a.heightPx >= b.widthPx * b.heightPx ? a : b));
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `image_dimensions ${size.widthPx}x${size.heightPx} is larger than the finest level (${finest.widthPx}x${finest.heightPx}); this service does not invent pixels by upsampling. Ask for at most the finest level's size.`,
      { ...size, finestWidthPx: finest.widthPx, finestHeightPx: finest.heightPx },
    );
  }
  return bigEnough;
}

/** The block of `level` a rectangle of the resized image is averaged from (module doc). */
export function sourceRectOfResized(level: ImageSizePx, size: ImageSizePx, rect: RectPx): RectPx {
  const x0 = roundHalfEven((rect.x * level.widthPx) / size.widthPx);
  const y0 = roundHalfEven((rect.y * level.heightPx) / size.heightPx);
  const x1 = roundHalfEven(((rect.x + rect.width) * level.widthPx) / size.widthPx);
  const y1 = roundHalfEven(((rect.y + rect.height) * level.heightPx) / size.heightPx);
  // At least one source pixel, however small the resized image.
  return { x: x0, y: y0, width: Math.max(1, x1 - x0), height: Math.max(1, y1 - y0) };
}

export interface ResizedReadOptions {
  readonly requireInside?: boolean;
  readonly signal?: AbortSignal;
}

/** A patch of `level` resized to `size`, its rectangle in resized-image pixels. */
export async function readResizedPatch(
  reader: PatchReader,
  level: SlideLevel,
  size: ImageSizePx,
  rect: RectPx,
  options: ResizedReadOptions = {},
): Promise<RgbFrame> {
  if (size.widthPx === level.widthPx && size.heightPx === level.heightPx) {
    return reader.readRegion(level, rect.x, rect.y, rect.width, rect.height, options);
  }
  const src = sourceRectOfResized(level, size, rect);
  if (options.requireInside && !isInsideImage(src, level.widthPx, level.heightPx)) {
    throw new PathembedError(
      'PATCH_OUTSIDE_IMAGE',
      `Patch x=${rect.x} y=${rect.y} ${rect.width}x${rect.height} is not inside the ${size.widthPx}x${size.heightPx} resized image (require_patches_fully_in_source_image)`,
      { ...rect, imageWidthPx: size.widthPx, imageHeightPx: size.heightPx, level: level.index },
    );
  }
  const block = await reader.readRegion(level, src.x, src.y, src.width, src.height, {
    signal: options.signal,
  });
  return resizeByArea(block, rect.width, rect.height);
}
