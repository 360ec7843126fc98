/**
 * What a plan's geometry means in physical and level-0 terms: the spacing of its target grid (the
 * level's real spacing times the downsample, which may differ slightly from the requested spacing
 * when a level matched within tolerance) and how many level-0 pixels one grid pixel spans.
 */
import { mmToUm, type SpacingUm, spacingMmToUm } from '../units.js';
import type { SlidePlan } from './job-types.js';

/** Micrometres per target-grid pixel, along columns (x) and rows (y). */
export function gridSpacingUm(plan: SlidePlan): SpacingUm {
  const level = spacingMmToUm(plan.level.pixelSpacingMm);
  return { x: level.x * plan.downsample, y: level.y * plan.downsample };
}

/** Mean of the two axes, the grid's nominal spacing. */
export function meanGridSpacingUm(plan: SlidePlan): number {
  const s = gridSpacingUm(plan);
  return (s.x + s.y) / 2;
}

/** Level-0 pixels per target-grid pixel, along columns (x) and rows (y). */
export function level0PerGridPixel(plan: SlidePlan): { x: number; y: number } {
  const grid = gridSpacingUm(plan);
  return {
    x: grid.x / mmToUm(plan.baseLevel.pixelSpacingMm.x),
    y: grid.y / mmToUm(plan.baseLevel.pixelSpacingMm.y),
  };
}
