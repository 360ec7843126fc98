/**
 * The messages between the main thread and a decode worker. Encoded bytes go in and decoded
 * samples come back as transferred ArrayBuffers; errors travel as a code and a message because
 * class instances do not survive the thread boundary.
 */
import type { ErrorCode } from '../errors.js';
import type { DecodedSamples } from './types.js';

/**
 * The synchronous decoders that run in workers: the WASM builds and jpeg-lossless-decoder-js, and
 * `jpeg-native`, the machine's libjpeg-turbo (native-jpeg-decoder.ts), with which workers share
 * the main thread's JPEG frames when there are cores for it.
 */
export type WasmCodec = 'jpeg' | 'jpeg2000' | 'jpeg-ls' | 'jpeg-lossless' | 'jpeg-native';

export interface WasmDecodeRequest {
  id: number;
  codec: WasmCodec;
  encoded: Uint8Array;
  /** The size the frame must have (DICOM Columns x Rows), checked before decoding; `jpeg-native` only. */
  expected?: { width: number; height: number };
  /** A buffer to decode into when it fits (transferred; reused memory); `jpeg-native` only. */
  target?: Uint8Array;
}

/** What a worker is given when it starts. */
export interface WasmWorkerData {
  /** The decoder to load first. */
  preload?: WasmCodec;
  /** Load the native JPEG decoder at start, to share the main thread's JPEG frames. */
  nativeJpeg?: boolean;
  /** The TurboJPEG library for `jpeg-native` (Config.PATHEMBED_LIBTURBOJPEG). */
  libturbojpeg?: string;
}

/**
 * Sent once by a worker when it has started: its native JPEG decoder loaded (or failed to), its
 * preloaded WASM decoder compiling.
 */
export interface WasmWorkerReady {
  ready: true;
  /** Whether `jpeg-native` decodes in this worker. */
  nativeJpeg: boolean;
}

/** What a JPEG 2000 decode reports beyond the samples, for the colour decision on the main thread. */
export interface WasmDecodedSamples extends DecodedSamples {
  /** OpenJPEG's colour space of the decoded image (OPJ_COLOR_SPACE); JPEG 2000 only. */
  colourSpace?: number;
}

export interface WasmDecodeSuccess extends WasmDecodedSamples {
  id: number;
  ok: true;
}

export interface WasmDecodeFailure {
  id: number;
  ok: false;
  code: ErrorCode;
  message: string;
  /** The WASM instance aborted and cannot be trusted again: the worker must be replaced. */
  fatal: boolean;
  /** `jpeg-native` handed the stream back (NativeJpegRefusal): the other JPEG decoders take it. */
  refused?: boolean;
  /** The error's details, as the main thread's decoder would have given them (sizes, etc.). */
  details?: Record<string, unknown>;
  /** The request's `target`, transferred back so that the caller's buffer pool keeps it. */
  target?: Uint8Array;
}

export type WasmDecodeReply = WasmDecodeSuccess | WasmDecodeFailure;
