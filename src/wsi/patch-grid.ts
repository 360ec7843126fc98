/**
 * The patches of a slide to embed: a stride grid at the target pixel spacing filtered by the tissue
 * mask, or an explicit list the caller gives, validated. Plain JSON data.
 *
 * Coordinates are in the target grid (patch-reader.ts): pixels at the target spacing from the
 * image's top-left corner. The grid is row-major (y, then x) from (0, 0) in steps of `stridePx`,
 * and holds only patches wholly inside the image: a patch padded with black would embed the
 * padding, so the last partial column and row of patches is left out (at most patchSize - 1 px
 * of each edge; with the default stride = patch size, the same as EZ-WSI's grid of whole patches).
 * Grid patches whose tissue fraction is below `minTissue` are dropped; `index` numbers the kept
 * ones 0.. in order, so the same slide and options always give the same list.
 */
import { PathembedError } from '../errors.js';
import type { PlannedPatch, RectPx } from '../geometry.js';
import type { LevelScale } from './patch-reader.js';
import { targetGridSize } from './patch-reader.js';
import { meanPixelSpacingUm } from './pixel-spacing.js';
import { isInsideImage } from './region.js';
import type { TissueMask } from './tissue-mask.js';

export interface PatchGridOptions {
  /** Target pixel spacing in µm/px (PATHEMBED_PIXEL_SPACING_UM). */
  readonly pixelSpacingUm: number;
  /** Side of a square patch in target pixels (the model's input, 224). */
  readonly patchSizePx: number;
  /** Step between neighbouring patches in target pixels (PATHEMBED_STRIDE_PX). */
  readonly stridePx: number;
  /** Least tissue fraction of a grid patch (PATHEMBED_MIN_TISSUE); ignored without a mask. */
  readonly minTissue: number;
}

export interface PatchGrid {
  readonly pixelSpacingUm: number;
  /** The stored level patches are read from, and its downsample to the target grid. */
  readonly level: number;
  readonly downsample: number;
  /** The image in the target grid. */
  readonly widthPx: number;
  readonly heightPx: number;
  readonly patchSizePx: number;
  readonly stridePx: number;
  readonly minTissue: number;
  /** Grid positions considered before the tissue filter. */
  readonly candidates: number;
  readonly tissue: { readonly method: string; readonly spacingUm: number; readonly fraction: number } | null;
  readonly patches: readonly PlannedPatch[];
}

/** Micrometres one target-grid pixel covers (the level's real spacing times the scale). */
export function targetPixelSizeUm(choice: LevelScale): number {
  return meanPixelSpacingUm(choice.level) * choice.scale;
}

function checkOptions(options: PatchGridOptions): void {
  const { patchSizePx, stridePx, minTissue } = options;
  if (!Number.isSafeInteger(patchSizePx) || patchSizePx <= 0) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `Patch size must be a positive integer, got ${patchSizePx}`,
      { patchSizePx },
    );
  }
  if (!Number.isSafeInteger(stridePx) || stridePx <= 0) {
    throw new PathembedError('INVALID_ARGUMENT', `Stride must be a positive integer, got ${stridePx}`, {
      stridePx,
    });
  }
  if (!(minTissue >= 0 && minTissue <= 1)) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `Minimum tissue fraction must be within 0..1, got ${minTissue}`,
      {
        minTissue,
      },
    );
  }
}

function tissueSummary(mask: TissueMask | undefined): PatchGrid['tissue'] {
  return mask ? { method: mask.method, spacingUm: mask.pixelSpacingUm, fraction: mask.fraction } : null;
}

/** The stride grid of `choice`'s target grid, filtered by `mask` (see the module doc). */
export function buildPatchGrid(
  choice: LevelScale,
  mask: TissueMask | undefined,
  options: PatchGridOptions,
): PatchGrid {
  checkOptions(options);
  const { widthPx, heightPx } = targetGridSize(choice);
  const { patchSizePx, stridePx, minTissue } = options;
  const sizeUm = targetPixelSizeUm(choice);
  const patches: PlannedPatch[] = [];
  let candidates = 0;
  for (let y = 0; y + patchSizePx <= heightPx; y += stridePx) {
    for (let x = 0; x + patchSizePx <= widthPx; x += stridePx) {
      candidates++;
      const rect: RectPx = { x, y, width: patchSizePx, height: patchSizePx };
      const tissueFraction = mask ? mask.tissueFraction(rect, sizeUm) : 1;
      if (mask && tissueFraction < minTissue) continue;
      patches.push({ index: patches.length, x, y, width: patchSizePx, height: patchSizePx, tissueFraction });
    }
  }
  return {
    pixelSpacingUm: options.pixelSpacingUm,
    level: choice.level.index,
    downsample: choice.scale,
    widthPx,
    heightPx,
    patchSizePx,
    stridePx,
    minTissue,
    candidates,
    tissue: tissueSummary(mask),
    patches,
  };
}

export interface ExplicitPatchInput {
  readonly x: number;
  readonly y: number;
  /** When given, must equal the patch size. */
  readonly width?: number;
  readonly height?: number;
}

/**
 * An explicit patch list as grid patches, in the order given (no tissue filter). Throws
 * INVALID_ARGUMENT for a non-integer position or a size other than `patchSizePx`, and
 * PATCH_OUTSIDE_IMAGE for a patch not wholly inside the target grid when `requireInside`
 * (default true) or not overlapping the image at all otherwise. Names the offending index.
 */
export function explicitPatches(
  choice: LevelScale,
  input: readonly ExplicitPatchInput[],
  mask: TissueMask | undefined,
  options: { readonly patchSizePx: number; readonly requireInside?: boolean },
): PlannedPatch[] {
  const { patchSizePx } = options;
  const requireInside = options.requireInside ?? true;
  const { widthPx, heightPx } = targetGridSize(choice);
  const sizeUm = targetPixelSizeUm(choice);
  return input.map((p, index) => {
    const width = p.width ?? patchSizePx;
    const height = p.height ?? patchSizePx;
    if (!Number.isSafeInteger(p.x) || !Number.isSafeInteger(p.y)) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `Patch ${index}: x and y must be integers, got (${p.x}, ${p.y})`,
        {
          index,
          x: p.x,
          y: p.y,
        },
      );
    }
    if (width !== patchSizePx || height !== patchSizePx) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `Patch ${index}: size ${width}x${height} is not the model's ${patchSizePx}x${patchSizePx}`,
        { index, width, height, patchSizePx },
      );
    }
    const rect: RectPx = { x: p.x, y: p.y, width, height };
    const inside = isInsideImage(rect, widthPx, heightPx);
    const overlaps = p.x < widthPx && p.y < heightPx && p.x + width > 0 && p.y + height > 0;
    if ((requireInside && !inside) || !overlaps) {
      throw new PathembedError(
        'PATCH_OUTSIDE_IMAGE',
        `Patch ${index} at (${p.x}, ${p.y}) ${width}x${height} is ${overlaps ? 'not wholly inside' : 'outside'} the ${widthPx}x${heightPx} image at ${targetPixelSizeUm(choice).toFixed(4)} µm/px`,
        { index, x: p.x, y: p.y, width, height, imageWidthPx: widthPx, imageHeightPx: heightPx },
      );
    }
    const tissueFraction = mask ? mask.tissueFraction(rect, sizeUm) : 1;
    return { index, x: p.x, y: p.y, width, height, tissueFraction };
  });
}
