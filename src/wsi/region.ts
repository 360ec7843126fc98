/**
 * Operations on pixel rectangles (RectPx, geometry.ts) shared by the patch reader, the tissue mask
 * and the patch grid: overlap, containment, validation, and the tiles a rectangle touches.
 */
import { PathembedError } from '../errors.js';
import type { RectPx } from '../geometry.js';
import type { SlideLevel } from './slide-level.js';

export type { RectPx };

/** The index of one tile (frame position) in a level's tile grid. */
export interface TileIndex {
  readonly col: number;
  readonly row: number;
}

/** The overlap of two rectangles, or undefined when they do not overlap. */
export function intersectRect(a: RectPx, b: RectPx): RectPx | undefined {
  const x0 = Math.max(a.x, b.x);
  const y0 = Math.max(a.y, b.y);
  const x1 = Math.min(a.x + a.width, b.x + b.width);
  const y1 = Math.min(a.y + a.height, b.y + b.height);
  if (x1 <= x0 || y1 <= y0) return undefined;
  return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}

/** True when `rect` lies wholly inside an image of the given size. */
export function isInsideImage(rect: RectPx, imageWidthPx: number, imageHeightPx: number): boolean {
  return (
    rect.x >= 0 && rect.y >= 0 && rect.x + rect.width <= imageWidthPx && rect.y + rect.height <= imageHeightPx
  );
}

/** Throws INVALID_ARGUMENT unless the rectangle has integer coordinates and a positive size. */
export function assertValidRect(rect: RectPx, what = 'region'): void {
  const { x, y, width, height } = rect;
  if (![x, y, width, height].every(Number.isSafeInteger) || width <= 0 || height <= 0) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `The ${what} must have integer x, y and a positive integer width and height; got x=${x} y=${y} width=${width} height=${height}`,
      { x, y, width, height },
    );
  }
}

/**
 * The tiles of `level` that a level-pixel rectangle overlaps, row-major (the order frames are
 * stored in a TILED_FULL instance, so batched requests ask for neighbouring frame numbers).
 * Parts of the rectangle beyond the image overlap no tile.
 */
export function tilesOverlapping(level: SlideLevel, rect: RectPx): TileIndex[] {
  const inside = intersectRect(rect, { x: 0, y: 0, width: level.widthPx, height: level.heightPx });
  if (!inside) return [];
  const col0 = Math.floor(inside.x / level.tileWidthPx);
  const row0 = Math.floor(inside.y / level.tileHeightPx);
  const col1 = Math.min(level.tilesAcross - 1, Math.floor((inside.x + inside.width - 1) / level.tileWidthPx));
  const row1 = Math.min(level.tilesDown - 1, Math.floor((inside.y + inside.height - 1) / level.tileHeightPx));
  const tiles: TileIndex[] = [];
  for (let row = row0; row <= row1; row++) for (let col = col0; col <= col1; col++) tiles.push({ col, row });
  return tiles;
}
