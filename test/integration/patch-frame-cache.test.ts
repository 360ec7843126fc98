import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameDecoder } from '../../src/codecs/index.js';
import { loadConfig } from '../../src/config.js';
import { dicomWebOptions } from '../../src/domain-options.js';
import { FrameCache, levelFrameBytes } from '../../src/wsi/frame-cache.js';
import { type LocalFrameSource, openLocalFrameSource } from '../../src/wsi/local-frame-source.js';
import { PatchReader } from '../../src/wsi/patch-reader.js';
import { tilesOverlapping } from '../../src/wsi/region.js';
import { openSlide, type Slide } from '../../src/wsi/slide.js';
import type { SlideLevel, TileFrame } from '../../src/wsi/slide-level.js';
import { SlideOpener } from '../../src/wsi/slide-opener.js';
import { tileFrame } from '../../src/wsi/tile-index.js';
import { fixture } from '../helpers/services.js';

// The uncompressed CMU fixture read from its Part 10 files: real frames, cheap to decode, and a
// source whose counters say exactly how many frames were read.
const PATCH_PX = 224;
const LEVEL_TOLERANCE = 0.1;

let decoder: FrameDecoder;
let slide: Slide;
let level0: SlideLevel;

/** A fresh source per test, so its frame counter starts at 0. */
async function freshSource(): Promise<LocalFrameSource> {
  return openLocalFrameSource(fixture('cmu-raw').dir);
}

function framesOf(
  level: SlideLevel,
  xPx: number,
  yPx: number,
  widthPx: number,
  heightPx: number,
): TileFrame[] {
  return tilesOverlapping(level, { x: xPx, y: yPx, width: widthPx, height: heightPx })
    .map(({ col, row }) => tileFrame(level, col, row))
    .filter((f): f is TileFrame => f !== undefined);
}

beforeAll(async () => {
  decoder = new FrameDecoder({ decodeThreads: 1 });
  slide = await openSlide(await freshSource());
  level0 = slide.level(0);
});

afterAll(async () => {
  await slide.close();
  await decoder.close();
});

describe('FrameCache', () => {
  it('fetches and decodes each frame once for overlapping patches read concurrently', async () => {
    const source = await freshSource();
    const cache = new FrameCache(source, decoder, { maxBytes: 64 << 20 });
    const reader = new PatchReader(cache, { levelTolerance: LEVEL_TOLERANCE });
    // 16 patches shifted by 16 px around the corner of four 240 px tiles: every one needs all four.
    const origins: [number, number][] = [];
    for (let dy = 0; dy < 4; dy++)
      for (let dx = 0; dx < 4; dx++) origins.push([300 + dx * 16, 300 + dy * 16]);
    const patches = await Promise.all(
      origins.map(([x, y]) => reader.readRegion(level0, x, y, PATCH_PX, PATCH_PX)),
    );

    const distinct = new Set(
      origins.flatMap(([x, y]) =>
        framesOf(level0, x, y, PATCH_PX, PATCH_PX).map((f) => `${f.instanceUid}#${f.frameIndex}`),
      ),
    );
    expect(distinct.size).toBe(4);
    expect(source.stats.frames).toBe(4);
    const stats = cache.stats();
    expect(stats.framesFetched).toBe(4);
    expect(stats.misses).toBe(4);
    expect(stats.hits + stats.joins).toBe(16 * 4 - 4);
    // the patches share pixels: patch 1 is patch 0 shifted by 16 px
    const row = (p: (typeof patches)[number], y: number, x0: number) => [
      ...p.data.subarray((y * PATCH_PX + x0) * 3, (y * PATCH_PX + x0 + 100) * 3),
    ];
    expect(row(patches[1], 50, 0)).toEqual(row(patches[0], 50, 16));
    await source.close();
  });

  it('hands all frames missing at once to one fetchFrames call', async () => {
    const source = await freshSource();
    const calls: number[] = [];
    const fetchFrames = source.fetchFrames.bind(source);
    // Counting calls through the real source (it is not replaced: frames still come from the file).
    source.fetchFrames = (uid, indices, signal) => {
      calls.push(indices.length);
      return fetchFrames(uid, indices, signal);
    };
    const cache = new FrameCache(source, decoder, { maxBytes: 64 << 20 });
    const reader = new PatchReader(cache, { levelTolerance: LEVEL_TOLERANCE });
    await Promise.all([
      reader.readRegion(level0, 0, 0, 480, 240),
      reader.readRegion(level0, 0, 240, 480, 240),
      reader.readRegion(level0, 480, 0, 240, 480),
    ]);
    expect(calls).toEqual([6]);
    await source.close();
  });

  it('evicts least recently used frames to stay within its byte budget', async () => {
    const source = await freshSource();
    const frameBytes = levelFrameBytes(level0);
    const cache = new FrameCache(source, decoder, { maxBytes: 3 * frameBytes });
    const tiles = [0, 1, 2, 3].map((col) => tileFrame(level0, col, 0)!);
    for (const t of tiles.slice(0, 3)) await cache.getFrames(level0, [t]);
    await cache.getFrames(level0, [tiles[0]]); // tile 0 becomes the most recent; tile 1 the oldest
    await cache.getFrames(level0, [tiles[3]]); // evicts tile 1
    let stats = cache.stats();
    expect(stats.evictions).toBe(1);
    expect(stats.cachedFrames).toBe(3);
    expect(stats.cachedBytes).toBe(3 * frameBytes);
    expect(stats.hits).toBe(1);
    expect(stats.misses).toBe(4);

    await cache.getFrames(level0, [tiles[0]]); // still cached
    await cache.getFrames(level0, [tiles[1]]); // evicted: fetched again, evicting tile 2
    stats = cache.stats();
    expect(stats.hits).toBe(2);
    expect(stats.misses).toBe(5);
    expect(stats.evictions).toBe(2);
    expect(source.stats.frames).toBe(5);
    expect(stats.hitRatio).toBeCloseTo(2 / 7, 12);
    await source.close();
  });

  it('keeps nothing with a zero budget but still shares frames in flight', async () => {
    const source = await freshSource();
    const cache = new FrameCache(source, decoder, { maxBytes: 0 });
    const tile = tileFrame(level0, 5, 5)!;
    const [a, b] = await Promise.all([cache.getFrames(level0, [tile]), cache.getFrames(level0, [tile])]);
    expect(a[0]).toBe(b[0]);
    expect(source.stats.frames).toBe(1);
    await cache.getFrames(level0, [tile]);
    expect(source.stats.frames).toBe(2);
    expect(cache.stats().cachedBytes).toBe(0);
    await source.close();
  });

  it('prefetches in the order given, no more frames than the budget holds', async () => {
    const source = await freshSource();
    const frameBytes = levelFrameBytes(level0);
    const cache = new FrameCache(source, decoder, { maxBytes: 5 * frameBytes + 100 });
    const reader = new PatchReader(cache, { levelTolerance: LEVEL_TOLERANCE });
    const choice = { level: level0, scale: 1 };
    // a row of patches along the top: frames (0,0), (1,0), ... in that order
    const rects = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => ({
      x: i * PATCH_PX,
      y: 0,
      width: PATCH_PX,
      height: PATCH_PX,
    }));
    const fetched = await reader.prefetchPatches(choice, rects);
    expect(fetched).toBe(5);
    expect(source.stats.frames).toBe(5);
    // the first patches now read from the cache alone
    for (const r of rects.slice(0, 5)) await reader.readRegion(level0, r.x, r.y, r.width, r.height);
    expect(source.stats.frames).toBe(5);
    expect(cache.stats().evictions).toBe(0);
    // prefetching again fetches nothing new
    expect(await reader.prefetchPatches(choice, rects.slice(0, 5))).toBe(0);
    await source.close();
  });

  it('passes an abort on, without failing another caller that joined the same frames', async () => {
    const source = await freshSource();
    const cache = new FrameCache(source, decoder, { maxBytes: 64 << 20 });
    const tiles = [tileFrame(level0, 2, 2)!, tileFrame(level0, 3, 2)!];
    const controller = new AbortController();
    const aborted = cache.getFrames(level0, tiles, controller.signal);
    const other = cache.getFrames(level0, tiles);
    controller.abort(new Error('job cancelled'));
    await expect(aborted).rejects.toThrow('job cancelled');
    const frames = await other;
    expect(frames.map((f) => [f.width, f.height])).toEqual([
      [240, 240],
      [240, 240],
    ]);
    // an already-aborted signal is refused at once; a prefetch under it fetches nothing, and never rejects
    await expect(cache.getFrames(level0, tiles, controller.signal)).rejects.toThrow('job cancelled');
    expect(await cache.prefetch(level0, [tileFrame(level0, 7, 7)!], controller.signal)).toBe(0);
    await source.close();
  });
});

describe('frame buffers reused from one reader to the next', () => {
  /** 224 px patches on a 3 x 3 grid of the cmu-jpeg fixture's level 0, read through a fresh cache. */
  async function readGrid(
    frameDecoder: FrameDecoder,
  ): Promise<{ patches: Uint8Array[]; cache: FrameCache; level: SlideLevel }> {
    const source = await openLocalFrameSource(fixture('cmu-jpeg').dir);
    const jpegSlide = await openSlide(source);
    const level = jpegSlide.level(0);
    const cache = new FrameCache(source, frameDecoder, { maxBytes: 64 << 20 });
    const reader = new PatchReader(cache, { levelTolerance: LEVEL_TOLERANCE });
    const patches: Uint8Array[] = [];
    for (let y = 0; y < 3; y++)
      for (let x = 0; x < 3; x++)
        patches.push((await reader.readRegion(level, x * PATCH_PX, y * PATCH_PX, PATCH_PX, PATCH_PX)).data);
    return { patches, cache, level };
  }

  const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

  it('gives a closed reader its frames back and the next reader decodes into them, pixels unchanged', async () => {
    const reusing = new FrameDecoder({ decodeThreads: 1, jpegDecoder: 'native', reuseBytes: 64 << 20 });
    const plain = new FrameDecoder({ decodeThreads: 1, jpegDecoder: 'native' });
    try {
      const reference = await readGrid(plain);
      const first = await readGrid(reusing);
      const cachedBytes = first.cache.stats().cachedBytes;
      expect(cachedBytes).toBeGreaterThan(0);
      // Scribble over the first reader's frames: the next reader must overwrite every byte it uses.
      const frames = await first.cache.getFrames(
        first.level,
        framesOf(first.level, 0, 0, 3 * PATCH_PX, 3 * PATCH_PX),
      );
      for (const f of frames) f.data.fill(0x5a);
      first.cache.clear();
      // Handed back only after this turn of the event loop.
      expect(reusing.reusableBytes).toBe(0);
      await nextTurn();
      expect(reusing.reusableBytes).toBe(cachedBytes);
      const second = await readGrid(reusing);
      expect(reusing.reusableBytes).toBe(0);
      for (const [i, p] of second.patches.entries()) {
        expect(Buffer.compare(p, reference.patches[i]), `patch ${i}`).toBe(0);
        expect(Buffer.compare(first.patches[i], reference.patches[i]), `first reader's patch ${i}`).toBe(0);
      }
      // Without reuse configured nothing is held.
      reference.cache.clear();
      await nextTurn();
      expect(plain.reusableBytes).toBe(0);
    } finally {
      await Promise.all([reusing.close(), plain.close()]);
    }
  });

  it('a reader whose decoder is wrapped (timing, colour transform) still hands its frames back to the FrameDecoder under it', async () => {
    const shared = new FrameDecoder({ decodeThreads: 1, jpegDecoder: 'native', reuseBytes: 64 << 20 });
    try {
      const opener = new SlideOpener({
        dicomWeb: dicomWebOptions(loadConfig({})),
        reading: { frameCacheBytes: 64 << 20, decodeThreads: 1, levelTolerance: LEVEL_TOLERANCE },
        decoder: shared,
      });
      let decodes = 0;
      const reader = await opener.openSlideReader(
        { kind: 'local', folder: fixture('cmu-jpeg').dir },
        {},
        {
          decoder: (inner) => ({
            decode: (...args) => {
              decodes++;
              return inner.decode(...args);
            },
          }),
        },
      );
      await reader.reader.readRegion(reader.slide.level(0), 0, 0, 2 * PATCH_PX, 2 * PATCH_PX);
      const cachedBytes = reader.cache.stats().cachedBytes;
      expect(decodes).toBeGreaterThan(0);
      await reader.close();
      await nextTurn();
      expect(shared.reusableBytes).toBe(cachedBytes);
    } finally {
      await shared.close();
    }
  });

  it('keeps its frames out of reuse when cleared while a read is still outstanding', async () => {
    const reusing = new FrameDecoder({ decodeThreads: 1, jpegDecoder: 'native', reuseBytes: 64 << 20 });
    try {
      const { cache } = await readGrid(reusing);
      const source = await openLocalFrameSource(fixture('cmu-jpeg').dir);
      const level = (await openSlide(source)).level(0);
      const pending = cache.getFrames(level, framesOf(level, 1000, 1000, PATCH_PX, PATCH_PX));
      cache.clear();
      await pending;
      await nextTurn();
      expect(reusing.reusableBytes).toBe(0);
    } finally {
      await reusing.close();
    }
  });
});

describe('frames let go after their announced reads', () => {
  const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

  /** 224 px patches covering the top-left 4 x 4 patches of cmu-jpeg's level 0, row by row. */
  function gridRects(): { x: number; y: number; width: number; height: number }[] {
    const rects = [];
    for (let y = 0; y < 4; y++)
      for (let x = 0; x < 4; x++)
        rects.push({ x: x * PATCH_PX, y: y * PATCH_PX, width: PATCH_PX, height: PATCH_PX });
    return rects;
  }

  async function jpegReader(frameDecoder: FrameDecoder) {
    const source = await openLocalFrameSource(fixture('cmu-jpeg').dir);
    const level = (await openSlide(source)).level(0);
    const cache = new FrameCache(source, frameDecoder, { maxBytes: 64 << 20 });
    return { source, level, cache, reader: new PatchReader(cache, { levelTolerance: LEVEL_TOLERANCE }) };
  }

  it('holds a few rows of frames instead of all, decodes later frames into earlier ones, pixels unchanged', async () => {
    const reusing = new FrameDecoder({ decodeThreads: 1, jpegDecoder: 'native', reuseBytes: 64 << 20 });
    const plain = new FrameDecoder({ decodeThreads: 1, jpegDecoder: 'native' });
    try {
      const rects = gridRects();
      const reference = await jpegReader(plain);
      const expected = [];
      for (const r of rects)
        expected.push((await reference.reader.readRegion(reference.level, r.x, r.y, r.width, r.height)).data);
      const distinct = reference.cache.stats().cachedFrames;
      expect(distinct).toBe(16);

      const { source, level, cache, reader } = await jpegReader(reusing);
      reader.expectPatches({ level, scale: 1 }, rects);
      const held: number[] = [];
      // Two patches at a time, as a job reads a batch: frames shared by both must survive both.
      for (let i = 0; i < rects.length; i += 2) {
        const pair = await Promise.all(
          rects.slice(i, i + 2).map((r) => reader.readRegion(level, r.x, r.y, r.width, r.height)),
        );
        for (const [k, p] of pair.entries())
          expect(Buffer.compare(p.data, expected[i + k]), `patch ${i + k}`).toBe(0);
        held.push(cache.stats().cachedFrames);
        await nextTurn();
      }
      // Each frame fetched once, and none left once its last patch was read.
      expect(source.stats.frames).toBe(distinct);
      expect(cache.stats().cachedFrames).toBe(0);
      expect(Math.max(...held)).toBeLessThanOrEqual(8);
      // The frames of the first rows went back to the decoder and were decoded into again: what
      // is left for reuse is less than every frame the read decoded.
      expect(reusing.reusableBytes).toBeGreaterThan(0);
      expect(reusing.reusableBytes).toBeLessThan(distinct * levelFrameBytes(level));
      await source.close();
    } finally {
      await Promise.all([reusing.close(), plain.close()]);
    }
  });

  it('reads beyond those announced are served, at the cost of a frame fetched again', async () => {
    const reusing = new FrameDecoder({ decodeThreads: 1, jpegDecoder: 'native', reuseBytes: 64 << 20 });
    try {
      const { source, level, cache, reader } = await jpegReader(reusing);
      const rect = { x: 100, y: 100, width: PATCH_PX, height: PATCH_PX };
      reader.expectPatches({ level, scale: 1 }, [rect]);
      const first = await reader.readRegion(level, rect.x, rect.y, rect.width, rect.height);
      const copy = Buffer.from(first.data);
      await nextTurn();
      expect(cache.stats().cachedFrames).toBe(0);
      const again = await reader.readRegion(level, rect.x, rect.y, rect.width, rect.height);
      expect(Buffer.compare(again.data, copy)).toBe(0);
      expect(source.stats.frames).toBe(2 * framesOf(level, rect.x, rect.y, rect.width, rect.height).length);
      // Not announced: kept as before, until the reader closes.
      expect(cache.stats().cachedFrames).toBe(
        framesOf(level, rect.x, rect.y, rect.width, rect.height).length,
      );
      await source.close();
    } finally {
      await reusing.close();
    }
  });

  it('does not hand a spent frame back while another read that includes it is outstanding', async () => {
    const reusing = new FrameDecoder({ decodeThreads: 1, jpegDecoder: 'native', reuseBytes: 64 << 20 });
    try {
      const { source, level, cache } = await jpegReader(reusing);
      const x = tileFrame(level, 0, 0)!;
      const y = tileFrame(level, 5, 5)!;
      // The real source, with the fetch of frame y held back until the test lets it go.
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      const fetchFrames = source.fetchFrames.bind(source);
      source.fetchFrames = async (uid, indices, signal) => {
        if (indices.includes(y.frameIndex)) await gate;
        return fetchFrames(uid, indices, signal);
      };
      // x cached first (a read nobody announced), so that only y waits at the gate.
      await cache.getFrames(level, [x]);
      cache.expectReads([x]);
      // Read B holds x while it waits for y; read A then makes x's one announced read.
      const readB = cache.getFrames(level, [x, y]);
      await nextTurn();
      const [fromA] = await cache.getFrames(level, [x]);
      const pixelsOfX = Buffer.from(fromA.data);
      await nextTurn();
      expect(reusing.reusableBytes).toBe(0);
      release();
      const [fromB] = await readB;
      expect(fromB).toBe(fromA);
      expect(Buffer.compare(fromB.data, pixelsOfX)).toBe(0);
      // B settled: now x goes back (y was never announced and stays cached).
      await nextTurn();
      expect(reusing.reusableBytes).toBe(levelFrameBytes(level));
      expect(cache.stats().cachedFrames).toBe(1);
      await source.close();
    } finally {
      await reusing.close();
    }
  });
});
