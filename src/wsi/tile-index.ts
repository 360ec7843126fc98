/**
 * Tiles ↔ frames of one level: which stored frame holds a tile, where a tile lies in the level's
 * pixel matrix, and which tiles a region touches. Works on the plain `SlideLevel` data, so a
 * level read back from JSON answers the same.
 */
import type { RectPx } from '../geometry.js';
import type { SlideLevel, TileFrame } from './slide-level.js';

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
export function tileRect(level: SlideLevel, col: number, row: number): RectPx {
  const x = col * level.tileWidthPx;
  const y = row * level.tileHeightPx;
  return {
    x,
    y,
    width: Math.max(0, Math.min(level.tileWidthPx, level.widthPx - x)),
    height: Math.max(0, Math.min(level.tileHeightPx, level.heightPx - y)),
  };
}

/** Frames stored for a level, all instances together. */
export function levelFrameCount(level: SlideLevel): number {
  return level.instances.reduce((sum, i) => sum + i.frameCount, 0);
}
