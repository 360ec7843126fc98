/**
 * The frame decoder: checks a frame's transfer syntax and pixel description, dispatches it to
 * the codec for its transfer syntax, and guarantees what comes back is an 8-bit RGB frame of the
 * size the header promised. Owns the worker pool the WASM codecs share and the native JPEG
 * decoder, and decides which decodes JPEG.
 */
import os from 'node:os';
import { isPathembedError, PathembedError } from '../errors.js';
import { RGB_CHANNELS } from './color.js';
import { FrameBufferPool } from './frame-buffer-pool.js';
import { decodeJpeg, type JpegDecoders } from './jpeg.js';
import { decodeJpegLossless } from './jpeg-lossless.js';
import { decodeJpegLs } from './jpeg-ls.js';
import { decodeJpeg2000 } from './jpeg2000.js';
import { DEFAULT_LIBTURBOJPEG, NativeJpegDecoder } from './native-jpeg-decoder.js';
import { NativeJpegSharing } from './native-jpeg-sharing.js';
import { assertDecodable } from './photometric.js';
import { decodeRle } from './rle.js';
import {
  type CodecFamily,
  codecFamily,
  supportedTransferSyntaxes,
  transferSyntaxName,
} from './transfer-syntax.js';
import type { FrameDescription, RgbFrame } from './types.js';
import { decodeUncompressed } from './uncompressed.js';
import type { WasmCodec } from './wasm-protocol.js';
import { WasmWorkerPool } from './wasm-worker-pool.js';

/** Which libjpeg-turbo decodes JPEG frames (Config.PATHEMBED_JPEG_DECODER). */
export type JpegDecoderChoice = 'auto' | 'native' | 'wasm';

export interface FrameDecoderOptions {
  /** Worker threads for the WASM decoders: a positive count (see `decodeThreadCount` for 0 in config). */
  decodeThreads: number;
  /** Default `auto`: the native decoder when its library loads, else the WASM one. */
  jpegDecoder?: JpegDecoderChoice;
  /** The TurboJPEG library for the native decoder (Config.PATHEMBED_LIBTURBOJPEG). */
  libturbojpeg?: string;
  /**
   * Bytes of decoded-frame buffers kept for reuse between slide readers (`recycle`); default 0,
   * none. The frame cache's budget (Config.PATHEMBED_FRAME_CACHE_BYTES) is the natural bound.
   */
  reuseBytes?: number;
}

/** The codecs that decode in the worker pool, by codec family (the rest run on the calling thread). */
const WORKER_CODECS: Partial<Record<CodecFamily, WasmCodec>> = {
  jpeg: 'jpeg',
  jpeg2000: 'jpeg2000',
  'jpeg-ls': 'jpeg-ls',
  'jpeg-lossless': 'jpeg-lossless',
};

/** The pool size Config.PATHEMBED_DECODE_THREADS asks for: 0 means one worker per core the process may use. */
export function decodeThreadCount(decodeThreads: number): number {
  return decodeThreads === 0 ? os.availableParallelism() : decodeThreads;
}

export class FrameDecoder {
  readonly #pool: WasmWorkerPool;
  readonly #jpeg: JpegDecoders;
  /** The native JPEG decoder of this thread (the one `#jpeg.native` shares), closed with it. */
  readonly #native: NativeJpegDecoder | undefined;
  readonly #buffers: FrameBufferPool;
  /** Why `auto` settled for the WASM JPEG decoder (the native library's load error). */
  readonly #nativeUnavailable: string | undefined;
  #closed = false;

  /** Throws JPEG_DECODER_UNAVAILABLE when `jpegDecoder` is `native` and its library does not load. */
  constructor(options: FrameDecoderOptions) {
    const { native, unavailable } = nativeJpegDecoder(options);
    // With the native decoder, the workers load it too and take a share of the JPEG frames.
    this.#pool = new WasmWorkerPool(options.decodeThreads, {
      nativeJpeg: native !== undefined,
      ...(options.libturbojpeg ? { libturbojpeg: options.libturbojpeg } : {}),
    });
    this.#buffers = new FrameBufferPool(options.reuseBytes ?? 0);
    this.#native = native;
    this.#jpeg = {
      ...(native ? { native: new NativeJpegSharing(native, this.#pool, this.#buffers) } : {}),
      pool: this.#pool,
    };
    this.#nativeUnavailable = unavailable;
  }

  /** Which decoder JPEG frames go to first (the worker's start log says it). */
  get jpegDecoder(): 'native' | 'wasm' {
    return this.#jpeg.native ? 'native' : 'wasm';
  }

  /** Set when `auto` wanted the native JPEG decoder and could not load it: the reason, for a warning. */
  get nativeJpegUnavailable(): string | undefined {
    return this.#nativeUnavailable;
  }

  /**
   * Starts the decode workers now (they otherwise start on the first frame that needs them), so
   * that their start-up overlaps the caller's next wait. Given the transfer syntax about to be
   * read (the frame cache passes it while the frames are fetched), they start only if that codec
   * runs in them, with its decoder compiling first. Without one (a slide not opened yet) they
   * start for JPEG, the common case: with the native decoder they load it and share the JPEG
   * frames with the main thread once ready (native-jpeg-sharing.ts); until then the main thread
   * decodes alone, so a worker still starting never holds a frame up.
   */
  warmUp(transferSyntaxUid?: string): void {
    if (this.#closed) return;
    const jpeg: WasmCodec = this.#jpeg.native ? 'jpeg-native' : 'jpeg';
    if (transferSyntaxUid === undefined) {
      this.#pool.warmUp(jpeg);
      return;
    }
    const family = codecFamily(transferSyntaxUid);
    const codec = family && WORKER_CODECS[family];
    if (!codec) return;
    this.#pool.warmUp(codec === 'jpeg' ? jpeg : codec);
  }

  /** Resolves once the workers started so far are ready to take frames (a worker process's start-up). */
  ready(): Promise<void> {
    return this.#pool.ready();
  }

  /**
   * Decodes one frame to RGB. Rejects with UNSUPPORTED_TRANSFER_SYNTAX, UNSUPPORTED_PHOTOMETRIC
   * (bit depth, samples, colour model) or FRAME_DECODE_ERROR (corrupt data, wrong size).
   * `encoded` is never modified or detached.
   */
  async decode(encoded: Uint8Array, transferSyntaxUid: string, desc: FrameDescription): Promise<RgbFrame> {
    if (this.#closed) throw new PathembedError('INTERNAL', 'The frame decoder is closed');
    const family = codecFamily(transferSyntaxUid);
    if (family === undefined) {
      const name = transferSyntaxName(transferSyntaxUid);
      throw new PathembedError(
        'UNSUPPORTED_TRANSFER_SYNTAX',
        `Transfer syntax ${transferSyntaxUid}${name ? ` (${name})` : ''} has no decoder; supported: ${supportedTransferSyntaxes().join(', ')}`,
        { transferSyntaxUid, ...(name ? { transferSyntaxName: name } : {}) },
      );
    }
    assertDecodable(desc);

    let frame: RgbFrame;
    try {
      switch (family) {
        case 'jpeg':
          frame = await decodeJpeg(encoded, desc, this.#jpeg);
          break;
        case 'jpeg-lossless':
          frame = await decodeJpegLossless(encoded, desc, this.#pool);
          break;
        case 'jpeg2000':
          frame = await decodeJpeg2000(encoded, desc, this.#pool);
          break;
        case 'jpeg-ls':
          frame = await decodeJpegLs(encoded, desc, this.#pool);
          break;
        case 'uncompressed':
          frame = decodeUncompressed(encoded, desc);
          break;
        case 'rle':
          frame = decodeRle(encoded, desc);
          break;
      }
    } catch (err) {
      if (isPathembedError(err)) {
        throw new PathembedError(
          err.code,
          err.message,
          { ...err.details, transferSyntaxUid },
          { cause: err },
        );
      }
      const reason = err instanceof Error ? err.message : String(err);
      throw new PathembedError(
        'FRAME_DECODE_ERROR',
        `Frame (${transferSyntaxUid}) could not be decoded: ${reason}`,
        { transferSyntaxUid },
        { cause: err },
      );
    }

    if (frame.width !== desc.columns || frame.height !== desc.rows) {
      throw new PathembedError(
        'FRAME_DECODE_ERROR',
        `Frame decoded to ${frame.width}x${frame.height} but the header says ${desc.columns}x${desc.rows} (Columns x Rows)`,
        {
          transferSyntaxUid,
          decodedWidth: frame.width,
          decodedHeight: frame.height,
          columns: desc.columns,
          rows: desc.rows,
        },
      );
    }
    if (frame.data.length !== frame.width * frame.height * RGB_CHANNELS) {
      throw new PathembedError(
        'INTERNAL',
        `Codec for ${transferSyntaxUid} returned ${frame.data.length} bytes for ${frame.width}x${frame.height} RGB`,
        { transferSyntaxUid },
      );
    }
    return frame;
  }

  /** JPEG frames the workers decoded with the native decoder, sharing the main thread's (for tests and metrics). */
  get jpegFramesDecodedInWorkers(): number {
    return this.#jpeg.native?.framesInWorkers ?? 0;
  }

  /** Decode worker threads running now (for tests and metrics). */
  get workerCount(): number {
    return this.#pool.workerCount;
  }

  /** Bytes of frame buffers held for reuse now. */
  get reusableBytes(): number {
    return this.#buffers.heldBytes;
  }

  /**
   * Takes back a frame this decoder returned, for a later decode to write into. The caller
   * promises nothing reads it any more. Frames whose buffers it did not make are ignored.
   */
  recycle(frame: RgbFrame): void {
    if (!this.#closed) this.#buffers.give(frame.data);
  }

  /** Stops the decode workers. Safe to call more than once. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#native?.close();
    this.#buffers.clear();
    await this.#pool.close();
  }
}

function nativeJpegDecoder(options: FrameDecoderOptions): {
  native?: NativeJpegDecoder;
  unavailable?: string;
} {
  const choice = options.jpegDecoder ?? 'auto';
  if (choice === 'wasm') return {};
  try {
    return { native: new NativeJpegDecoder(options.libturbojpeg ?? DEFAULT_LIBTURBOJPEG) };
  } catch (err) {
    // auto: a machine without the library decodes with the WASM build, same pixels, slower.
    if (choice === 'auto' && isPathembedError(err, 'JPEG_DECODER_UNAVAILABLE'))
      return { unavailable: err.message };
    throw err;
  }
}
