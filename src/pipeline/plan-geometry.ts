/**
 * What a plan's geometry means in physical and level-0 terms: the spacing of its target grid (the
 * level's real spacing times the downsample, which may differ slightly from the requested spacing
 * when a level matched within tolerance) and how many level-0 pixels one grid pixel spans.
 */
import type { SlidePlan } from './job-types.js';

const UM_PER_MM = 1000;

/** Micrometres per target-grid pixel, along columns (x) and rows (y). */
export function gridSpacingUm(plan: SlidePlan): { x: number; y: number } {
  return {
    x: plan.level.pixelSpacingMm.x * UM_PER_MM * plan.levelScale,
    y: plan.level.pixelSpacingMm.y * UM_PER_MM * plan.levelScale,
  };
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
    x: grid.x / (plan.baseLevel.pixelSpacingMm.x * UM_PER_MM),
    y: grid.y / (plan.baseLevel.pixelSpacingMm.y * UM_PER_MM),
  };
}
