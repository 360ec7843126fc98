/**
 * One resolution level of a slide pyramid as plain, JSON-serialisable data, so a slide planned
 * in one process (the API) is read in another (a worker) without asking the store again.
 * Pixel coordinates are in the level's total pixel matrix (0-based, x = column, y = row).
 * Frame indices are 0-based within their instance.
 */
import type { FrameDescription } from '../codecs/index.js';

/** The stored frame that holds one tile. */
export interface TileFrame {
  readonly instanceUid: string;
  readonly frameIndex: number;
}

export interface SlideInstance {
  readonly sopInstanceUid: string;
  readonly frameCount: number;
  /** Transfer syntax from the metadata when the store gives it (some omit it; frames carry their own). */
  readonly transferSyntaxUid?: string;
  /** 0-based index of this instance's first frame within its concatenation (0 when not concatenated). */
  readonly concatenationFrameOffset: number;
}

export type TileLayout =
  /** Frames fill the tile grid row-major across the (concatenated) instances, as TILED_FULL says. */
  | { readonly kind: 'full' }
  /**
   * Positions read per frame (TILED_SPARSE, or no DimensionOrganizationType). `tiles[row * tilesAcross + col]`
   * is `[instanceOrdinal, frameIndex]` into `instances`, or null for a missing tile (read as background).
   */
  | { readonly kind: 'sparse'; readonly tiles: ReadonlyArray<readonly [number, number] | null> };

export interface SlideLevel {
  /** 0 is the finest VOLUME level; larger is coarser. */
  readonly index: number;
  readonly widthPx: number;
  readonly heightPx: number;
  readonly tileWidthPx: number;
  readonly tileHeightPx: number;
  readonly tilesAcross: number;
  readonly tilesDown: number;
  /** Physical size of one pixel in millimetres: x along columns, y along rows. */
  readonly pixelSpacingMm: { readonly x: number; readonly y: number };
  /** How every frame of this level is laid out (rows/columns are the tile size). */
  readonly frame: FrameDescription;
  readonly instances: readonly SlideInstance[];
  readonly layout: TileLayout;
}
