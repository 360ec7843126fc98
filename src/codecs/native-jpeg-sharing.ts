/**
 * JPEG frames decoded with the native libjpeg-turbo on the main thread and in the decode workers
 * at once, so a burst of frames (a slide's prefetch) uses the cores it has.
 *
 * A frame cache asks for all of a batch's frames in one synchronous sweep. Decoding each one as it
 * is asked would keep the event loop until the last is done, and no worker's answer could be read
 * meanwhile; so frames queue here, in the order asked, and are handed out: to each ready worker as
 * many as it holds (two: the one it decodes and the next), then one to the main thread per turn of
 * the event loop, so the workers' answers come in between and they get the next frames at once.
 * With no worker ready (a process just started, one core) frames decode where they are asked, at
 * once, as without sharing.
 *
 * A frame goes to a worker with a buffer of the decoder's FrameBufferPool to decode into (a
 * reused one when one is free, else one made here), and its answer is taken into that pool. A
 * worker lost mid-frame costs nothing but time: the frame decodes here instead.
 */
import { isPathembedError } from '../errors.js';
import type { FrameBufferPool } from './frame-buffer-pool.js';
import { type NativeJpegDecoder, NativeJpegRefusal } from './native-jpeg-decoder.js';
import { COLOUR_SAMPLES } from './photometric.js';
import type { DecodedSamples } from './types.js';
import type { WasmWorkerPool } from './wasm-worker-pool.js';

interface Expected {
  readonly width: number;
  readonly height: number;
}

interface QueuedFrame {
  readonly encoded: Uint8Array;
  readonly expected: Expected;
  resolve(samples: DecodedSamples): void;
  reject(err: unknown): void;
}

export class NativeJpegSharing {
  readonly #queue: QueuedFrame[] = [];
  #scheduled = false;
  #framesInWorkers = 0;
  /** Where frames decoded here go: the decoder's reused buffers. */
  readonly #allocate = (bytes: number) => this.buffers.take(bytes);
  /** Where a buffer lent to a worker comes back when it refused the frame: kept for the next decode. */
  readonly #takeBack = (unused: Uint8Array) => {
    this.buffers.adopt(unused);
    this.buffers.give(unused);
  };

  constructor(
    private readonly native: NativeJpegDecoder,
    private readonly pool: WasmWorkerPool,
    private readonly buffers: FrameBufferPool,
  ) {}

  /** Frames the workers have decoded so far (for tests and metrics). */
  get framesInWorkers(): number {
    return this.#framesInWorkers;
  }

  /**
   * Decodes one stream to 8-bit samples, checking its size against `expected` before anything is
   * allocated. Rejects with NativeJpegRefusal when libjpeg-turbo refuses it (the caller then tries
   * the other decoders) and FRAME_DECODE_ERROR on a size mismatch.
   */
  decode(encoded: Uint8Array, expected: Expected): Promise<DecodedSamples> {
    if (this.#queue.length === 0 && this.pool.nativeJpegCapacity === 0) {
      try {
        return Promise.resolve(this.#decodeHere(encoded, expected));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ encoded, expected, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#drain());
  }

  #drain(): void {
    this.#scheduled = false;
    this.#feedWorkers();
    const frame = this.#queue.shift();
    if (frame) {
      try {
        frame.resolve(this.#decodeHere(frame.encoded, frame.expected));
      } catch (err) {
        frame.reject(err);
      }
    }
    if (this.#queue.length > 0) this.#schedule();
  }

  #feedWorkers(): void {
    while (this.#queue.length > 0 && this.pool.nativeJpegCapacity > 0) {
      const frame = this.#queue.shift()!;
      // Made here when none is free, not left to the worker: memory from this thread's malloc
      // arena is what glibc backs with huge pages under the shipped GLIBC_TUNABLES
      // (src/process-memory.ts), a worker's own arena is not. A fresh process's first slide then
      // takes about 2,000 fewer page faults of about 11 us each on the VM of docs/benchmarks.md.
      const target = this.buffers.take(frame.expected.width * frame.expected.height * COLOUR_SAMPLES);
      this.pool.decodeNativeJpeg(frame.encoded, frame.expected, target, this.#takeBack).then(
        (samples) => {
          // The answer's buffer came across the thread boundary as a new view: the pool takes it.
          if (samples.samplesPerPixel === COLOUR_SAMPLES) this.buffers.adopt(samples.data);
          this.#framesInWorkers++;
          frame.resolve(samples);
          this.#feedWorkers();
        },
        (err: unknown) => {
          // A refusal or a frame the worker found wrong is the frame's answer, as it would be here.
          if (err instanceof NativeJpegRefusal || (isPathembedError(err) && err.code !== 'INTERNAL')) {
            frame.reject(err);
          } else {
            // The worker was lost (or the pool closed under it): decode here; a closed decoder says so.
            try {
              frame.resolve(this.#decodeHere(frame.encoded, frame.expected));
            } catch (again) {
              frame.reject(again);
            }
          }
          this.#feedWorkers();
        },
      );
    }
  }

  #decodeHere(encoded: Uint8Array, expected: Expected): DecodedSamples {
    return this.native.decode(encoded, this.#allocate, expected);
  }
}
