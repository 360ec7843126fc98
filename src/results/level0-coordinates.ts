/**
 * Level-0 pixel coordinates of a patch, for the files multiple-instance-learning code reads
 * (HDF5 `coords`, Parquet `x0`/`y0`): those tools cut patches from level 0 of the slide, while the
 * JSON result states rectangles in the target grid. The scale is computed from the result header
 * exactly as the pipeline computes it from the plan (level spacing × downsample ÷ level-0 spacing,
 * per axis), so any reader of the JSON can reproduce every coordinate.
 *
 * Rounding: x0 = Math.round(x × scale.x), y0 = Math.round(y × scale.y), i.e. the level-0 pixel
 * whose top-left corner is nearest to the patch's top-left corner (halves round up, towards +∞).
 * When the scale is a whole number (the usual pyramid, e.g. 0.5 µm/px read from 0.25 µm/px), the
 * product is exact and no rounding happens; the scale's own float error (e.g. 1.9999999999999998
 * from decimal spacings) is far below half a pixel for any slide under 2^31 pixels.
 */
import { PathembedError } from '../errors.js';
import type { ResultHeader } from './result-document.js';

/** Level-0 pixels per target-grid pixel, along columns (x) and rows (y). */
export interface Level0Scale {
  readonly x: number;
  readonly y: number;
}

/** int32 is what both files store coordinates as (ample: DICOM matrices are far below 2^31 px). */
const INT32_MAX = 2 ** 31 - 1;
const INT32_MIN = -(2 ** 31);

type GeometryHeader = Pick<ResultHeader, 'level' | 'baseLevel'>;

export function level0Scale(header: GeometryHeader): Level0Scale {
  const { level, baseLevel } = header;
  return {
    x: (level.pixelSpacingUm.x * level.scaleFromGrid) / baseLevel.pixelSpacingUm.x,
    y: (level.pixelSpacingUm.y * level.scaleFromGrid) / baseLevel.pixelSpacingUm.y,
  };
}

/** The level-0 pixel of a target-grid position (see the module doc for the rounding). */
export function level0Point(x: number, y: number, scale: Level0Scale): { x0: number; y0: number } {
  const x0 = Math.round(x * scale.x);
  const y0 = Math.round(y * scale.y);
  if (x0 > INT32_MAX || y0 > INT32_MAX || x0 < INT32_MIN || y0 < INT32_MIN) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `Level-0 coordinate (${x0}, ${y0}) of grid position (${x}, ${y}) does not fit in int32`,
      { x, y },
    );
  }
  return { x0, y0 };
}

/**
 * A target-grid rectangle in level-0 pixels: both corners mapped (and rounded) like points, so
 * adjacent patches stay adjacent at level 0. What a viewer or the search index draws and looks up.
 */
export function level0Rect(
  rect: { readonly x: number; readonly y: number; readonly width: number; readonly height: number },
  scale: Level0Scale,
): { x: number; y: number; width: number; height: number } {
  const start = level0Point(rect.x, rect.y, scale);
  const end = level0Point(rect.x + rect.width, rect.y + rect.height, scale);
  return { x: start.x0, y: start.y0, width: end.x0 - start.x0, height: end.y0 - start.y0 };
}

/** The patch size in level-0 pixels, rounded like the coordinates. */
export function level0PatchSize(patchSizePx: number, scale: Level0Scale): { width: number; height: number } {
  return { width: Math.round(patchSizePx * scale.x), height: Math.round(patchSizePx * scale.y) };
}
