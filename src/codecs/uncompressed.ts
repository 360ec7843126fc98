/**
 * Native (uncompressed) little-endian frames, explicit or implicit VR: 8-bit samples as stored,
 * pixel-interleaved or planar, including the subsampled YBR_FULL_422 layout. The header is all
 * there is to say what the samples mean, so the photometric interpretation drives the conversion.
 */
import { PathembedError } from '../errors.js';
import { planarToInterleaved, RGB_CHANNELS, samplesToRgb, ybrFull422ToRgb } from './color.js';
import { assertHeaderDescribesSamples, isYbrFullRange, Photometric } from './photometric.js';
import type { FrameDescription, RgbFrame } from './types.js';

const PLANAR = 1;
/** A single odd-length frame is padded to even length in DICOM, so one extra byte is legal. */
const ALLOWED_PADDING_BYTES = 1;
const YBR_422_BYTES_PER_PIXEL = 2;

function assertLength(encoded: Uint8Array, expected: number, desc: FrameDescription, layout: string): void {
  if (encoded.length < expected || encoded.length > expected + ALLOWED_PADDING_BYTES) {
    throw new PathembedError(
      'FRAME_DECODE_ERROR',
      `Uncompressed frame holds ${encoded.length} bytes but ${desc.columns}x${desc.rows} ${layout} needs ${expected}`,
      { ...desc, bytes: encoded.length, expectedBytes: expected },
    );
  }
}

export function decodeUncompressed(encoded: Uint8Array, desc: FrameDescription): RgbFrame {
  assertHeaderDescribesSamples(desc, 'uncompressed');
  const width = desc.columns;
  const height = desc.rows;
  const pixelCount = width * height;
  const fullSize = pixelCount * desc.samplesPerPixel;

  // Some writers keep the YBR_FULL_422 label after expanding the chroma (e.g. after decompressing
  // a JPEG), so a full-size frame under that label is read as YBR_FULL.
  if (desc.photometricInterpretation === Photometric.YbrFull422 && encoded.length < fullSize) {
    if (width % 2 !== 0) {
      throw new PathembedError(
        'FRAME_DECODE_ERROR',
        `Uncompressed YBR_FULL_422 needs an even number of columns, got ${width}`,
        { ...desc },
      );
    }
    assertLength(encoded, pixelCount * YBR_422_BYTES_PER_PIXEL, desc, 'YBR_FULL_422');
    return { width, height, data: ybrFull422ToRgb(encoded, width, height) };
  }

  assertLength(encoded, fullSize, desc, `${desc.samplesPerPixel}-sample`);
  const stored = encoded.subarray(0, fullSize);
  const interleaved =
    desc.samplesPerPixel === RGB_CHANNELS && desc.planarConfiguration === PLANAR
      ? planarToInterleaved(stored, pixelCount, RGB_CHANNELS)
      : // Copy so the frame never aliases the caller's buffer (colour conversion works in place).
        stored.slice();
  return samplesToRgb(
    { width, height, samplesPerPixel: desc.samplesPerPixel, data: interleaved },
    {
      ybrToRgb: isYbrFullRange(desc.photometricInterpretation),
      invertMonochrome: desc.photometricInterpretation === Photometric.Monochrome1,
    },
  );
}
