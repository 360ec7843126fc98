/**
 * Tiles ↔ frames of one level: which stored frame holds a tile, where a tile lies in the level's
 * pixel matrix, and which tiles a region touches. Works on the plain `SlideLevel` data, so a
 * level read back from JSON answers the same.
 */
import type { SlideLevel, TileFrame } from './slide-level.js';

/** A rectangle in a level's pixel matrix (0-based, x = column, y = row). */
export interface PixelRect {
  readonly x: number;
  readonly y: number;
  readonly widthPx: number;
  readonly heightPx: number;
}

/**
 * The frame holding tile (col, row), or undefined when the tile is outside the grid or not stored
 * (a sparse level's missing tile, to be read as background).
 * TILED_FULL: frame n = row * tilesAcross + col, counted across the concatenation's parts in frame
 * offset order.
 */
export function tileFrame(level: SlideLevel, col: number, row: number): TileFrame | undefined {
  if (!Number.isInteger(col) || !Number.isInteger(row)) return undefined;
  if (col < 0 || row < 0 || col >= level.tilesAcross || row >= level.tilesDown) return undefined;
  const slot = row * level.tilesAcross + col;
  if (level.layout.kind === 'sparse') {
    const entry = level.layout.tiles[slot];
    if (!entry) return undefined;
    const instance = level.instances[entry[0]];
    return instance ? { instanceUid: instance.sopInstanceUid, frameIndex: entry[1] } : undefined;
  }
  for (const instance of level.instances) {
    const frameIndex = slot - instance.concatenationFrameOffset;
    if (frameIndex >= 0 && frameIndex < instance.frameCount) {
      return { instanceUid: instance.sopInstanceUid, frameIndex };
    }
  }
  return undefined;
}

/** The pixels of tile (col, row) that lie inside the level (edge tiles are clipped). */
export function tileRect(level: SlideLevel, col: number, row: number): PixelRect {
  const x = col * level.tileWidthPx;
  const y = row * level.tileHeightPx;
  return {
    x,
    y,
    widthPx: Math.max(0, Math.min(level.tileWidthPx, level.widthPx - x)),
    heightPx: Math.max(0, Math.min(level.tileHeightPx, level.heightPx - y)),
  };
}

/** Tiles (col, row) that overlap a region, row by row; the region may extend past the level. */
export function tilesInRegion(level: SlideLevel, region: PixelRect): Array<{ col: number; row: number }> {
  const x0 = Math.max(0, region.x);
  const y0 = Math.max(0, region.y);
  const x1 = Math.min(level.widthPx, region.x + region.widthPx);
  const y1 = Math.min(level.heightPx, region.y + region.heightPx);
  const tiles: Array<{ col: number; row: number }> = [];
  if (x1 <= x0 || y1 <= y0) return tiles;
  const col0 = Math.floor(x0 / level.tileWidthPx);
  const col1 = Math.ceil(x1 / level.tileWidthPx);
  const row0 = Math.floor(y0 / level.tileHeightPx);
  const row1 = Math.ceil(y1 / level.tileHeightPx);
  for (let row = row0; row < row1; row++) for (let col = col0; col < col1; col++) tiles.push({ col, row });
  return tiles;
}

/** Frames stored for a level, all instances together. */
export function levelFrameCount(level: SlideLevel): number {
  return level.instances.reduce((sum, i) => sum + i.frameCount, 0);
}
