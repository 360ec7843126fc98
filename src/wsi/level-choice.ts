/**
 * Which stored level serves a target pixel spacing. A level within the relative tolerance is read
 * as it is (scale 1); otherwise the nearest finer level is read and downsampled by area averaging
 * (the patch reader's job) by `scale` = target / level spacing, at most 8x. Upsampling a coarser
 * level would invent detail, so it is never chosen.
 */
import { PathembedError } from '../errors.js';
import { meanPixelSpacingUm } from './pixel-spacing.js';
import type { SlideLevel } from './slide-level.js';

/** Most downsampling the reader accepts from a finer level. */
export const MAX_DOWNSAMPLE = 8;

export interface LevelChoice<L extends SlideLevel = SlideLevel> {
  readonly level: L;
  /**
   * Target spacing / level spacing: 1 when the level matches within tolerance, else the
   * downsample factor (> 1, at most MAX_DOWNSAMPLE) the patch reader applies.
   */
  readonly scale: number;
  /** True when the level matched the target within tolerance. */
  readonly matched: boolean;
  /** The level's mean pixel spacing in micrometres per pixel. */
  readonly levelSpacingUm: number;
}

export interface LevelChoiceOptions {
  /** Relative difference of spacing under which a level counts as a match (PATHEMBED_LEVEL_TOLERANCE). */
  readonly tolerance: number;
  /** Most downsampling from a finer level; default MAX_DOWNSAMPLE (8). */
  readonly maxDownsample?: number;
}

/**
 * The level for `targetUm` micrometres per pixel. Throws NO_MATCHING_LEVEL when the target is finer
 * than the finest level, or when the nearest finer level would need more than `maxDownsample`.
 */
export function chooseLevel<L extends SlideLevel>(
  levels: readonly L[],
  targetUm: number,
  options: LevelChoiceOptions,
): LevelChoice<L> {
  if (!(targetUm > 0) || !Number.isFinite(targetUm)) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `Target pixel spacing must be a positive number of um/px, got ${targetUm}`,
      {
        targetUm,
      },
    );
  }
  if (levels.length === 0) {
    throw new PathembedError('NO_MATCHING_LEVEL', 'The slide has no levels to choose from', { targetUm });
  }
  const maxDownsample = options.maxDownsample ?? MAX_DOWNSAMPLE;
  const spaced = levels.map((level) => ({ level, spacingUm: meanPixelSpacingUm(level) }));

  let best: (typeof spaced)[number] | undefined;
  let bestDiff = Number.POSITIVE_INFINITY;
  for (const candidate of spaced) {
    const diff = Math.abs(candidate.spacingUm - targetUm) / targetUm;
    if (diff <= options.tolerance && diff < bestDiff) {
      best = candidate;
      bestDiff = diff;
    }
  }
  if (best) return { level: best.level, scale: 1, matched: true, levelSpacingUm: best.spacingUm };

  const finer = spaced.filter((c) => c.spacingUm < targetUm).sort((a, b) => b.spacingUm - a.spacingUm)[0];
  const finest = [...spaced].sort((a, b) => a.spacingUm - b.spacingUm)[0]!;
  if (!finer) {
    throw new PathembedError(
      'NO_MATCHING_LEVEL',
      `No level is fine enough for ${targetUm} um/px: the finest available is level ${finest.level.index} at ${finest.spacingUm.toPrecision(4)} um/px (tolerance ${options.tolerance * 100} %), and coarser levels are never upsampled`,
      {
        targetUm,
        finestSpacingUm: finest.spacingUm,
        finestLevel: finest.level.index,
        tolerance: options.tolerance,
      },
    );
  }
  const scale = targetUm / finer.spacingUm;
  if (scale > maxDownsample) {
    throw new PathembedError(
      'NO_MATCHING_LEVEL',
      `No level serves ${targetUm} um/px: the nearest finer level ${finer.level.index} (${finer.spacingUm.toPrecision(4)} um/px) would need ${scale.toFixed(2)}x downsampling, more than the ${maxDownsample}x allowed`,
      { targetUm, levelIndex: finer.level.index, levelSpacingUm: finer.spacingUm, scale, maxDownsample },
    );
  }
  return { level: finer.level, scale, matched: false, levelSpacingUm: finer.spacingUm };
}
