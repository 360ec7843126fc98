/**
 * JPEG lossless frames (process 14, selection value 1 or any): sharp first, since its
 * libjpeg-turbo reads lossless streams natively and fast; jpeg-lossless-decoder-js in a worker as
 * the fallback for streams libjpeg refuses (it will not colour-convert in lossless mode, so a
 * lossless stream marked YCbCr fails there). Lossless samples come out as stored, so the stream's
 * markers, or failing them the DICOM label, say whether they are YCbCr.
 */
import { isPathembedError, PathembedError } from '../errors.js';
import { samplesToRgb } from './color.js';
import { decodeWithSharp } from './jpeg.js';
import { readJpegHeader, streamSaysYcbcr } from './jpeg-markers.js';
import { isYbrFullRange, Photometric } from './photometric.js';
import type { DecodedSamples, FrameDescription, RgbFrame } from './types.js';
import type { WasmWorkerPool } from './wasm-worker-pool.js';

export async function decodeJpegLossless(
  encoded: Uint8Array,
  desc: FrameDescription,
  pool: WasmWorkerPool,
): Promise<RgbFrame> {
  const header = readJpegHeader(encoded);
  const streamYcbcr = streamSaysYcbcr(header);
  const headerYcbcr = isYbrFullRange(desc.photometricInterpretation);
  let samples: DecodedSamples;
  let ybrToRgb: boolean;
  try {
    samples = await decodeWithSharp(encoded, header);
    // Had the stream said YCbCr, libjpeg would have converted it (or refused); it says nothing,
    // libjpeg takes lossless samples as they are, and only the header can tell.
    ybrToRgb = streamYcbcr === undefined && headerYcbcr;
  } catch (sharpError) {
    if (!isPathembedError(sharpError, 'FRAME_DECODE_ERROR')) throw sharpError;
    try {
      samples = await pool.decode('jpeg-lossless', encoded);
    } catch (fallbackError) {
      const reason = fallbackError instanceof Error ? fallbackError.message : String(fallbackError);
      throw new PathembedError(
        'FRAME_DECODE_ERROR',
        `JPEG lossless frame could not be decoded: ${sharpError.message}; fallback decoder: ${reason}`,
        { ...desc },
        { cause: fallbackError },
      );
    }
    ybrToRgb = streamYcbcr ?? headerYcbcr;
  }
  return samplesToRgb(samples, {
    ybrToRgb,
    invertMonochrome: desc.photometricInterpretation === Photometric.Monochrome1,
  });
}
