/**
 * JPEG baseline and extended frames through the machine's own libjpeg-turbo (its TurboJPEG
 * library, `libturbojpeg.so.0` on Debian and Ubuntu), called through koffi's FFI. This is the
 * same decoder, with the same SIMD code, that OpenCV and so EZ-WSI run: the default (islow) IDCT
 * and fancy upsampling, the colour transform chosen by libjpeg from the stream's own markers, so
 * its samples are the bytes sharp's and the WASM build's libjpeg-turbo give (docs/decisions.md
 * "JPEG decoder").
 *
 * It decodes on the calling thread, synchronously: a 240 px slide tile takes about 0.15 ms, less
 * than koffi's asynchronous calls cost the main thread (0.3 ms a call). To use more cores, the
 * decode workers load it too and share a burst of frames with the main thread once they are ready
 * (native-jpeg-sharing.ts); until then nothing waits for a thread to start. Owns the library
 * binding and one TurboJPEG decompressor. A stream this path does not take (not 8-bit, four
 * components, corrupt) is reported as a `NativeJpegRefusal` so the caller can hand it to the
 * decoders that define the error a user sees.
 */
import { createRequire } from 'node:module';
import { PathembedError } from '../errors.js';
import { BENIGN_JPEG_WARNING } from './jpeg-markers.js';
import { COLOUR_SAMPLES, GREY_SAMPLES } from './photometric.js';
import type { DecodedSamples } from './types.js';

/** TurboJPEG pixel formats (turbojpeg.h TJPF). */
const TJPF_RGB = 0;
const TJPF_GRAY = 6;
/** TurboJPEG colour spaces of a stream (turbojpeg.h TJCS). */
const TJCS_RGB = 0;
const TJCS_YCBCR = 1;
const TJCS_GRAY = 2;
/** tjGetErrorCode: the call failed on a libjpeg warning, not an error. */
const TJERR_WARNING = 0;
/** tjDecompress2 flags: none, i.e. the accurate islow IDCT and fancy upsampling that OpenCV, sharp and the WASM build use. */
const TJ_DEFAULT_FLAGS = 0;
/** Pitch 0: rows are packed (width x channels bytes). */
const PACKED_ROWS = 0;

/** The TurboJPEG library's name on Linux distributions (Config.PATHEMBED_LIBTURBOJPEG's default). */
export const DEFAULT_LIBTURBOJPEG = 'libturbojpeg.so.0';

/** Why the native path handed a frame back: the message is libjpeg's or says what was unsupported. */
export class NativeJpegRefusal extends Error {
  override readonly name = 'NativeJpegRefusal';
}

type Handle = unknown;

interface TurboJpegApi {
  init(): Handle;
  destroy(handle: Handle): number;
  header(
    handle: Handle,
    jpeg: Uint8Array,
    size: number,
    w: number[],
    h: number[],
    ss: number[],
    cs: number[],
  ): number;
  decompress(
    handle: Handle,
    jpeg: Uint8Array,
    size: number,
    dst: Uint8Array,
    width: number,
    pitch: number,
    height: number,
    pixelFormat: number,
    flags: number,
  ): number;
  errorCode(handle: Handle): number;
  errorText(handle: Handle): string;
}

/** Each library is bound once a process; every decoder of it shares the binding. */
const bindings = new Map<string, TurboJpegApi>();

/** Binds the TurboJPEG 2.x API (also exported by libjpeg-turbo 3) of the library at `library`. */
function bind(library: string): TurboJpegApi {
  let api = bindings.get(library);
  if (!api) {
    api = bindLibrary(library);
    bindings.set(library, api);
  }
  return api;
}

const require = createRequire(import.meta.url);

function bindLibrary(library: string): TurboJpegApi {
  // Loaded here, not imported: a platform without koffi's prebuilt binary must still start and
  // fall back to the WASM decoder, with this load error as the reason.
  const koffi = require('koffi') as typeof import('koffi');
  const lib = koffi.load(library);
  return {
    init: lib.func('void *tjInitDecompress()'),
    destroy: lib.func('int tjDestroy(void *handle)'),
    header: lib.func(
      'int tjDecompressHeader3(void *handle, const uint8_t *jpegBuf, unsigned long jpegSize, _Out_ int *width, _Out_ int *height, _Out_ int *jpegSubsamp, _Out_ int *jpegColorspace)',
    ),
    decompress: lib.func(
      'int tjDecompress2(void *handle, const uint8_t *jpegBuf, unsigned long jpegSize, uint8_t *dstBuf, int width, int pitch, int height, int pixelFormat, int flags)',
    ),
    errorCode: lib.func('int tjGetErrorCode(void *handle)'),
    errorText: lib.func('const char *tjGetErrorStr2(void *handle)'),
  };
}

function allocateUnfilled(bytes: number): Uint8Array {
  return Buffer.allocUnsafeSlow(bytes);
}

function unavailable(library: string, err: unknown): PathembedError {
  const reason = err instanceof Error ? err.message : String(err);
  return new PathembedError(
    'JPEG_DECODER_UNAVAILABLE',
    `libjpeg-turbo's TurboJPEG library "${library}" could not be loaded: ${reason}. Install it (Debian/Ubuntu: apt-get install libturbojpeg0), point PATHEMBED_LIBTURBOJPEG at it, or set PATHEMBED_JPEG_DECODER=wasm`,
    { library },
    { cause: err },
  );
}

export class NativeJpegDecoder {
  readonly #api: TurboJpegApi;
  #handle: Handle;

  /**
   * Loads `library` (a file name the dynamic loader finds, or a path) and makes a decompressor.
   * Throws JPEG_DECODER_UNAVAILABLE, with the loader's reason, when the library cannot be loaded
   * or lacks the TurboJPEG API.
   */
  constructor(library: string) {
    try {
      this.#api = bind(library);
      this.#handle = this.#api.init();
    } catch (err) {
      throw unavailable(library, err);
    }
    if (!this.#handle) throw unavailable(library, new Error('tjInitDecompress returned no decompressor'));
  }

  /**
   * Decodes one JPEG stream to 8-bit grey or RGB samples, into a buffer from `allocate` (whose
   * contents it overwrites). Throws NativeJpegRefusal when the stream is not one this path
   * decodes or libjpeg reports it corrupt, and FRAME_DECODE_ERROR, before decoding anything, when
   * the stream's size is not `expected` (the DICOM Columns x Rows).
   */
  decode(
    encoded: Uint8Array,
    allocate: (bytes: number) => Uint8Array = allocateUnfilled,
    expected?: { readonly width: number; readonly height: number },
  ): DecodedSamples {
    const handle = this.#handle;
    if (!handle) throw new PathembedError('INTERNAL', 'The frame decoder is closed');
    try {
      return this.#decodeWith(handle, encoded, allocate, expected);
    } catch (err) {
      // libjpeg-turbo 2.1 leaves a decompressor that failed mid-header in a state where the next
      // stream fails too ("two SOI markers"): start the next frame on a new one.
      this.#renew();
      throw err;
    }
  }

  #decodeWith(
    handle: Handle,
    encoded: Uint8Array,
    allocate: (bytes: number) => Uint8Array,
    expected: { readonly width: number; readonly height: number } | undefined,
  ): DecodedSamples {
    const { width, height, channels } = this.#header(handle, encoded);
    // Checked before allocating: a corrupt header may claim up to 65535 x 65535 pixels.
    if (expected && (width !== expected.width || height !== expected.height)) {
      throw new PathembedError(
        'FRAME_DECODE_ERROR',
        `Frame decoded to ${width}x${height} but the header says ${expected.width}x${expected.height} (Columns x Rows)`,
        { decodedWidth: width, decodedHeight: height, columns: expected.width, rows: expected.height },
      );
    }
    // Not zero-filled: libjpeg writes every sample, or the frame fails.
    // Grey samples are expanded to RGB in new memory afterwards, so only colour ones take `allocate`'s.
    const data =
      channels === COLOUR_SAMPLES ? allocate(width * height * channels) : allocateUnfilled(width * height);
    const pixelFormat = channels === GREY_SAMPLES ? TJPF_GRAY : TJPF_RGB;
    const status = this.#api.decompress(
      handle,
      encoded,
      encoded.length,
      data,
      width,
      PACKED_ROWS,
      height,
      pixelFormat,
      TJ_DEFAULT_FLAGS,
    );
    if (status !== 0) {
      const message = this.#api.errorText(handle);
      // A benign warning comes once the scan is fully decoded: the samples are whole.
      const benign = this.#api.errorCode(handle) === TJERR_WARNING && BENIGN_JPEG_WARNING.test(message);
      if (!benign) throw new NativeJpegRefusal(`JPEG decode failed: ${message}`);
    }
    return { width, height, samplesPerPixel: channels, data };
  }

  /** Replaces the decompressor by a new one (after a failure). */
  #renew(): void {
    if (!this.#handle) return;
    this.#api.destroy(this.#handle);
    this.#handle = this.#api.init();
    if (!this.#handle) throw new PathembedError('INTERNAL', 'tjInitDecompress returned no decompressor');
  }

  /** Frees the decompressor. Safe to call more than once. */
  close(): void {
    if (this.#handle) this.#api.destroy(this.#handle);
    this.#handle = undefined;
  }

  #header(handle: Handle, encoded: Uint8Array): { width: number; height: number; channels: number } {
    const width = [0];
    const height = [0];
    const subsampling = [0];
    const colourSpace = [0];
    if (this.#api.header(handle, encoded, encoded.length, width, height, subsampling, colourSpace) !== 0) {
      throw new NativeJpegRefusal(`JPEG header could not be read: ${this.#api.errorText(handle)}`);
    }
    const cs = colourSpace[0]!;
    if (cs !== TJCS_GRAY && cs !== TJCS_RGB && cs !== TJCS_YCBCR) {
      // CMYK and YCCK: four components, which no slide should hold; the other decoders say so.
      throw new NativeJpegRefusal(`JPEG colour space ${cs} is not grey, RGB or YCbCr`);
    }
    return {
      width: width[0]!,
      height: height[0]!,
      channels: cs === TJCS_GRAY ? GREY_SAMPLES : COLOUR_SAMPLES,
    };
  }
}
