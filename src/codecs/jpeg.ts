/**
 * JPEG baseline and extended frames: through the machine's native libjpeg-turbo when it is
 * there (native-jpeg-decoder.ts), else through libjpeg-turbo as WASM in the decode workers, with
 * sharp (libvips + libjpeg-turbo, on libuv's thread pool) as the last resort for a stream the
 * others refuse; a stream none decodes fails with sharp's reason. For the 240-512 px frames of
 * slides the native decoder is several times faster than the WASM one, which is faster than
 * sharp, whose per-call pipeline costs more than the decode itself; all three give the same
 * bytes (docs/decisions.md "JPEG decoder"). All are libjpeg-turbo: libjpeg picks the stream's
 * colour space from its own markers (JFIF, Adobe, component ids) and converts to RGB itself;
 * that is the truth about the samples, so the DICOM photometric label, often wrong in real files
 * (Aperio's RGB-coded tiles labelled YBR_FULL_422), never triggers a second conversion here.
 */
import sharp from 'sharp';
import { isPathembedError, PathembedError } from '../errors.js';
import { samplesToRgb } from './color.js';
import { BENIGN_JPEG_WARNING, type JpegHeader, readJpegHeader } from './jpeg-markers.js';
import { NativeJpegRefusal } from './native-jpeg-decoder.js';
import type { NativeJpegSharing } from './native-jpeg-sharing.js';
import { COLOUR_SAMPLES, GREY_SAMPLES, Photometric } from './photometric.js';
import type { DecodedSamples, FrameDescription, RgbFrame } from './types.js';
import type { WasmWorkerPool } from './wasm-worker-pool.js';

/**
 * libjpeg reports corrupt entropy-coded data (a bad Huffman code, a segment ending early) only as
 * warnings, after which it fills the rest of the frame with guesses: such a frame must fail, so
 * decoding stops at the first warning. A frame whose first warning is the benign one
 * (BENIGN_JPEG_WARNING) is decoded again, ignoring warnings.
 */
const FAIL_ON = 'warning';
const FAIL_ON_BENIGN = 'error';

/** Decodes any JPEG stream sharp reads to its 8-bit samples, after libjpeg's own colour handling. */
export async function decodeWithSharp(
  encoded: Uint8Array,
  header: JpegHeader = readJpegHeader(encoded),
): Promise<DecodedSamples> {
  const decode = (failOn: typeof FAIL_ON | typeof FAIL_ON_BENIGN) => {
    let pipeline = sharp(encoded, { failOn, ignoreIcc: true });
    // sharp would hand a one-component stream back as three equal sRGB channels, hiding that it
    // is grey (MONOCHROME1 must then be inverted), so grey stays grey until samplesToRgb.
    if (header.components === GREY_SAMPLES) pipeline = pipeline.toColourspace('b-w');
    return (
      pipeline
        .raw({ depth: 'uchar' })
        // toBuffer, not toUint8Array: sharp 0.35's toUint8Array never frees the decoded frame
        // (~192 KiB a 256 px tile; 4000 decodes grew RSS by 768 MiB against 26 MiB with toBuffer).
        .toBuffer({ resolveWithObject: true })
    );
  };
  const { data, info } = await decode(FAIL_ON)
    .catch((err: unknown) => {
      if (err instanceof Error && BENIGN_JPEG_WARNING.test(err.message)) return decode(FAIL_ON_BENIGN);
      throw err;
    })
    .catch((err: unknown) => {
      const reason = err instanceof Error ? err.message : String(err);
      throw new PathembedError(
        'FRAME_DECODE_ERROR',
        `JPEG frame could not be decoded: ${reason}`,
        {},
        { cause: err },
      );
    });
  if (info.channels !== GREY_SAMPLES && info.channels !== COLOUR_SAMPLES) {
    throw new PathembedError(
      'UNSUPPORTED_PHOTOMETRIC',
      `JPEG frame decodes to ${info.channels} channels; only grey (1) or colour (3) streams are supported`,
      { channels: info.channels },
    );
  }
  return {
    width: info.width,
    height: info.height,
    samplesPerPixel: info.channels,
    data,
  };
}

/**
 * The JPEG decoders a FrameDecoder holds: the native one when it loaded (shared with the decode
 * workers, decoding into reused buffers), and the worker pool.
 */
export interface JpegDecoders {
  readonly native?: NativeJpegSharing | undefined;
  readonly pool: WasmWorkerPool;
}

export async function decodeJpeg(
  encoded: Uint8Array,
  desc: FrameDescription,
  decoders: JpegDecoders,
): Promise<RgbFrame> {
  const samples = await decodeSamples(encoded, decoders, { width: desc.columns, height: desc.rows });
  return samplesToRgb(samples, {
    ybrToRgb: false,
    invertMonochrome: desc.photometricInterpretation === Photometric.Monochrome1,
  });
}

async function decodeSamples(
  encoded: Uint8Array,
  { native, pool }: JpegDecoders,
  expected: { width: number; height: number },
): Promise<DecodedSamples> {
  if (native) {
    try {
      return await native.decode(encoded, expected);
    } catch (err) {
      // A stream the native path refuses (12-bit, CMYK, corrupt) goes to the decoders whose
      // refusal is the error a user sees, so both paths fail alike.
      if (!(err instanceof NativeJpegRefusal)) throw err;
    }
  }
  try {
    return await pool.decode('jpeg', encoded);
  } catch (err) {
    // A stream the WASM build cannot read (a coding process it was built without) may still be
    // one libvips reads; a stream neither reads fails with sharp's reason.
    if (!isPathembedError(err, 'FRAME_DECODE_ERROR')) throw err;
    return decodeWithSharp(encoded);
  }
}
