/**
 * Decoded-frame buffers kept for reuse. A slide reader's frame cache hands its frames back when
 * it is cleared, and later decodes of the same size take them instead of new memory. New memory
 * is paid for on its first write, in page faults, and on a VM whose host backs guest memory
 * lazily that costs more than the decode: 3 ms per MiB on the 2-core VM of docs/benchmarks.md,
 * so 0.5 ms for a 240 px tile's 169 KiB that libjpeg-turbo decodes in 0.15 ms. V8 frees a
 * dropped buffer only at a later collection, and the allocator then gives it back to the system,
 * so without reuse every slide read pays again. Bounded in bytes; a buffer is only taken back if
 * this pool made it and does not hold it already.
 */

export class FrameBufferPool {
  /** Free buffers by byte length. */
  readonly #free = new Map<number, Uint8Array[]>();
  /** Buffers this pool made: only those come back. */
  readonly #made = new WeakSet<Uint8Array>();
  /** Buffers in `#free`: a buffer given back twice is kept once. */
  readonly #held = new WeakSet<Uint8Array>();
  #heldBytes = 0;

  /** `maxBytes`: most bytes kept free at once (0 keeps none). */
  constructor(readonly maxBytes: number) {}

  /** Bytes held for reuse now. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** A buffer of `bytes` bytes, reused when one is free. Its contents are undefined: the caller writes all of it. */
  take(bytes: number): Uint8Array {
    const reused = this.takeFree(bytes);
    if (reused) return reused;
    const made = Buffer.allocUnsafeSlow(bytes);
    this.#made.add(made);
    return made;
  }

  /** A free buffer of `bytes` bytes when one is held, else undefined (nothing is allocated). */
  takeFree(bytes: number): Uint8Array | undefined {
    const reused = this.#free.get(bytes)?.pop();
    if (!reused) return undefined;
    this.#held.delete(reused);
    this.#heldBytes -= bytes;
    return reused;
  }

  /**
   * Counts `data` as one of this pool's own, so that `give` takes it back: a buffer that came from
   * another thread (transferred, so a new view of memory no one else holds). Views into part of a
   * larger buffer are refused, as they may share it.
   */
  adopt(data: Uint8Array): void {
    if (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength) this.#made.add(data);
  }

  /**
   * Takes a buffer back for reuse. The caller promises that nothing reads or writes it any more.
   * Buffers the pool did not make, or beyond its byte bound, are left to the garbage collector.
   */
  give(data: Uint8Array): void {
    if (!this.#made.has(data) || this.#held.has(data)) return;
    if (this.#heldBytes + data.byteLength > this.maxBytes) return;
    let list = this.#free.get(data.byteLength);
    if (!list) {
      list = [];
      this.#free.set(data.byteLength, list);
    }
    list.push(data);
    this.#held.add(data);
    this.#heldBytes += data.byteLength;
  }

  /** Lets every free buffer go. */
  clear(): void {
    this.#free.clear();
    this.#heldBytes = 0;
  }
}
