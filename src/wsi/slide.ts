/**
 * The slide facade: a frame source and the slide model built from its metadata, with the look-ups
 * callers need. Opening asks the source for metadata once; `slideFromPyramid` reuses a model planned
 * elsewhere (a worker given a job) without asking again.
 */
import { PathembedError } from '../errors.js';
import type { FrameSource } from './frame-source.js';
import { chooseLevel, type LevelChoice } from './level-choice.js';
import type { AssociatedImage, AssociatedImageKind, PyramidLevel, SlidePyramid } from './slide-level.js';
import { associatedImage, buildSlidePyramid } from './slide-pyramid.js';

export interface Slide {
  readonly pyramid: SlidePyramid;
  readonly source: FrameSource;
  /** Level `index` (0 = finest); throws INVALID_ARGUMENT for an index the slide does not have. */
  level(index: number): PyramidLevel;
  /**
   * The level for a target spacing in um/px and the downsample factor to apply to it; see
   * level-choice.ts. `tolerance` is relative (PATHEMBED_LEVEL_TOLERANCE).
   */
  levelForSpacing(targetUm: number, tolerance: number): LevelChoice<PyramidLevel>;
  associatedImage(kind: AssociatedImageKind): AssociatedImage | undefined;
  close(): Promise<void>;
}

/** A slide over a source with an already-built model. */
export function slideFromPyramid(pyramid: SlidePyramid, source: FrameSource): Slide {
  return {
    pyramid,
    source,
    level(index) {
      const level = pyramid.levels[index];
      if (!level) {
        throw new PathembedError(
          'INVALID_ARGUMENT',
          `The slide has levels 0..${pyramid.levels.length - 1}, not ${index}`,
          { index, levelCount: pyramid.levels.length },
        );
      }
      return level;
    },
    levelForSpacing(targetUm, tolerance) {
      return chooseLevel(pyramid.levels, targetUm, { tolerance });
    },
    associatedImage(kind) {
      return associatedImage(pyramid, kind);
    },
    async close() {
      await source.close?.();
    },
  };
}

/** Reads the series' metadata from the source and builds its slide model. */
export async function openSlide(source: FrameSource, signal?: AbortSignal): Promise<Slide> {
  const metadata = await source.seriesMetadata(signal);
  return slideFromPyramid(buildSlidePyramid(metadata), source);
}
