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

/** How a level's frames are positioned, as the instances declare it (DimensionOrganizationType). */
export type TilingKind =
  /** TILED_FULL: positions computed from the frame number. */
  | 'TILED_FULL'
  /** TILED_SPARSE: positions read per frame. */
  | 'TILED_SPARSE'
  /** No DimensionOrganizationType (e.g. OrthancWSIDicomizer): positions read per frame. */
  | 'UNSPECIFIED';

/** Where a level's pixel spacing came from; see slide-pyramid.ts for the rule. */
export type PixelSpacingSource = 'pixel-spacing' | 'imaged-volume' | 'derived-from-level-0';

/**
 * A level as the slide model builds it: the `SlideLevel` the patch reader needs plus what `pathembed
 * info`, logs and diagnostics show. Assignable to `SlideLevel`.
 */
export interface PyramidLevel extends SlideLevel {
  readonly tiling: TilingKind;
  /** Frames stored for the level (all concatenation parts). Equal to the tile count for TILED_FULL. */
  readonly frameCount: number;
  /** Tiles with a stored frame; fewer than tilesAcross * tilesDown when a sparse level omits some. */
  readonly storedTileCount: number;
  readonly pixelSpacingSource: PixelSpacingSource;
  /** ImageType (0008,0008) of the level's first instance; empty when absent (OrthancWSIDicomizer). */
  readonly imageType: readonly string[];
  /** ConcatenationUID when the level is a concatenation. */
  readonly concatenationUid?: string;
}

export type AssociatedImageKind = 'LABEL' | 'OVERVIEW' | 'THUMBNAIL';

/** A LABEL, OVERVIEW or THUMBNAIL image: kept apart from the pyramid, never read for patches. */
export interface AssociatedImage {
  readonly kind: AssociatedImageKind;
  readonly sopInstanceUid: string;
  readonly widthPx: number;
  readonly heightPx: number;
  readonly tileWidthPx: number;
  readonly tileHeightPx: number;
  readonly frameCount: number;
  readonly photometricInterpretation: string;
  readonly transferSyntaxUid?: string;
  /** Physical pixel size in millimetres when the instance states it. */
  readonly pixelSpacingMm?: { readonly x: number; readonly y: number };
}

/** Bumped when the JSON form of `SlidePyramid` changes incompatibly. */
export const SLIDE_PYRAMID_FORMAT = 1;

/**
 * A slide's VOLUME levels, finest first, and its associated images, as plain JSON-safe data: the
 * API plans a job from it and a worker reads frames with it without asking the store again.
 */
export interface SlidePyramid {
  readonly format: typeof SLIDE_PYRAMID_FORMAT;
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string;
  /** Finest (index 0) to coarsest. `levels[i].index === i`. */
  readonly levels: readonly PyramidLevel[];
  readonly associatedImages: readonly AssociatedImage[];
}
