/**
 * Magnification strings as EZ-WSI names them ("40X", "20X", "10X", "5X", "2.5X", ..., down to
 * 5x / 128), each the nominal pixel spacing it stands for (20X = 0.5 µm/px), so a job can ask
 * for a magnification instead of a spacing and the level choice stays one rule (level-choice.ts).
 */
import { PathembedError } from '../errors.js';

/** Magnification → nominal µm/px, as EZ-WSI's magnification table gives them. */
export const MAGNIFICATION_UM_PER_PX: Readonly<Record<string, number>> = {
  '100X': 0.1,
  '80X': 0.125,
  '40X': 0.25,
  '20X': 0.5,
  '10X': 1,
  '5X': 2,
  '2.5X': 4,
  '1.25X': 8,
  '0.625X': 16,
  '0.3125X': 32,
  '0.15625X': 64,
  '0.078125X': 128,
  '0.0390625X': 256,
};

export const MAGNIFICATIONS = Object.keys(MAGNIFICATION_UM_PER_PX);

/** The nominal pixel spacing (µm/px) of a magnification string, case-insensitive ("20x"). */
export function magnificationSpacingUm(magnification: string): number {
  const um = MAGNIFICATION_UM_PER_PX[magnification.trim().toUpperCase()];
  if (um === undefined) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `Magnification ${JSON.stringify(magnification)} is not one of ${MAGNIFICATIONS.join(', ')}`,
      { magnification },
    );
  }
  return um;
}
