/**
 * The frame decoder: checks a frame's transfer syntax and pixel description, dispatches it to
 * the codec for its transfer syntax, and guarantees what comes back is an 8-bit RGB frame of the
 * size the header promised. Owns the worker pool the WASM codecs share.
 */
import os from 'node:os';
import { isPathembedError, PathembedError } from '../errors.js';
import { RGB_CHANNELS } from './color.js';
import { decodeJpeg } from './jpeg.js';
import { decodeJpegLossless } from './jpeg-lossless.js';
import { decodeJpegLs } from './jpeg-ls.js';
import { decodeJpeg2000 } from './jpeg2000.js';
import { assertDecodable } from './photometric.js';
import { decodeRle } from './rle.js';
import { codecFamily, supportedTransferSyntaxes, transferSyntaxName } from './transfer-syntax.js';
import type { FrameDescription, RgbFrame } from './types.js';
import { decodeUncompressed } from './uncompressed.js';
import { WasmWorkerPool } from './wasm-worker-pool.js';

export interface FrameDecoderOptions {
  /** Worker threads for the decoders: a positive count (see `decodeThreadCount` for 0 in config). */
  decodeThreads: number;
}

/** The pool size Config.PATHEMBED_DECODE_THREADS asks for: 0 means one worker per core the process may use. */
export function decodeThreadCount(decodeThreads: number): number {
  return decodeThreads === 0 ? os.availableParallelism() : decodeThreads;
}

export class FrameDecoder {
  readonly #pool: WasmWorkerPool;
  #closed = false;

  constructor(options: FrameDecoderOptions) {
    this.#pool = new WasmWorkerPool(options.decodeThreads);
  }

  /**
   * Starts the decode workers now (they otherwise start on the first frame): call it before
   * reading a slide's metadata so that their start-up overlaps it.
   */
  warmUp(): void {
    if (!this.#closed) this.#pool.warmUp();
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
          frame = await decodeJpeg(encoded, desc, this.#pool);
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

  /** Stops the decode workers. Safe to call more than once. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#pool.close();
  }
}
