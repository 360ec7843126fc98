/**
 * A JSON summary of a slide for people and scripts (`pathembed info`): per level its size, tiles,
 * frames, spacing in um, transfer syntaxes, colour model, tiling and instances; and which associated
 * images exist. Transfer syntaxes missing from the metadata (Orthanc 1.10 omits them) are read from
 * the first frame of each instance: one request per instance, never per frame.
 */
import type { FrameSource } from './frame-source.js';
import { pixelSpacingUm } from './pixel-spacing.js';
import type { AssociatedImage, AssociatedImageKind, SlidePyramid } from './slide-level.js';
import { buildSlidePyramid } from './slide-pyramid.js';

export interface LevelInfo {
  readonly index: number;
  readonly widthPx: number;
  readonly heightPx: number;
  readonly tileWidthPx: number;
  readonly tileHeightPx: number;
  readonly tilesAcross: number;
  readonly tilesDown: number;
  readonly frames: number;
  /** Tiles with a stored frame (fewer than tilesAcross * tilesDown when sparse tiles are missing). */
  readonly storedTiles: number;
  readonly pixelSpacingUm: { readonly x: number; readonly y: number };
  readonly pixelSpacingSource: string;
  readonly transferSyntaxUids: readonly string[];
  readonly photometricInterpretation: string;
  readonly samplesPerPixel: number;
  readonly tiling: string;
  readonly concatenationUid?: string;
  readonly instances: ReadonlyArray<{
    readonly sopInstanceUid: string;
    readonly frameCount: number;
    readonly transferSyntaxUid?: string;
  }>;
}

export interface AssociatedImageInfo {
  readonly sopInstanceUid: string;
  readonly widthPx: number;
  readonly heightPx: number;
  readonly photometricInterpretation: string;
  readonly transferSyntaxUid?: string;
}

export interface SlideInfo {
  readonly source: string;
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string;
  readonly levels: readonly LevelInfo[];
  /** null when the series has no such image. */
  readonly label: AssociatedImageInfo | null;
  readonly overview: AssociatedImageInfo | null;
  readonly thumbnail: AssociatedImageInfo | null;
}

export interface SlideInfoOptions {
  /** Read a missing transfer syntax from the first frame of each instance; default true. */
  readonly probeTransferSyntax?: boolean;
  readonly signal?: AbortSignal;
}

/** Summarises a built pyramid, asking the source only for transfer syntaxes the metadata lacks. */
export async function summarizeSlide(
  pyramid: SlidePyramid,
  source: FrameSource,
  options: SlideInfoOptions = {},
): Promise<SlideInfo> {
  const probe = options.probeTransferSyntax ?? true;
  const probed = new Map<string, Promise<string | undefined>>();
  const transferSyntaxOf = (sopInstanceUid: string, stated?: string): Promise<string | undefined> => {
    if (stated || !probe) return Promise.resolve(stated);
    let p = probed.get(sopInstanceUid);
    if (!p) {
      p = source
        .fetchFrames(sopInstanceUid, [0], options.signal)
        .then((frames) => frames[0]?.transferSyntaxUid);
      probed.set(sopInstanceUid, p);
    }
    return p;
  };

  const levels: LevelInfo[] = [];
  for (const level of pyramid.levels) {
    const instances = await Promise.all(
      level.instances.map(async (i) => {
        const ts = await transferSyntaxOf(i.sopInstanceUid, i.transferSyntaxUid);
        return {
          sopInstanceUid: i.sopInstanceUid,
          frameCount: i.frameCount,
          ...(ts ? { transferSyntaxUid: ts } : {}),
        };
      }),
    );
    levels.push({
      index: level.index,
      widthPx: level.widthPx,
      heightPx: level.heightPx,
      tileWidthPx: level.tileWidthPx,
      tileHeightPx: level.tileHeightPx,
      tilesAcross: level.tilesAcross,
      tilesDown: level.tilesDown,
      frames: level.frameCount,
      storedTiles: level.storedTileCount,
      pixelSpacingUm: pixelSpacingUm(level),
      pixelSpacingSource: level.pixelSpacingSource,
      transferSyntaxUids: [
        ...new Set(instances.flatMap((i) => (i.transferSyntaxUid ? [i.transferSyntaxUid] : []))),
      ],
      photometricInterpretation: level.frame.photometricInterpretation,
      samplesPerPixel: level.frame.samplesPerPixel,
      tiling: level.tiling,
      ...(level.concatenationUid ? { concatenationUid: level.concatenationUid } : {}),
      instances,
    });
  }

  const associated = async (kind: AssociatedImageKind): Promise<AssociatedImageInfo | null> => {
    const image: AssociatedImage | undefined = pyramid.associatedImages.find((a) => a.kind === kind);
    if (!image) return null;
    const ts = await transferSyntaxOf(image.sopInstanceUid, image.transferSyntaxUid);
    return {
      sopInstanceUid: image.sopInstanceUid,
      widthPx: image.widthPx,
      heightPx: image.heightPx,
      photometricInterpretation: image.photometricInterpretation,
      ...(ts ? { transferSyntaxUid: ts } : {}),
    };
  };

  return {
    source: source.description,
    studyInstanceUid: pyramid.studyInstanceUid,
    seriesInstanceUid: pyramid.seriesInstanceUid,
    levels,
    label: await associated('LABEL'),
    overview: await associated('OVERVIEW'),
    thumbnail: await associated('THUMBNAIL'),
  };
}

/** Reads the source's metadata, builds the pyramid and summarises it. */
export async function slideInfo(source: FrameSource, options: SlideInfoOptions = {}): Promise<SlideInfo> {
  const pyramid = buildSlidePyramid(await source.seriesMetadata(options.signal));
  return summarizeSlide(pyramid, source, options);
}
