/**
 * Pixel spacing of a level: which DICOM attribute to believe, and accessors in micrometres.
 *
 * Two attributes state it. PixelSpacing (0028,0030) in the Pixel Measures functional group is
 * [row spacing (y), column spacing (x)] in mm; ImagedVolumeWidth/Height (0048,0001/0002) divided by
 * TotalPixelMatrixColumns/Rows gives it too. The rule, in order:
 *
 * 1. Only one present: use it.
 * 2. Both agree within 1 % (x with x, y with y): use PixelSpacing, the attribute the standard defines
 *    for this purpose and usually the more precise one.
 * 3. PixelSpacing matches the volume read the wrong way round, either plainly swapped
 *    ([x, y] instead of [y, x]) or as OrthancWSIDicomizer 1.1 writes it, [width / rows, height / columns]
 *    (seen on every level of its output for a non-square slide, e.g. CMU-1-Small-Region: PixelSpacing
 *    0.000373\0.000667 for 2220 x 2967 px over 1.108 x 1.481 mm, whose true spacing is 0.000499 both
 *    ways): the imaged volume is the consistent reading, so use it.
 * 4. They disagree some other way: use PixelSpacing, the attribute defined for the purpose; the
 *    imaged volume is a derived size that converters round or compute from a nominal magnification.
 */
import type { DicomJsonDataset } from '../dicom-json.js';
import { items, num, values } from '../dicom-json.js';
import { Tag } from '../dicom-tags.js';
import { mmToUm, type SpacingUm, spacingMmToUm } from '../units.js';
import type { PixelSpacingSource, SlideLevel } from './slide-level.js';

/** Relative difference under which two spacings count as the same. */
const AGREEMENT = 0.01;

export interface ResolvedPixelSpacing {
  /** Millimetres per pixel along columns (x) and rows (y). */
  readonly x: number;
  readonly y: number;
  readonly source: Exclude<PixelSpacingSource, 'derived-from-level-0'>;
}

function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= AGREEMENT * Math.max(Math.abs(a), Math.abs(b));
}

function positive(n: number | undefined): n is number {
  return n !== undefined && Number.isFinite(n) && n > 0;
}

/** PixelSpacing [row, column] from the shared functional groups, else the top level, else frame 1. */
export function statedPixelSpacing(ds: DicomJsonDataset): { x: number; y: number } | undefined {
  const candidates: DicomJsonDataset[] = [];
  for (const shared of items(ds, Tag.SharedFunctionalGroupsSequence)) {
    candidates.push(...items(shared, Tag.PixelMeasuresSequence));
  }
  candidates.push(ds);
  const firstFrame = items(ds, Tag.PerFrameFunctionalGroupsSequence)[0];
  if (firstFrame) candidates.push(...items(firstFrame, Tag.PixelMeasuresSequence));
  for (const c of candidates) {
    const v = values<unknown>(c, Tag.PixelSpacing).map(Number);
    if (v.length >= 2 && positive(v[0]) && positive(v[1])) return { y: v[0], x: v[1] };
  }
  return undefined;
}

/**
 * The pixel spacing of an instance whose total pixel matrix is `widthPx` x `heightPx`, by the rule
 * in this module's comment; undefined when neither attribute is there.
 */
export function resolvePixelSpacing(
  ds: DicomJsonDataset,
  widthPx: number,
  heightPx: number,
): ResolvedPixelSpacing | undefined {
  const stated = statedPixelSpacing(ds);
  const volumeWidthMm = num(ds, Tag.ImagedVolumeWidth);
  const volumeHeightMm = num(ds, Tag.ImagedVolumeHeight);
  const volume =
    positive(volumeWidthMm) && positive(volumeHeightMm)
      ? { x: volumeWidthMm / widthPx, y: volumeHeightMm / heightPx }
      : undefined;
  if (!stated && !volume) return undefined;
  if (!stated) return { ...volume!, source: 'imaged-volume' };
  if (!volume) return { ...stated, source: 'pixel-spacing' };
  if (close(stated.x, volume.x) && close(stated.y, volume.y)) return { ...stated, source: 'pixel-spacing' };
  const plainSwap = close(stated.y, volume.x) && close(stated.x, volume.y);
  const orthancSwap =
    close(stated.y, volumeWidthMm! / heightPx) && close(stated.x, volumeHeightMm! / widthPx);
  if (plainSwap || orthancSwap) return { ...volume, source: 'imaged-volume' };
  return { ...stated, source: 'pixel-spacing' };
}

/** Micrometres per pixel along x (columns) and y (rows). */
export function pixelSpacingUm(level: Pick<SlideLevel, 'pixelSpacingMm'>): SpacingUm {
  return spacingMmToUm(level.pixelSpacingMm);
}

/** One number for a level's resolution: the mean of x and y spacing, in micrometres per pixel. */
export function meanPixelSpacingUm(level: Pick<SlideLevel, 'pixelSpacingMm'>): number {
  return mmToUm((level.pixelSpacingMm.x + level.pixelSpacingMm.y) / 2);
}
