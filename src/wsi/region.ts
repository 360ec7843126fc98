/**
 * Pixel-rectangle geometry shared by the patch reader, the tissue mask and the patch grid.
 *
 * Every rectangle is in whole pixels of one named grid (a level's total pixel matrix, or the
 * target-spacing grid of the slide): x = column, y = row, 0-based, half-open
 * ([xPx, xPx + widthPx) x [yPx, yPx + heightPx)), like DICOM's total pixel matrix.
 */
import { PathembedError } from '../errors.js';
import type { SlideLevel } from './slide-level.js';

export interface RectPx {
  readonly xPx: number;
  readonly yPx: number;
  readonly widthPx: number;
  readonly heightPx: number;
}

/** The index of one tile (frame position) in a level's tile grid. */
export interface TileIndex {
  readonly col: number;
  readonly row: number;
}

/** The overlap of two rectangles, or undefined when they do not overlap. */
export function intersectRect(a: RectPx, b: RectPx): RectPx | undefined {
  const x0 = Math.max(a.xPx, b.xPx);
  const y0 = Math.max(a.yPx, b.yPx);
  const x1 = Math.min(a.xPx + a.widthPx, b.xPx + b.widthPx);
  const y1 = Math.min(a.yPx + a.heightPx, b.yPx + b.heightPx);
  if (x1 <= x0 || y1 <= y0) return undefined;
  return { xPx: x0, yPx: y0, widthPx: x1 - x0, heightPx: y1 - y0 };
}

/** True when `rect` lies wholly inside an image of the given size. */
export function isInsideImage(rect: RectPx, imageWidthPx: number, imageHeightPx: number): boolean {
  return (
    rect.xPx >= 0 &&
    rect.yPx >= 0 &&
    rect.xPx + rect.widthPx <= imageWidthPx &&
    rect.yPx + rect.heightPx <= imageHeightPx
  );
}

/** Throws INVALID_ARGUMENT unless the rectangle has integer coordinates and a positive size. */
export function assertValidRect(rect: RectPx, what = 'region'): void {
  const { xPx, yPx, widthPx, heightPx } = rect;
  if (![xPx, yPx, widthPx, heightPx].every(Number.isSafeInteger) || widthPx <= 0 || heightPx <= 0) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `The ${what} must have integer x, y and a positive integer width and height; got x=${xPx} y=${yPx} width=${widthPx} height=${heightPx}`,
      { xPx, yPx, widthPx, heightPx },
    );
  }
}

/**
 * The tiles of `level` that a level-pixel rectangle overlaps, row-major (the order frames are
 * stored in a TILED_FULL instance, so batched requests ask for neighbouring frame numbers).
 * Parts of the rectangle beyond the image overlap no tile.
 */
export function tilesOverlapping(level: SlideLevel, rect: RectPx): TileIndex[] {
  const inside = intersectRect(rect, { xPx: 0, yPx: 0, widthPx: level.widthPx, heightPx: level.heightPx });
  if (!inside) return [];
  const col0 = Math.floor(inside.xPx / level.tileWidthPx);
  const row0 = Math.floor(inside.yPx / level.tileHeightPx);
  const col1 = Math.min(
    level.tilesAcross - 1,
    Math.floor((inside.xPx + inside.widthPx - 1) / level.tileWidthPx),
  );
  const row1 = Math.min(
    level.tilesDown - 1,
    Math.floor((inside.yPx + inside.heightPx - 1) / level.tileHeightPx),
  );
  const tiles: TileIndex[] = [];
  for (let row = row0; row <= row1; row++) for (let col = col0; col <= col1; col++) tiles.push({ col, row });
  return tiles;
}
