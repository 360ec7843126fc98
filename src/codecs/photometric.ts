/**
 * The pixel formats the decoder turns into RGB: the photometric interpretations it knows, and the
 * check that refuses, with a typed error naming the value, a frame description it cannot handle
 * before any codec runs.
 */
import { PathembedError } from '../errors.js';
import type { FrameDescription } from './types.js';

export const Photometric = {
  Rgb: 'RGB',
  YbrFull: 'YBR_FULL',
  YbrFull422: 'YBR_FULL_422',
  YbrIct: 'YBR_ICT',
  YbrRct: 'YBR_RCT',
  Monochrome1: 'MONOCHROME1',
  Monochrome2: 'MONOCHROME2',
} as const;

export type PhotometricInterpretation = (typeof Photometric)[keyof typeof Photometric];

const KNOWN: ReadonlySet<string> = new Set(Object.values(Photometric));
const MONOCHROME: ReadonlySet<string> = new Set([Photometric.Monochrome1, Photometric.Monochrome2]);
/** Labels whose samples are Y, Cb, Cr in the BT.601 full-range sense once any JPEG 2000 MCT is undone. */
const YBR_FULL_RANGE: ReadonlySet<string> = new Set([Photometric.YbrFull, Photometric.YbrFull422]);

export const SUPPORTED_BITS_ALLOCATED = 8;
export const GREY_SAMPLES = 1;
export const COLOUR_SAMPLES = 3;
const UNSIGNED_PIXELS = 0;
const PLANAR_CONFIGURATIONS: ReadonlySet<number> = new Set([0, 1]);

export function isMonochrome(photometric: string): boolean {
  return MONOCHROME.has(photometric);
}

export function isYbrFullRange(photometric: string): boolean {
  return YBR_FULL_RANGE.has(photometric);
}

/** Throws a typed error when no codec could turn frames of this description into 8-bit RGB. */
export function assertDecodable(desc: FrameDescription): void {
  const details = { ...desc };
  for (const key of ['rows', 'columns'] as const) {
    const value = desc[key];
    if (!Number.isInteger(value) || value <= 0) {
      throw new PathembedError(
        'INVALID_DICOM',
        `Frame ${key} must be a positive integer, got ${value}`,
        details,
      );
    }
  }
  if (desc.bitsAllocated !== SUPPORTED_BITS_ALLOCATED) {
    throw new PathembedError(
      'UNSUPPORTED_PHOTOMETRIC',
      `BitsAllocated ${desc.bitsAllocated} is not supported; only ${SUPPORTED_BITS_ALLOCATED}-bit frames are decoded`,
      details,
    );
  }
  if (desc.bitsStored !== undefined && (desc.bitsStored < 1 || desc.bitsStored > desc.bitsAllocated)) {
    throw new PathembedError(
      'UNSUPPORTED_PHOTOMETRIC',
      `BitsStored ${desc.bitsStored} does not fit BitsAllocated ${desc.bitsAllocated}`,
      details,
    );
  }
  if (desc.pixelRepresentation !== undefined && desc.pixelRepresentation !== UNSIGNED_PIXELS) {
    throw new PathembedError(
      'UNSUPPORTED_PHOTOMETRIC',
      `PixelRepresentation ${desc.pixelRepresentation} (signed samples) is not supported; only unsigned (0)`,
      details,
    );
  }
  if (desc.samplesPerPixel !== GREY_SAMPLES && desc.samplesPerPixel !== COLOUR_SAMPLES) {
    throw new PathembedError(
      'UNSUPPORTED_PHOTOMETRIC',
      `SamplesPerPixel ${desc.samplesPerPixel} is not supported; only ${GREY_SAMPLES} or ${COLOUR_SAMPLES}`,
      details,
    );
  }
  if (!KNOWN.has(desc.photometricInterpretation)) {
    throw new PathembedError(
      'UNSUPPORTED_PHOTOMETRIC',
      `PhotometricInterpretation ${JSON.stringify(desc.photometricInterpretation)} is not supported; supported: ${[...KNOWN].join(', ')}`,
      details,
    );
  }
  if (desc.planarConfiguration !== undefined && !PLANAR_CONFIGURATIONS.has(desc.planarConfiguration)) {
    throw new PathembedError(
      'UNSUPPORTED_PHOTOMETRIC',
      `PlanarConfiguration ${desc.planarConfiguration} is not supported; only 0 (interleaved) or 1 (planar)`,
      details,
    );
  }
}

/**
 * For codecs that hand back samples exactly as stored (uncompressed, RLE, JPEG-LS), the header is
 * the only statement of what the samples are, so it must be self-consistent.
 */
export function assertHeaderDescribesSamples(desc: FrameDescription, codecName: string): void {
  const pi = desc.photometricInterpretation;
  const expected = isMonochrome(pi) ? GREY_SAMPLES : COLOUR_SAMPLES;
  if (desc.samplesPerPixel !== expected) {
    throw new PathembedError(
      'UNSUPPORTED_PHOTOMETRIC',
      `PhotometricInterpretation ${pi} needs SamplesPerPixel ${expected}, got ${desc.samplesPerPixel}`,
      { ...desc },
    );
  }
  if (pi === Photometric.YbrIct || pi === Photometric.YbrRct) {
    throw new PathembedError(
      'UNSUPPORTED_PHOTOMETRIC',
      `PhotometricInterpretation ${pi} is defined only for JPEG 2000 frames, not ${codecName}`,
      { ...desc },
    );
  }
}
