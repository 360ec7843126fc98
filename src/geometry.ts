/**
 * Geometry value types. Each carries its unit in its name (`RectPx`, `SizePx`; spacings are
 * `SpacingUm` and `SpacingMm` in units.ts) and plain field names, the same names the JSON results
 * and the predict API use, so a rectangle crosses from a request to the reader to a result
 * without being reshaped.
 *
 * Every rectangle is in whole pixels of one named grid (a level's total pixel matrix, or the
 * target-spacing grid of a slide): x = column, y = row, 0-based and half-open
 * ([x, x + width) x [y, y + height)), like DICOM's total pixel matrix.
 */

export interface RectPx {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

export interface SizePx {
  readonly widthPx: number;
  readonly heightPx: number;
}

/** The rectangle's four numbers only (a patch or request item may carry more). */
export function rectOf(r: RectPx): RectPx {
  return { x: r.x, y: r.y, width: r.width, height: r.height };
}

/** A patch placed on a slide's target grid: its rectangle, its place in order, its tissue. */
export interface PlannedPatch extends RectPx {
  /** Position in the plan's patch list; results are emitted in this order. */
  readonly index: number;
  /** Area fraction over tissue (0-1); 1 when no mask was computed (explicit patches). */
  readonly tissueFraction: number;
}
