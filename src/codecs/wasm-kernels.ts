/**
 * The synchronous decoders that run inside a decode worker: libjpeg-turbo (JPEG baseline and
 * extended), OpenJPEG (JPEG 2000, HTJ2K), CharLS (JPEG-LS), all as WASM modules initialised once
 * per worker on first use, and jpeg-lossless-decoder-js. Each turns a codestream into 8-bit pixel-interleaved samples, or a
 * failure reply; nothing here throws across the thread boundary.
 */
import { createRequire } from 'node:module';
import { isPathembedError } from '../errors.js';
import { planarToInterleaved } from './color.js';
import { DEFAULT_LIBTURBOJPEG, NativeJpegDecoder, NativeJpegRefusal } from './native-jpeg-decoder.js';
import type {
  WasmCodec,
  WasmDecodedSamples,
  WasmDecodeFailure,
  WasmDecodeReply,
  WasmDecodeRequest,
} from './wasm-protocol.js';

const require = createRequire(import.meta.url);

const MAX_BITS = 8;
const GREY_SAMPLES = 1;
const COLOUR_SAMPLES = 3;
/** CharLS interleave mode 0: the decoded buffer holds whole planes, one component after another. */
const CHARLS_INTERLEAVE_NONE = 0;
/** What an Emscripten abort throws (WebAssembly.RuntimeError). */
const EMSCRIPTEN_ABORT_ERROR = 'RuntimeError';
const MARKER_PREFIX = 0xff;
const EOI = 0xd9;
/** Zero bytes put before EOI for jpeg-lossless-decoder-js's read-ahead (it needs more than 4). */
const SCAN_END_ZERO_BYTES = 8;
/** Keep at most this many lines of OpenJPEG's log for one error message. */
const MAX_LOG_LINES = 5;

interface WasmFrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  isSigned?: boolean;
}

interface EmscriptenOptions {
  print?: (text: string) => void;
  printErr?: (text: string) => void;
}

interface EmbindObject {
  delete(): void;
}

interface J2KDecoder extends EmbindObject {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): WasmFrameInfo;
  getDecodedBuffer(): Uint8Array;
  getColorSpace(): number;
}

interface JpegLSDecoder extends EmbindObject {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): WasmFrameInfo;
  getInterleaveMode(): number;
  getDecodedBuffer(): Uint8Array;
}

interface TurboJpegDecoder extends EmbindObject {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): WasmFrameInfo;
  getDecodedBuffer(): Uint8Array;
}

interface EmscriptenModule {
  getExceptionMessage?: (pointer: number) => unknown;
}

interface OpenJpegModule extends EmscriptenModule {
  J2KDecoder: new () => J2KDecoder;
}

interface LibJpegTurboModule extends EmscriptenModule {
  JPEGDecoder: new () => TurboJpegDecoder;
}

interface CharlsModule extends EmscriptenModule {
  JpegLSDecoder: new () => JpegLSDecoder;
}

interface LosslessDecoder {
  decode(buffer: ArrayBuffer, offset: number, length: number): Uint8Array | Uint16Array;
  xDim: number;
  yDim: number;
  numComp: number;
  numBytes: number;
}

type Factory<M> = (options: EmscriptenOptions) => Promise<M>;

/** OpenJPEG reports problems only through its log callbacks, so each decode collects them. */
let openJpegLog: string[] = [];
let openJpeg: Promise<OpenJpegModule> | undefined;
let charls: Promise<CharlsModule> | undefined;
let libJpegTurbo: Promise<LibJpegTurboModule> | undefined;

function loadLibJpegTurbo(): Promise<LibJpegTurboModule> {
  const factory =
    require('@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs') as Factory<LibJpegTurboModule>;
  libJpegTurbo ??= factory({ print: () => {}, printErr: () => {} });
  return libJpegTurbo;
}

function loadOpenJpeg(): Promise<OpenJpegModule> {
  // The decode-only builds are smaller and start faster than the encoder+decoder ones.
  const factory = require('@cornerstonejs/codec-openjpeg/decodewasmjs') as Factory<OpenJpegModule>;
  openJpeg ??= factory({ print: (t) => openJpegLog.push(t), printErr: (t) => openJpegLog.push(t) });
  return openJpeg;
}

function loadCharls(): Promise<CharlsModule> {
  const factory = require('@cornerstonejs/codec-charls/decodewasmjs') as Factory<CharlsModule>;
  charls ??= factory({ print: () => {}, printErr: () => {} });
  return charls;
}

/** A decoder module that would not load: the worker's fault, not the frame's (FRAME_DECODER_UNAVAILABLE). */
class DecoderUnavailable extends Error {}

function unavailable(codec: string, err: unknown): DecoderUnavailable {
  return new DecoderUnavailable(
    `The ${codec} decoder could not be loaded in a decode worker: ${describeThrown(undefined, err)}`,
  );
}

/** The decoder module `load` gives, or a DecoderUnavailable saying which one would not load and why. */
async function loaded<M>(codec: string, load: () => Promise<M>): Promise<M> {
  try {
    return await load();
  } catch (err) {
    throw unavailable(codec, err);
  }
}

class KernelError extends Error {
  constructor(
    message: string,
    readonly code: WasmDecodeFailure['code'] = 'FRAME_DECODE_ERROR',
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

function checkFormat(codec: string, info: WasmFrameInfo): void {
  if (info.bitsPerSample > MAX_BITS || info.isSigned) {
    throw new KernelError(
      `${codec} codestream holds ${info.isSigned ? 'signed ' : ''}${info.bitsPerSample}-bit samples; only unsigned ${MAX_BITS}-bit samples are supported`,
      'UNSUPPORTED_PHOTOMETRIC',
    );
  }
  if (info.componentCount !== GREY_SAMPLES && info.componentCount !== COLOUR_SAMPLES) {
    throw new KernelError(
      `${codec} codestream has ${info.componentCount} components; only ${GREY_SAMPLES} or ${COLOUR_SAMPLES} are supported`,
      'UNSUPPORTED_PHOTOMETRIC',
    );
  }
}

function checkLength(codec: string, info: WasmFrameInfo, data: Uint8Array): void {
  const expected = info.width * info.height * info.componentCount;
  if (data.length !== expected) {
    throw new KernelError(
      `${codec} decoder returned ${data.length} bytes for ${info.width}x${info.height}x${info.componentCount} (${expected} expected)`,
    );
  }
}

/** Embind returns a fresh Uint8ClampedArray copied out of WASM memory; view it as bytes. */
function asBytes(view: Uint8Array | Uint8ClampedArray): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

function describeThrown(module: EmscriptenModule | undefined, err: unknown): string {
  // C++ exceptions reach JavaScript as a pointer; the module can turn it into its what() text.
  if (typeof err === 'number' && module?.getExceptionMessage) {
    const text = module.getExceptionMessage(err);
    return Array.isArray(text) ? text.filter(Boolean).join(': ') : String(text);
  }
  return err instanceof Error ? err.message : String(err);
}

async function decodeJpeg2000(encoded: Uint8Array): Promise<WasmDecodedSamples> {
  const module = await loaded('JPEG 2000', loadOpenJpeg);
  // A fresh decoder per frame: a reused one keeps the previous frame's info after a failed decode.
  const decoder = new module.J2KDecoder();
  openJpegLog = [];
  try {
    decoder.getEncodedBuffer(encoded.length).set(encoded);
    try {
      decoder.decode();
    } catch (err) {
      throw new KernelError(`JPEG 2000 decode failed: ${describeThrown(module, err)}`);
    }
    const info = decoder.getFrameInfo();
    // OpenJPEG may report an error and still hand back an image (a tile it gave up on, left
    // blank): any reported error fails the frame.
    const errors = openJpegLog.filter((line) => line.includes('[ERROR]')).slice(0, MAX_LOG_LINES);
    if (info.width === 0 || info.height === 0 || errors.length > 0) {
      throw new KernelError(`JPEG 2000 decode failed: ${errors.join(' ').trim() || 'no image decoded'}`);
    }
    checkFormat('JPEG 2000', info);
    const data = asBytes(decoder.getDecodedBuffer());
    checkLength('JPEG 2000', info, data);
    return {
      width: info.width,
      height: info.height,
      samplesPerPixel: info.componentCount,
      data,
      colourSpace: decoder.getColorSpace(),
    };
  } finally {
    decoder.delete();
  }
}

/**
 * libjpeg-turbo (tjDecompress2 to RGB or grey): libjpeg reads the stream's colour space from its
 * own markers (JFIF, Adobe, component ids) and converts YCbCr itself, as sharp's libjpeg-turbo
 * does, with the same IDCT and upsampling, so the samples are the same bytes (docs/decisions.md
 * "JPEG decoder"). A truncated or corrupt stream throws; libjpeg's warnings do not.
 */
async function decodeJpegBaseline(encoded: Uint8Array): Promise<WasmDecodedSamples> {
  const module = await loaded('JPEG', loadLibJpegTurbo);
  const decoder = new module.JPEGDecoder();
  try {
    decoder.getEncodedBuffer(encoded.length).set(encoded);
    try {
      decoder.decode();
    } catch (err) {
      throw new KernelError(`JPEG decode failed: ${describeThrown(module, err)}`);
    }
    const info = decoder.getFrameInfo();
    checkFormat('JPEG', info);
    const data = asBytes(decoder.getDecodedBuffer());
    checkLength('JPEG', info, data);
    return { width: info.width, height: info.height, samplesPerPixel: info.componentCount, data };
  } finally {
    decoder.delete();
  }
}

async function decodeJpegLs(encoded: Uint8Array): Promise<WasmDecodedSamples> {
  const module = await loaded('JPEG-LS', loadCharls);
  const decoder = new module.JpegLSDecoder();
  try {
    decoder.getEncodedBuffer(encoded.length).set(encoded);
    try {
      decoder.decode();
    } catch (err) {
      throw new KernelError(`JPEG-LS decode failed: ${describeThrown(module, err)}`);
    }
    const info = decoder.getFrameInfo();
    checkFormat('JPEG-LS', info);
    let data = asBytes(decoder.getDecodedBuffer());
    checkLength('JPEG-LS', info, data);
    if (info.componentCount === COLOUR_SAMPLES && decoder.getInterleaveMode() === CHARLS_INTERLEAVE_NONE) {
      data = planarToInterleaved(data, info.width * info.height, COLOUR_SAMPLES);
    }
    return { width: info.width, height: info.height, samplesPerPixel: info.componentCount, data };
  } finally {
    decoder.delete();
  }
}

/**
 * jpeg-lossless-decoder-js reads past the last code of a scan, so where the scan ends right at
 * EOI it takes marker bits for data and gets the last pixels wrong (seen on DCMTK's streams).
 * libjpeg feeds zero bits once entropy-coded data runs out; zero bytes inserted before EOI (after
 * dropping fill bytes) give this decoder the same.
 */
function padScanEnd(encoded: Uint8Array): Uint8Array {
  let eoi = encoded.length - 2;
  while (eoi >= 0 && !(encoded[eoi] === MARKER_PREFIX && encoded[eoi + 1] === EOI)) eoi--;
  if (eoi < 0) return encoded;
  let dataEnd = eoi;
  while (dataEnd > 0 && encoded[dataEnd - 1] === MARKER_PREFIX) dataEnd--;
  const padded = new Uint8Array(dataEnd + SCAN_END_ZERO_BYTES + 2);
  padded.set(encoded.subarray(0, dataEnd));
  padded[padded.length - 2] = MARKER_PREFIX;
  padded[padded.length - 1] = EOI;
  return padded;
}

function losslessDecoderClass(): new () => LosslessDecoder {
  try {
    return (require('jpeg-lossless-decoder-js') as { Decoder: new () => LosslessDecoder }).Decoder;
  } catch (err) {
    throw unavailable('JPEG lossless', err);
  }
}

function decodeJpegLossless(encoded: Uint8Array): WasmDecodedSamples {
  const Decoder = losslessDecoderClass();
  const decoder = new Decoder();
  const stream = padScanEnd(encoded);
  let out: Uint8Array | Uint16Array;
  try {
    out = decoder.decode(stream.buffer as ArrayBuffer, stream.byteOffset, stream.byteLength);
  } catch (err) {
    throw new KernelError(`JPEG lossless decode failed: ${describeThrown(undefined, err)}`);
  }
  const info: WasmFrameInfo = {
    width: decoder.xDim,
    height: decoder.yDim,
    componentCount: decoder.numComp,
    bitsPerSample: decoder.numBytes * MAX_BITS,
  };
  if (!out || info.width === 0) throw new KernelError('JPEG lossless decode failed: no image decoded');
  checkFormat('JPEG lossless', info);
  const data = asBytes(out as Uint8Array);
  checkLength('JPEG lossless', info, data);
  return { width: info.width, height: info.height, samplesPerPixel: info.componentCount, data };
}

/** This worker's native JPEG decoder: made on first use (or preload), or why it could not be. */
let nativeJpeg: NativeJpegDecoder | Error | undefined;
let nativeJpegLibrary = DEFAULT_LIBTURBOJPEG;

/** The TurboJPEG library `jpeg-native` loads (the worker's start-up data says which). */
export function useLibTurboJpeg(library: string | undefined): void {
  if (library !== undefined) nativeJpegLibrary = library;
}

function nativeJpegDecoder(): NativeJpegDecoder {
  if (nativeJpeg === undefined) {
    try {
      nativeJpeg = new NativeJpegDecoder(nativeJpegLibrary);
    } catch (err) {
      nativeJpeg = err instanceof Error ? err : new Error(String(err));
    }
  }
  if (nativeJpeg instanceof Error) throw nativeJpeg;
  return nativeJpeg;
}

/** Whether `jpeg-native` can decode in this worker (loads the library if not yet). */
export function nativeJpegReady(): boolean {
  try {
    nativeJpegDecoder();
    return true;
  } catch {
    return false;
  }
}

/** A stream the native decoder refused, as a reply the pool turns back into a NativeJpegRefusal. */
class RefusedError extends Error {}

function decodeNativeJpeg(request: WasmDecodeRequest): WasmDecodedSamples {
  const { target } = request;
  // The target is the caller's recycled buffer: used when it is the right size, else new memory.
  const allocate = (bytes: number) =>
    target && target.byteLength === bytes ? target : new Uint8Array(bytes);
  try {
    return nativeJpegDecoder().decode(request.encoded, allocate, request.expected);
  } catch (err) {
    if (err instanceof NativeJpegRefusal) throw new RefusedError(err.message);
    if (isPathembedError(err)) throw new KernelError(err.message, err.code, { ...err.details });
    throw err;
  }
}

const KERNELS: Record<
  WasmCodec,
  (encoded: Uint8Array, request: WasmDecodeRequest) => WasmDecodedSamples | Promise<WasmDecodedSamples>
> = {
  jpeg: decodeJpegBaseline,
  jpeg2000: decodeJpeg2000,
  'jpeg-ls': decodeJpegLs,
  'jpeg-lossless': decodeJpegLossless,
  'jpeg-native': (_encoded, request) => decodeNativeJpeg(request),
};

/**
 * Starts compiling the WASM decoder of `codec` (the slide's, when the pool was started for one;
 * else JPEG, the most common) without waiting; a failure here resurfaces, with its reason, on the
 * first decode that needs the module. The others compile on first use: in a fresh process every
 * CPU-millisecond spent before the first patch delays it.
 */
export function preloadKernels(codec: WasmCodec = 'jpeg'): void {
  if (codec === 'jpeg-native') {
    nativeJpegReady();
    return;
  }
  const load = PRELOADERS[codec];
  // A package that will not load throws from `require` before any promise exists: caught here
  // too, or the worker would die at start and take the other codecs down with it.
  if (load)
    void Promise.resolve()
      .then(load)
      .catch(() => {});
}

const PRELOADERS: Partial<Record<WasmCodec, () => Promise<unknown>>> = {
  jpeg: loadLibJpegTurbo,
  jpeg2000: loadOpenJpeg,
  'jpeg-ls': loadCharls,
};

/** Runs one request; always resolves, with the samples or with a failure to send back. */
export async function runKernel(request: WasmDecodeRequest): Promise<WasmDecodeReply> {
  const failure = (
    code: WasmDecodeFailure['code'],
    message: string,
    more: Partial<WasmDecodeFailure> = {},
  ): WasmDecodeFailure => ({
    id: request.id,
    ok: false,
    code,
    message,
    fatal: false,
    ...more,
    ...(request.target ? { target: request.target } : {}),
  });
  try {
    const samples = await KERNELS[request.codec](request.encoded, request);
    return { id: request.id, ok: true, ...samples };
  } catch (err) {
    if (err instanceof RefusedError) return failure('FRAME_DECODE_ERROR', err.message, { refused: true });
    // Fatal: the pool replaces this worker, and a fresh thread loads the module anew.
    if (err instanceof DecoderUnavailable)
      return failure('FRAME_DECODER_UNAVAILABLE', err.message, { fatal: true });
    if (err instanceof KernelError) {
      return failure(err.code, err.message, err.details ? { details: err.details } : {});
    }
    // An Emscripten abort (RuntimeError) leaves the module's memory in an unknown state.
    return failure(
      'FRAME_DECODE_ERROR',
      `${request.codec} decoder failed: ${describeThrown(undefined, err)}`,
      {
        fatal: err instanceof Error && err.name === EMSCRIPTEN_ABORT_ERROR,
      },
    );
  }
}
