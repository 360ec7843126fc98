/**
 * Deep-zoom tiles of a slide for a web viewer (OpenSeadragon's DZI layout): zoom level `z` runs
 * from 0 (the whole slide in one pixel) to `maxLevel` (level 0's own pixels), each level half the
 * size of the next. A tile is read from the coarsest stored level that is still at least as fine
 * as the zoom level, and shrunk by area averaging (PatchReader.readScaled), so the browser never
 * sees a pixel the store does not hold and the frame cache serves neighbouring tiles.
 */

import type { RgbFrame } from '../codecs/index.js';
import { PathembedError } from '../errors.js';
import type { PatchReader } from './patch-reader.js';
import type { RectPx } from './region.js';
import type { SlideLevel } from './slide-level.js';

/** Side of a deep-zoom tile in pixels (OpenSeadragon's default for DZI). */
export const DEEP_ZOOM_TILE_PX = 256;
/** Largest side of a region picture (patch thumbnails). */
export const MAX_REGION_SIDE_PX = 1024;
/**
 * Most stored pixels one tile or region may read (4096 x 4096, 48 MB of RGB). A slide with a
 * pyramid never comes near it; a slide stored as one huge level would otherwise make a zoomed-out
 * tile read the whole image into memory, so such tiles are refused and the viewer shows the slide
 * from the zoom where a tile fits.
 */
export const MAX_READ_PX = 4096 * 4096;

/** What a viewer needs to lay out the tiles. */
export interface DeepZoomLayout {
  readonly widthPx: number;
  readonly heightPx: number;
  readonly tileSizePx: number;
  /** The zoom level of level 0's own pixels: ceil(log2(max side)). */
  readonly maxLevel: number;
}

export class SlideTiles {
  readonly layout: DeepZoomLayout;
  readonly #level0: SlideLevel;

  constructor(
    private readonly levels: readonly SlideLevel[],
    private readonly reader: PatchReader,
  ) {
    const level0 = levels[0];
    if (!level0) throw new PathembedError('NO_MATCHING_LEVEL', 'The slide has no levels to show');
    this.#level0 = level0;
    this.layout = {
      widthPx: level0.widthPx,
      heightPx: level0.heightPx,
      tileSizePx: DEEP_ZOOM_TILE_PX,
      maxLevel: Math.ceil(Math.log2(Math.max(level0.widthPx, level0.heightPx, 1))),
    };
  }

  /** The level-0 rectangle of tile (col, row) at zoom `z`, and its downsample; NOT_FOUND outside. */
  tileRect(z: number, col: number, row: number): { rect: RectPx; downsample: number } {
    const { maxLevel, widthPx, heightPx, tileSizePx } = this.layout;
    if (!Number.isInteger(z) || z < 0 || z > maxLevel || !Number.isInteger(col) || !Number.isInteger(row)) {
      throw new PathembedError('NOT_FOUND', `No tile ${z}/${col}_${row}`, { z, col, row });
    }
    const downsample = 2 ** (maxLevel - z);
    // OpenSeadragon's level size: ceil(side / downsample).
    const levelW = Math.ceil(widthPx / downsample);
    const levelH = Math.ceil(heightPx / downsample);
    const x = col * tileSizePx;
    const y = row * tileSizePx;
    if (col < 0 || row < 0 || x >= levelW || y >= levelH) {
      throw new PathembedError('NOT_FOUND', `No tile ${z}/${col}_${row}`, { z, col, row });
    }
    return {
      rect: { x, y, width: Math.min(tileSizePx, levelW - x), height: Math.min(tileSizePx, levelH - y) },
      downsample,
    };
  }

  /** The RGB pixels of a deep-zoom tile. */
  async tile(z: number, col: number, row: number, signal?: AbortSignal): Promise<RgbFrame> {
    const { rect, downsample } = this.tileRect(z, col, row);
    return this.readDownsampled(rect, downsample, signal);
  }

  /**
   * A level-0 rectangle shrunk so its longer side is at most `maxSidePx` (never enlarged): patch
   * thumbnails. Parts outside the image are black, as in patches.
   */
  async region(level0: RectPx, maxSidePx: number, signal?: AbortSignal): Promise<RgbFrame> {
    const side = Math.max(level0.width, level0.height);
    const downsample = Math.max(1, side / Math.min(maxSidePx, MAX_REGION_SIDE_PX));
    const rect = {
      // Whole pixels of the shrunk grid: a thumbnail may start up to half a pixel off.
      x: Math.round(level0.x / downsample),
      y: Math.round(level0.y / downsample),
      width: Math.max(1, Math.round(level0.width / downsample)),
      height: Math.max(1, Math.round(level0.height / downsample)),
    };
    return this.readDownsampled(rect, downsample, signal);
  }

  /** `rect` in the grid of level 0 downsampled by `downsample`, from the best stored level. */
  async readDownsampled(rect: RectPx, downsample: number, signal?: AbortSignal): Promise<RgbFrame> {
    let level = this.#level0;
    let levelDownsample = 1;
    for (const candidate of this.levels) {
      const d = this.#level0.widthPx / candidate.widthPx;
      // Within 1 % counts as the level's own grid (stored sizes are rounded).
      if (d <= downsample * 1.01 && d > levelDownsample) {
        level = candidate;
        levelDownsample = d;
      }
    }
    const scale = downsample / levelDownsample;
    const readPx = rect.width * scale * (rect.height * scale);
    if (readPx > MAX_READ_PX) {
      throw new PathembedError(
        'PAYLOAD_TOO_LARGE',
        `This picture would read ${Math.round(readPx)} stored pixels (the slide has no level coarse enough); at most ${MAX_READ_PX}: zoom in`,
        { readPx: Math.round(readPx), maxReadPx: MAX_READ_PX, downsample },
      );
    }
    const exact = Math.abs(scale - 1) < 0.01;
    return this.reader.readScaled({ level, scale: exact ? 1 : scale }, rect, signal ? { signal } : {});
  }
}
