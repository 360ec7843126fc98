/**
 * The messages between the main thread and a decode worker. Encoded bytes go in and decoded
 * samples come back as transferred ArrayBuffers; errors travel as a code and a message because
 * class instances do not survive the thread boundary.
 */
import type { ErrorCode } from '../errors.js';
import type { DecodedSamples } from './types.js';

/** The synchronous decoders that run in workers. */
export type WasmCodec = 'jpeg' | 'jpeg2000' | 'jpeg-ls' | 'jpeg-lossless';

export interface WasmDecodeRequest {
  id: number;
  codec: WasmCodec;
  encoded: Uint8Array;
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
}

export type WasmDecodeReply = WasmDecodeSuccess | WasmDecodeFailure;
