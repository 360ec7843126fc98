/**
 * JPEG-LS frames (lossless and near-lossless) through CharLS in a decode worker. CharLS undoes
 * its own colour transforms (HP1-3, signalled in the stream), so the samples come out as the
 * encoder was given them and the DICOM label says whether they are YCbCr.
 */
import { samplesToRgb } from './color.js';
import { assertHeaderDescribesSamples, isYbrFullRange, Photometric } from './photometric.js';
import type { FrameDescription, RgbFrame } from './types.js';
import type { WasmWorkerPool } from './wasm-worker-pool.js';

export async function decodeJpegLs(
  encoded: Uint8Array,
  desc: FrameDescription,
  pool: WasmWorkerPool,
): Promise<RgbFrame> {
  assertHeaderDescribesSamples(desc, 'JPEG-LS');
  const samples = await pool.decode('jpeg-ls', encoded);
  return samplesToRgb(samples, {
    ybrToRgb: isYbrFullRange(desc.photometricInterpretation),
    invertMonochrome: desc.photometricInterpretation === Photometric.Monochrome1,
  });
}
