/**
 * Unit conversions, in one place. DICOM states pixel spacing and imaged sizes in millimetres;
 * pathologists and Path Foundation think in micrometres per pixel. Geometry types carry their
 * unit in their names (`RectPx`, `SpacingUm`, `pixelSpacingMm`), and values cross units only here.
 */

export const UM_PER_MM = 1000;

/** A spacing or size along x and y in micrometres. */
export interface SpacingUm {
  readonly x: number;
  readonly y: number;
}

/** A spacing along x and y in millimetres, as DICOM states it. */
export interface SpacingMm {
  readonly x: number;
  readonly y: number;
}

export function mmToUm(mm: number): number {
  return mm * UM_PER_MM;
}

export function umToMm(um: number): number {
  return um / UM_PER_MM;
}

export function spacingMmToUm(mm: SpacingMm): SpacingUm {
  return { x: mmToUm(mm.x), y: mmToUm(mm.y) };
}
