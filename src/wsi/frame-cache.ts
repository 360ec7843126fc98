/**
 * The decoded-frame cache a slide reader shares between all the patches it reads.
 *
 * - Decoded RGB frames keyed by (instanceUid, frameIndex), least-recently-used first out, bounded
 *   in bytes (PATHEMBED_FRAME_CACHE_BYTES), because what costs memory is the decoded size
 *   (a 256 x 256 frame is 192 KiB whatever its codestream weighed).
 * - In-flight de-duplication: a frame being fetched or decoded is fetched and decoded once,
 *   however many patches ask for it meanwhile; they all wait on the same promise. Neighbouring
 *   224 px patches on 256 px tiles share most frames, so this is where most requests are saved.
 * - Batched fetching: frames missing in one turn of the event loop (e.g. a `Promise.all` over a
 *   batch of patches) are grouped per instance and handed to `FrameSource.fetchFrames` in one
 *   call, which asks for several frame numbers per HTTP request (the DICOMweb source caps them by
 *   PATHEMBED_FRAMES_PER_REQUEST).
 * - `prefetch(level, tiles)` fetches, in the order given (row order for a patch grid), the frames
 *   a list of patches will need, no more than fit in the byte budget, so frames are not evicted
 *   before the patches that asked for them read them.
 *
 * - `expectReads(tiles)` announces reads to come (a job's patches, a grid), one entry per read.
 *   A frame whose announced reads have all been made leaves the cache at once and its buffer goes
 *   back to the decoder for the next frame to decode into, instead of waiting for the LRU or the
 *   reader's close: a level read in row order then holds the frames of a few rows, not the
 *   whole level or the byte budget, and later frames reuse memory already written (new memory
 *   is paid in page faults: frame-buffer-pool.ts). A read nobody announced is served as before
 *   and may take one announced read's place; the cost is a frame fetched again, never a wrong
 *   pixel: a frame is only handed back once no `getFrames` that includes it is outstanding.
 * - `clear()` (the reader closing) hands its frames back to the decoder for reuse (`recycle`),
 *   when no `getFrames` is outstanding and only after the current turn of the event loop, so a
 *   patch that was given a frame has copied it before its buffer is written again. Frames given
 *   by `getFrames` are valid until the end of the turn its promise settles in: a caller copies
 *   what it needs before it awaits anything else.
 *
 * Abort signals reach `fetchFrames`. Frames missing at the same time under different signals are
 * fetched in separate batches, so one caller's abort never fails another caller's fetch: a
 * caller that joined an in-flight frame whose fetch was aborted by someone else fetches it again.
 */
import type { FrameDecoder, RgbFrame } from '../codecs/index.js';
import { isPathembedError, PathembedError } from '../errors.js';
import type { FrameSource } from './frame-source.js';
import { RGB_CHANNELS } from './resample.js';
import { joinShared, raceAbort, type SharedRequest } from './shared-request.js';
import type { SlideLevel, TileFrame } from './slide-level.js';

/** Anything that turns tiles of a level into decoded RGB frames (the cache, or an uncached reader). */
export interface FrameProvider {
  /** Decoded frames of `level`, in the order of `tiles`. */
  getFrames(level: SlideLevel, tiles: readonly TileFrame[], signal?: AbortSignal): Promise<RgbFrame[]>;
  /** Fetches frames ahead of use, when the provider keeps them; resolves to how many it fetched. */
  prefetch?(level: SlideLevel, tiles: readonly TileFrame[], signal?: AbortSignal): Promise<number>;
  /** Announces reads to come, one entry per read, so that a frame can go once its last one is made. */
  expectReads?(tiles: readonly TileFrame[]): void;
}

export interface FrameCacheOptions {
  /** Byte budget of decoded frames kept (PATHEMBED_FRAME_CACHE_BYTES); 0 keeps none but still de-duplicates in-flight frames. */
  readonly maxBytes: number;
  /**
   * Most frames `prefetch` hands to one `fetchFrames` call. Smaller slices let the first patches
   * start while later frames are still on the wire; a multiple of the source's frames-per-request
   * cap keeps requests full. Default 256.
   */
  readonly prefetchSliceFrames?: number;
  /**
   * The FrameDecoder behind `decoder` when `decoder` wraps it (timing, colour transform): cleared
   * frames go back to it for reuse and its workers are started for the codec being fetched.
   * Default: `decoder` itself, when it is a FrameDecoder.
   */
  readonly owner?: DecoderOwner;
}

/** What the cache asks of the FrameDecoder its frames come from, beyond decoding. */
export type DecoderOwner = Partial<Pick<FrameDecoder, 'recycle' | 'warmUp'>>;

export const DEFAULT_PREFETCH_SLICE_FRAMES = 256;

export interface FrameCacheStats {
  /** HTTP requests (or file reads) for frames, from the source's own counter. */
  readonly requests: number;
  /** Frames this cache fetched from the source. */
  readonly framesFetched: number;
  /** Encoded bytes of those frames. */
  readonly bytesFetched: number;
  /** Frame lookups answered from the cache. */
  readonly hits: number;
  /** Frame lookups that joined a fetch already in flight (no new fetch). */
  readonly joins: number;
  /** Frame lookups that started a fetch. */
  readonly misses: number;
  /** Frames dropped to stay within the byte budget. */
  readonly evictions: number;
  /** (hits + joins) / all lookups; 0 before the first lookup. */
  readonly hitRatio: number;
  readonly cachedFrames: number;
  readonly cachedBytes: number;
  readonly maxBytes: number;
}

/** A frame being fetched and decoded, under the signal of the caller that started it. */
type InFlight = SharedRequest<RgbFrame>;

interface PendingFrame {
  readonly key: string;
  readonly frameIndex: number;
  readonly level: SlideLevel;
  resolve(frame: RgbFrame): void;
  reject(err: unknown): void;
}

function frameKey(tile: TileFrame): string {
  return `${tile.instanceUid}#${tile.frameIndex}`;
}

function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function frameBytes(frame: RgbFrame): number {
  return frame.data.byteLength;
}

/** Decoded size of one frame of `level`, as the budget counts it. */
export function levelFrameBytes(level: SlideLevel): number {
  return level.tileWidthPx * level.tileHeightPx * RGB_CHANNELS;
}

export class FrameCache implements FrameProvider {
  private readonly lru = new Map<string, RgbFrame>();
  /** `getFrames` calls not settled yet: frames may be on their way to a caller. */
  private outstanding = 0;
  private readonly inFlight = new Map<string, InFlight>();
  /** Frames missed this turn, by signal then instance, waiting for the flush. */
  private pending = new Map<AbortSignal | undefined, Map<string, PendingFrame[]>>();
  private flushScheduled = false;
  private cachedBytes = 0;
  private counts = { framesFetched: 0, bytesFetched: 0, hits: 0, joins: 0, misses: 0, evictions: 0 };
  readonly maxBytes: number;
  private readonly prefetchSliceFrames: number;
  private readonly owner: DecoderOwner;
  /** Announced reads not made yet, by frame; 0 once all are made and the frame is still held by a caller. */
  private readonly expected = new Map<string, number>();
  /** Outstanding `getFrames` calls that include the frame, by frame: while any is, it is not recycled. */
  private readonly holders = new Map<string, number>();
  /** Frames whose reads are done, going back to the decoder after this turn. */
  private released: RgbFrame[] = [];

  constructor(
    private readonly source: FrameSource,
    private readonly decoder: Pick<FrameDecoder, 'decode'> & DecoderOwner,
    options: FrameCacheOptions,
  ) {
    this.maxBytes = Math.max(0, options.maxBytes);
    this.prefetchSliceFrames = Math.max(1, options.prefetchSliceFrames ?? DEFAULT_PREFETCH_SLICE_FRAMES);
    this.owner = options.owner ?? decoder;
  }

  /** Decoded frames of `level` in the order of `tiles`; missing ones are fetched in batches. */
  async getFrames(level: SlideLevel, tiles: readonly TileFrame[], signal?: AbortSignal): Promise<RgbFrame[]> {
    signal?.throwIfAborted();
    const keys = tiles.map(frameKey);
    for (const key of keys) this.holders.set(key, (this.holders.get(key) ?? 0) + 1);
    const frames = tiles.map((tile, i) => this.frame(level, tile, keys[i]!, signal));
    this.outstanding++;
    let delivered = false;
    try {
      const decoded = await raceAbort(Promise.all(frames), signal);
      delivered = true;
      return decoded;
    } finally {
      this.outstanding--;
      this.settle(keys, delivered);
    }
  }

  /**
   * Announces reads to come: one entry per read (a frame four patches read is given four times).
   * Each `getFrames` that delivers the frame counts as one of them; after the last, the frame
   * leaves the cache and its buffer goes back to the decoder (module doc).
   */
  expectReads(tiles: readonly TileFrame[]): void {
    for (const tile of tiles) {
      const key = frameKey(tile);
      this.expected.set(key, (this.expected.get(key) ?? 0) + 1);
    }
  }

  /**
   * Starts fetching the frames of `tiles` (in that order, duplicates and cached frames skipped)
   * that are not cached yet, at most as many as fit in the byte budget. Resolves when they are
   * settled to how many it fetched and decoded. Never rejects, so a caller need not wait for it:
   * a frame that fails (or is aborted) fails the patches that read it, which is where it matters.
   */
  async prefetch(level: SlideLevel, tiles: readonly TileFrame[], signal?: AbortSignal): Promise<number> {
    if (signal?.aborted) return 0;
    const budgetFrames = Math.floor(this.maxBytes / levelFrameBytes(level));
    const byInstance = new Map<string, PendingFrame[]>();
    const waits: Promise<RgbFrame>[] = [];
    const seen = new Set<string>();
    for (const tile of tiles) {
      if (seen.size >= budgetFrames) break;
      const key = frameKey(tile);
      if (seen.has(key)) continue;
      seen.add(key);
      if (this.lru.has(key) || this.inFlight.has(key)) continue;
      const { pending, promise } = this.startFetch(key, tile, level, signal);
      waits.push(promise);
      pushTo(byInstance, tile.instanceUid, pending);
    }
    const batches: Promise<void>[] = [];
    for (const [instanceUid, list] of byInstance) {
      for (let i = 0; i < list.length; i += this.prefetchSliceFrames) {
        batches.push(this.fetchBatch(instanceUid, list.slice(i, i + this.prefetchSliceFrames), signal));
      }
    }
    await Promise.all(batches);
    const settled = await Promise.allSettled(waits);
    return settled.filter((r) => r.status === 'fulfilled').length;
  }

  stats(): FrameCacheStats {
    const lookups = this.counts.hits + this.counts.joins + this.counts.misses;
    return {
      requests: this.source.stats.requests,
      ...this.counts,
      hitRatio: lookups === 0 ? 0 : (this.counts.hits + this.counts.joins) / lookups,
      cachedFrames: this.lru.size,
      cachedBytes: this.cachedBytes,
      maxBytes: this.maxBytes,
    };
  }

  /**
   * Drops every cached frame (in-flight fetches finish and are cached). Their buffers go back to
   * the decoder for reuse unless a `getFrames` is still outstanding (then the garbage collector
   * has them, as a caller may yet read one).
   */
  clear(): void {
    const dropped = [...this.lru.values()];
    this.lru.clear();
    this.cachedBytes = 0;
    this.expected.clear();
    const recycle = this.owner.recycle?.bind(this.owner);
    if (!recycle || this.outstanding > 0 || dropped.length === 0) return;
    // After this turn: whoever got a frame in a promise that settled this turn has copied it.
    setImmediate(() => {
      for (const frame of dropped) recycle(frame);
    });
  }

  /** A `getFrames` call over `keys` settled: counts its reads if it delivered, and lets spent frames go. */
  private settle(keys: readonly string[], delivered: boolean): void {
    for (const key of keys) {
      const holders = (this.holders.get(key) ?? 1) - 1;
      if (holders > 0) this.holders.set(key, holders);
      else this.holders.delete(key);
      const left = this.expected.get(key);
      if (left === undefined) continue;
      const now = delivered && left > 0 ? left - 1 : left;
      if (now > 0 || holders > 0) {
        this.expected.set(key, now);
        continue;
      }
      this.expected.delete(key);
      const frame = this.lru.get(key);
      if (!frame) continue;
      this.lru.delete(key);
      this.cachedBytes -= frameBytes(frame);
      this.release(frame);
    }
  }

  /** Hands `frame` back to the decoder after this turn, when the decoder takes frames back. */
  private release(frame: RgbFrame): void {
    const recycle = this.owner.recycle?.bind(this.owner);
    if (!recycle) return;
    this.released.push(frame);
    if (this.released.length > 1) return;
    // After this turn, as in `clear`: the caller the frame was delivered to has copied it.
    setImmediate(() => {
      const frames = this.released;
      this.released = [];
      for (const f of frames) recycle(f);
    });
  }

  private frame(
    level: SlideLevel,
    tile: TileFrame,
    key: string,
    signal: AbortSignal | undefined,
  ): Promise<RgbFrame> {
    const cached = this.lru.get(key);
    if (cached) {
      this.counts.hits++;
      // Re-insert to mark it most recently used (Map keeps insertion order).
      this.lru.delete(key);
      this.lru.set(key, cached);
      return Promise.resolve(cached);
    }
    const flying = this.inFlight.get(key);
    if (flying) {
      this.counts.joins++;
      // Another caller's abort must not fail this one: fetch again if theirs was aborted.
      return joinShared(flying, signal, () => this.frame(level, tile, key, signal));
    }
    const { pending, promise } = this.startFetch(key, tile, level, signal);
    let bySignal = this.pending.get(signal);
    if (!bySignal) {
      bySignal = new Map();
      this.pending.set(signal, bySignal);
    }
    pushTo(bySignal, tile.instanceUid, pending);
    this.scheduleFlush();
    return promise;
  }

  /** Registers a frame as in flight; the returned `pending` settles it. */
  private startFetch(
    key: string,
    tile: TileFrame,
    level: SlideLevel,
    signal: AbortSignal | undefined,
  ): { pending: PendingFrame; promise: Promise<RgbFrame> } {
    this.counts.misses++;
    let resolve!: (frame: RgbFrame) => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<RgbFrame>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A prefetched frame may fail with nobody waiting on it; that must not be an unhandled rejection.
    promise.catch(() => {});
    this.inFlight.set(key, { promise, signal });
    const pending: PendingFrame = {
      key,
      frameIndex: tile.frameIndex,
      level,
      resolve: (frame) => {
        this.inFlight.delete(key);
        this.store(key, frame);
        resolve(frame);
      },
      reject: (err) => {
        this.inFlight.delete(key);
        reject(err);
      },
    };
    return { pending, promise };
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // setImmediate, not a microtask: patches started by one Promise.all reach the cache across
    // several microtask hops (async functions awaiting), and should still share one batch.
    setImmediate(() => {
      this.flushScheduled = false;
      const pending = this.pending;
      this.pending = new Map();
      for (const [signal, byInstance] of pending) {
        for (const [instanceUid, list] of byInstance) void this.fetchBatch(instanceUid, list, signal);
      }
    });
  }

  /** One `fetchFrames` call, then a decode per frame; settles every pending frame. Never rejects. */
  private async fetchBatch(
    instanceUid: string,
    list: readonly PendingFrame[],
    signal: AbortSignal | undefined,
  ): Promise<void> {
    let encoded: Awaited<ReturnType<FrameSource['fetchFrames']>>;
    // The decoders this level needs get ready while its frames are on the wire.
    const transferSyntaxUid = list[0]?.level.instances.find(
      (i) => i.sopInstanceUid === instanceUid,
    )?.transferSyntaxUid;
    if (transferSyntaxUid !== undefined) this.owner.warmUp?.(transferSyntaxUid);
    try {
      signal?.throwIfAborted();
      encoded = await this.source.fetchFrames(
        instanceUid,
        list.map((p) => p.frameIndex),
        signal,
      );
    } catch (err) {
      for (const p of list) p.reject(err);
      return;
    }
    await Promise.all(
      list.map(async (p, i) => {
        // fetchFrames answers one frame per index asked, in order.
        const frame = encoded[i]!;
        try {
          this.counts.framesFetched++;
          this.counts.bytesFetched += frame.data.byteLength;
          p.resolve(await this.decoder.decode(frame.data, frame.transferSyntaxUid, p.level.frame));
        } catch (err) {
          p.reject(namingFrame(err, instanceUid, p.frameIndex));
        }
      }),
    );
  }

  private store(key: string, frame: RgbFrame): void {
    const size = frameBytes(frame);
    if (size > this.maxBytes) return;
    this.lru.set(key, frame);
    this.cachedBytes += size;
    for (const [oldKey, old] of this.lru) {
      if (this.cachedBytes <= this.maxBytes) break;
      this.lru.delete(oldKey);
      this.cachedBytes -= frameBytes(old);
      this.counts.evictions++;
    }
  }
}

/** A decode error naming the frame (0-based index) and the instance it came from. */
function namingFrame(err: unknown, sopInstanceUid: string, frameIndex: number): unknown {
  if (!isPathembedError(err) || err.details.sopInstanceUid !== undefined) return err;
  return new PathembedError(
    err.code,
    `Frame index ${frameIndex} of instance ${sopInstanceUid}: ${err.message}`,
    { ...err.details, sopInstanceUid, frameIndex },
    { cause: err },
  );
}
