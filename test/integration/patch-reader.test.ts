/**
 * The patch reader end to end: real slides served by the test Orthanc over DICOMweb (and the same
 * files read locally), decoded by the real codecs, checked pixel for pixel.
 *
 * - Synthetic fixtures store each pixel's own coordinates (src/sample/pixel-patterns.ts), so any
 *   region of any level has one right answer: the coordinates, white where a sparse level lacks a
 *   tile, black beyond the image.
 * - Real slides: the CMU region (converted by OrthancWSIDicomizer) against the same region read
 *   from the source SVS by vips, and the CAMELYON instance against DCMTK's decode of its frames.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../../scripts/dev-services/binaries.js';
import { CMU_SVS, SYNTHETIC_FIXTURES } from '../../scripts/dev-services/fixtures.js';
import type { RgbFrame } from '../../src/codecs/index.js';
import { FrameDecoder } from '../../src/codecs/index.js';
import { loadConfig } from '../../src/config.js';
import { DicomWebClient } from '../../src/dicomweb/index.js';
import { retryPolicy } from '../../src/domain-options.js';
import { isPathembedError } from '../../src/errors.js';
import { encodeCoordinatePixel } from '../../src/sample/pixel-patterns.js';
import { DicomWebFrameSource } from '../../src/wsi/dicomweb-frame-source.js';
import { FrameCache } from '../../src/wsi/frame-cache.js';
import type { FrameSource } from '../../src/wsi/frame-source.js';
import { openLocalFrameSource } from '../../src/wsi/local-frame-source.js';
import { framesForPatches, type LevelScale, PatchReader, type Rgb } from '../../src/wsi/patch-reader.js';
import type { RectPx } from '../../src/wsi/region.js';
import { openSlide, type Slide } from '../../src/wsi/slide.js';
import type { SlideLevel } from '../../src/wsi/slide-level.js';
import { pixelDiff } from '../helpers/compare.js';
import { fixture } from '../helpers/services.js';

const run = promisify(execFile);
const config = loadConfig({});
const LEVEL_TOLERANCE = config.PATHEMBED_LEVEL_TOLERANCE;
const BLACK: Rgb = [0, 0, 0];
const WHITE: Rgb = [255, 255, 255];

let decoder: FrameDecoder;
const opened: Slide[] = [];

beforeAll(() => {
  decoder = new FrameDecoder({ decodeThreads: 2 });
});

afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()));
  await decoder.close();
});

function dicomWebSource(
  name: string,
  framesPerRequest = config.PATHEMBED_FRAMES_PER_REQUEST,
): DicomWebFrameSource {
  const client = new DicomWebClient({
    allowedStores: config.PATHEMBED_ALLOWED_STORES,
    retry: retryPolicy(config),
    framesPerRequest,
    storeConcurrency: config.PATHEMBED_STORE_CONCURRENCY,
  });
  return new DicomWebFrameSource(client, fixture(name).seriesUrl);
}

type SourceKind = 'dicomweb' | 'local';

async function openReader(
  name: string,
  kind: SourceKind,
  options: { framesPerRequest?: number; maxBytes?: number } = {},
): Promise<{ slide: Slide; source: FrameSource; cache: FrameCache; reader: PatchReader }> {
  const source: FrameSource =
    kind === 'dicomweb'
      ? dicomWebSource(name, options.framesPerRequest)
      : await openLocalFrameSource(fixture(name).dir);
  const slide = await openSlide(source);
  opened.push(slide);
  const cache = new FrameCache(source, decoder, { maxBytes: options.maxBytes ?? 64 << 20 });
  return { slide, source, cache, reader: new PatchReader(cache, { levelTolerance: LEVEL_TOLERANCE }) };
}

type SyntheticName = keyof typeof SYNTHETIC_FIXTURES;

/** What a synthetic fixture holds at (x, y) of a level: coordinates, white for a missing tile, else outside. */
function expectedPixel(name: SyntheticName, level: SlideLevel, x: number, y: number, outside: Rgb): Rgb {
  if (x < 0 || y < 0 || x >= level.widthPx || y >= level.heightPx) return outside;
  const options = SYNTHETIC_FIXTURES[name] as { omitTile?: (l: number, c: number, r: number) => boolean };
  const col = Math.floor(x / level.tileWidthPx);
  const row = Math.floor(y / level.tileHeightPx);
  if (options.omitTile?.(level.index, col, row)) return WHITE;
  return encodeCoordinatePixel(x, y);
}

function expectedRegion(
  name: SyntheticName,
  level: SlideLevel,
  rect: RectPx,
  outside: Rgb = BLACK,
): Uint8Array {
  const out = new Uint8Array(rect.width * rect.height * 3);
  for (let j = 0; j < rect.height; j++) {
    for (let i = 0; i < rect.width; i++) {
      out.set(expectedPixel(name, level, rect.x + i, rect.y + j, outside), (j * rect.width + i) * 3);
    }
  }
  return out;
}

/** The first pixel where two RGB buffers differ, described, or null when they are equal. */
function firstDifference(actual: RgbFrame, expected: Uint8Array, rect: RectPx): string | null {
  expect([actual.width, actual.height]).toEqual([rect.width, rect.height]);
  for (let p = 0; p < expected.length; p += 3) {
    if (
      actual.data[p] !== expected[p] ||
      actual.data[p + 1] !== expected[p + 1] ||
      actual.data[p + 2] !== expected[p + 2]
    ) {
      const i = (p / 3) % rect.width;
      const j = Math.floor(p / 3 / rect.width);
      return `at (${rect.x + i}, ${rect.y + j}): got ${[...actual.data.subarray(p, p + 3)]}, expected ${[...expected.subarray(p, p + 3)]}`;
    }
  }
  return null;
}

async function errorCode(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (err) {
    return isPathembedError(err) ? err.code : String(err);
  }
  return undefined;
}

/** Regions of a level that cross frame borders, the image edges, and the origin. */
function regionsOf(level: SlideLevel): RectPx[] {
  const { widthPx: w, heightPx: h, tileWidthPx: tw, tileHeightPx: th } = level;
  return [
    // across the first vertical and horizontal frame borders (clipped to small levels)
    { x: Math.min(tw - 37, w - 60), y: Math.min(th - 29, h - 50), width: 120, height: 90 },
    // over the bottom-right corner: partial edge tiles, then padding
    { x: w - 100, y: h - 60, width: 224, height: 224 },
    // before the origin
    { x: -30, y: -20, width: 100, height: 80 },
    // the whole level and a border of padding around it
    { x: -3, y: -2, width: w + 6, height: h + 4 },
  ];
}

const EXACT_FIXTURES: SyntheticName[] = [
  'synthetic-full',
  'synthetic-sparse',
  'synthetic-noorg',
  'synthetic-concat',
];
const KINDS: SourceKind[] = ['dicomweb', 'local'];

describe.each(KINDS)('readRegion on the synthetic slides (%s source)', (kind) => {
  it.each(EXACT_FIXTURES)(
    '%s: every level, across frame borders and past the edges, pixel for pixel',
    async (name) => {
      const { slide, reader } = await openReader(name, kind);
      expect(slide.pyramid.levels.length).toBe(3);
      for (const level of slide.pyramid.levels) {
        for (const rect of regionsOf(level)) {
          const got = await reader.readRegion(level, rect.x, rect.y, rect.width, rect.height);
          expect(
            firstDifference(got, expectedRegion(name, level, rect), rect),
            `${name} level ${level.index}`,
          ).toBeNull();
        }
      }
    },
  );

  it('synthetic-jpeg: every level within JPEG error of the coordinates', async () => {
    const { slide, reader } = await openReader('synthetic-jpeg', kind);
    for (const level of slide.pyramid.levels) {
      const rect = { x: 0, y: 0, width: level.widthPx, height: level.heightPx };
      const got = await reader.readRegion(level, 0, 0, level.widthPx, level.heightPx);
      // quality 95 with 4:2:0 chroma: measured 0.53-0.73 mean absolute error per level
      expect(pixelDiff(got.data, expectedRegion('synthetic-jpeg', level, rect)).mean).toBeLessThan(1.5);
    }
  });
});

describe('readRegion options (synthetic-sparse over DICOMweb)', () => {
  it('reads missing sparse tiles as white and the outside as the background asked for', async () => {
    const { slide, reader } = await openReader('synthetic-sparse', 'dicomweb');
    const level1 = slide.level(1);
    // tile (1, 0) of level 1 is not stored; the region also reaches past the top edge
    const rect = { x: 200, y: -16, width: 120, height: 100 };
    const purple: Rgb = [120, 0, 90];
    const got = await reader.readRegion(level1, rect.x, rect.y, rect.width, rect.height, {
      background: purple,
    });
    expect(firstDifference(got, expectedRegion('synthetic-sparse', level1, rect, purple), rect)).toBeNull();
    expect([...got.data.subarray(0, 3)]).toEqual([...purple]);
    const insideMissing = ((16 + 10) * rect.width + (300 - 200)) * 3; // (300, 10) lies in tile (1, 0)
    expect([...got.data.subarray(insideMissing, insideMissing + 3)]).toEqual([...WHITE]);
  });

  it('refuses a region past the edge with PATCH_OUTSIDE_IMAGE when it must lie inside', async () => {
    const { slide, reader } = await openReader('synthetic-full', 'dicomweb');
    const level0 = slide.level(0);
    const inside = { requireInside: true };
    expect(
      await errorCode(reader.readRegion(level0, 1000 - 224, 700 - 224, 224, 224, inside)),
    ).toBeUndefined();
    expect(await errorCode(reader.readRegion(level0, 1000 - 223, 0, 224, 224, inside))).toBe(
      'PATCH_OUTSIDE_IMAGE',
    );
    expect(await errorCode(reader.readRegion(level0, 0, -1, 224, 224, inside))).toBe('PATCH_OUTSIDE_IMAGE');
    // at 0.75 µm/px the target grid is floor(1000 / 1.5) x floor(700 / 1.5) = 666 x 466
    const levels = slide.pyramid.levels;
    expect(
      await errorCode(reader.getPatch(levels, { x: 442, y: 242, width: 224, height: 224 }, 0.75, inside)),
    ).toBeUndefined();
    expect(
      await errorCode(reader.getPatch(levels, { x: 443, y: 0, width: 224, height: 224 }, 0.75, inside)),
    ).toBe('PATCH_OUTSIDE_IMAGE');
    expect(await errorCode(reader.readRegion(level0, 0, 0, 0, 10))).toBe('INVALID_ARGUMENT');
    expect(await errorCode(reader.getPatch(levels, { x: 0, y: 0, width: 10, height: 10 }, 0.25))).toBe(
      'NO_MATCHING_LEVEL',
    );
  });
});

/** Exact area-weighted mean of the coordinates under a target pixel (black beyond the level). */
function areaMean(level: SlideLevel, x0: number, y0: number, scale: number, c: number): number {
  let sum = 0;
  for (let v = Math.floor(y0); v < Math.ceil(y0 + scale); v++) {
    for (let u = Math.floor(x0); u < Math.ceil(x0 + scale); u++) {
      const w =
        (Math.min(u + 1, x0 + scale) - Math.max(u, x0)) * (Math.min(v + 1, y0 + scale) - Math.max(v, y0));
      if (w <= 0) continue;
      sum += w * expectedPixel('synthetic-full', level, u, v, BLACK)[c];
    }
  }
  return sum / (scale * scale);
}

describe('getPatch / readScaled: area averaging from the finer level (synthetic-full over DICOMweb)', () => {
  it('shrinks by 2 to the exact mean of each 2 x 2 block of source coordinates, across frame borders', async () => {
    const { slide, reader } = await openReader('synthetic-full', 'dicomweb');
    const level0 = slide.level(0);
    const choice: LevelScale = { level: level0, scale: 2 };
    // target (100..160) x (110..170) covers level-0 (200..320) x (220..340): the frame corner at 256
    const rect = { x: 100, y: 110, width: 60, height: 60 };
    const got = await reader.readScaled(choice, rect);
    for (let j = 0; j < rect.height; j++) {
      for (let i = 0; i < rect.width; i++) {
        const X = 2 * (rect.x + i);
        const Y = 2 * (rect.y + j);
        const block = [
          encodeCoordinatePixel(X, Y),
          encodeCoordinatePixel(X + 1, Y),
          encodeCoordinatePixel(X, Y + 1),
          encodeCoordinatePixel(X + 1, Y + 1),
        ];
        for (let c = 0; c < 3; c++) {
          const mean = Math.round(block.reduce((s, p) => s + p[c], 0) / 4);
          expect(got.data[(j * rect.width + i) * 3 + c]).toBe(mean);
        }
      }
    }
  });

  it('at a spacing no level stores (0.75 µm/px = 1.5 x level 0) gives the area-weighted mean, edge padding included', async () => {
    const { slide, reader } = await openReader('synthetic-full', 'dicomweb');
    const levels = slide.pyramid.levels;
    const choice = reader.chooseLevel(levels, 0.75);
    expect(choice.level.index).toBe(0);
    expect(choice.scale).toBeCloseTo(1.5, 12);
    for (const rect of [
      { x: 150, y: 160, width: 40, height: 30 }, // across the frame corner at (256, 256) of level 0
      { x: 640, y: 440, width: 40, height: 40 }, // past the bottom-right corner of the 666 x 466 grid
    ]) {
      const got = await reader.getPatch(levels, rect, 0.75);
      let worst = 0;
      for (let j = 0; j < rect.height; j++) {
        for (let i = 0; i < rect.width; i++) {
          for (let c = 0; c < 3; c++) {
            const exact = areaMean(choice.level, (rect.x + i) * 1.5, (rect.y + j) * 1.5, 1.5, c);
            worst = Math.max(worst, Math.abs(got.data[(j * rect.width + i) * 3 + c] - exact));
          }
        }
      }
      expect(worst).toBeLessThanOrEqual(0.5 + 1e-9);
    }
  });

  it('reads a level that matches the spacing as it is', async () => {
    const { slide, reader } = await openReader('synthetic-full', 'dicomweb');
    const rect = { x: 230, y: 200, width: 100, height: 100 };
    const got = await reader.getPatch(slide.pyramid.levels, rect, 1.0);
    expect(firstDifference(got, expectedRegion('synthetic-full', slide.level(1), rect), rect)).toBeNull();
  });
});

describe('frame cache over DICOMweb: batched requests', () => {
  const FRAMES_PER_REQUEST = 4;
  const gridRects = (level: SlideLevel): RectPx[] => {
    const rects: RectPx[] = [];
    for (let y = 0; y + 224 <= level.heightPx; y += 224)
      for (let x = 0; x + 224 <= level.widthPx; x += 224) rects.push({ x: x, y: y, width: 224, height: 224 });
    return rects;
  };

  it('reads concurrent patches with one fetch per frame, at most ceil(frames / cap) requests', async () => {
    const { slide, source, cache, reader } = await openReader('synthetic-full', 'dicomweb', {
      framesPerRequest: FRAMES_PER_REQUEST,
    });
    const level0 = slide.level(0);
    const rects = gridRects(level0); // 4 x 3 patches of 224 px over 4 x 3 tiles of 256 px
    const frames = framesForPatches({ level: level0, scale: 1 }, rects);
    expect(frames.length).toBe(12);
    const requestsBefore = source.stats.requests;
    const patches = await Promise.all(
      rects.map((r) => reader.readRegion(level0, r.x, r.y, r.width, r.height)),
    );
    expect(source.stats.requests - requestsBefore).toBeLessThanOrEqual(
      Math.ceil(frames.length / FRAMES_PER_REQUEST),
    );
    expect(cache.stats().framesFetched).toBe(12);
    expect(cache.stats().misses).toBe(12);
    expect(
      firstDifference(patches[5], expectedRegion('synthetic-full', level0, rects[5]), rects[5]),
    ).toBeNull();
  });

  it('prefetches a grid in batches and then serves the patches from the cache', async () => {
    const { slide, source, cache, reader } = await openReader('synthetic-concat', 'dicomweb', {
      framesPerRequest: FRAMES_PER_REQUEST,
    });
    const level0 = slide.level(0);
    expect(level0.instances.length).toBe(3); // frames 0-4, 5-9, 10-11 in three parts
    const choice = { level: level0, scale: 1 };
    const rects = gridRects(level0);
    const frames = framesForPatches(choice, rects);
    const perInstance = new Map<string, number>();
    for (const f of frames) perInstance.set(f.instanceUid, (perInstance.get(f.instanceUid) ?? 0) + 1);
    const bound = [...perInstance.values()].reduce((s, n) => s + Math.ceil(n / FRAMES_PER_REQUEST), 0);
    const requestsBefore = source.stats.requests;
    expect(await reader.prefetchPatches(choice, rects)).toBe(frames.length);
    expect(source.stats.requests - requestsBefore).toBeLessThanOrEqual(bound);
    expect(bound).toBeLessThanOrEqual(Math.ceil(frames.length / FRAMES_PER_REQUEST) + perInstance.size - 1);
    const afterPrefetch = source.stats.requests;
    for (const r of rects) {
      const got = await reader.readRegion(level0, r.x, r.y, r.width, r.height);
      expect(firstDifference(got, expectedRegion('synthetic-concat', level0, r), r)).toBeNull();
    }
    expect(source.stats.requests).toBe(afterPrefetch);
    expect(cache.stats().hits).toBeGreaterThanOrEqual(frames.length);
  });
});

/** The same level-0 region read from the source SVS by vips (openslide), as RGB. */
async function svsRegion(rect: RectPx): Promise<Uint8Array> {
  const vips = requireBinary('vips');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-svs-'));
  try {
    const png = path.join(dir, 'region.png');
    await run(vips, [
      'crop',
      CMU_SVS,
      png,
      String(rect.x),
      String(rect.y),
      String(rect.width),
      String(rect.height),
    ]);
    return new Uint8Array(await sharp(png).removeAlpha().raw().toBuffer());
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

describe('real slides over DICOMweb against their sources', () => {
  // tissue across tile borders (240 px tiles), glass, and a patch past the bottom-right corner
  const TISSUE = { x: 700, y: 2600, width: 224, height: 224 };
  const TISSUE2 = { x: 1000, y: 1000, width: 224, height: 224 };
  const GLASS = { x: 1900, y: 200, width: 224, height: 224 };

  it('cmu-raw (uncompressed) equals the SVS exactly', async () => {
    const { slide, reader } = await openReader('cmu-raw', 'dicomweb');
    for (const rect of [TISSUE, TISSUE2, GLASS]) {
      const got = await reader.readRegion(slide.level(0), rect.x, rect.y, rect.width, rect.height);
      expect(pixelDiff(got.data, await svsRegion(rect)).mean).toBe(0);
    }
  });

  it('cmu-raw past the bottom-right corner: the image part equals the SVS, the rest is black', async () => {
    const { slide, reader } = await openReader('cmu-raw', 'dicomweb');
    const level0 = slide.level(0);
    const rect = { x: level0.widthPx - 100, y: level0.heightPx - 50, width: 224, height: 224 };
    const got = await reader.readRegion(level0, rect.x, rect.y, rect.width, rect.height);
    const inside = await svsRegion({ ...rect, width: 100, height: 50 });
    for (let j = 0; j < rect.height; j++) {
      for (let i = 0; i < rect.width; i++) {
        const p = (j * rect.width + i) * 3;
        const want =
          i < 100 && j < 50 ? [...inside.subarray((j * 100 + i) * 3, (j * 100 + i) * 3 + 3)] : [0, 0, 0];
        if (want.some((v, c) => v !== got.data[p + c]))
          expect([i, j, ...got.data.subarray(p, p + 3)]).toEqual([i, j, ...want]);
      }
    }
  });

  it('cmu-jpeg2000 (lossless re-encoding of the decoded SVS) equals the SVS', async () => {
    const { slide, reader } = await openReader('cmu-jpeg2000', 'dicomweb');
    for (const rect of [TISSUE, GLASS]) {
      const got = await reader.readRegion(slide.level(0), rect.x, rect.y, rect.width, rect.height);
      expect(pixelDiff(got.data, await svsRegion(rect)).mean).toBeLessThan(0.5);
    }
  });

  it('cmu-jpeg (re-encoded at quality 90) stays within JPEG error of the SVS', async () => {
    const { slide, reader } = await openReader('cmu-jpeg', 'dicomweb');
    // OrthancWSIDicomizer decodes the Aperio tiles and re-encodes them at quality 90 with 4:2:2
    // chroma; DCMTK's decoder gives the same pixels as ours, so this is the file's own error:
    // about 6.5 in dense tissue (fine texture), under 1 on glass.
    const got = async (rect: RectPx) =>
      (await reader.readRegion(slide.level(0), rect.x, rect.y, rect.width, rect.height)).data;
    expect(pixelDiff(await got(TISSUE), await svsRegion(TISSUE)).mean).toBeLessThan(8);
    expect(pixelDiff(await got(TISSUE2), await svsRegion(TISSUE2)).mean).toBeLessThan(8);
    expect(pixelDiff(await got(GLASS), await svsRegion(GLASS)).mean).toBeLessThan(1.5);
  });

  it('cmu-jpeg-concat (two-instance concatenation, 120 px tiles) reads like cmu-jpeg', async () => {
    const { slide, reader } = await openReader('cmu-jpeg-concat', 'dicomweb');
    expect(slide.level(0).instances.length).toBeGreaterThan(1);
    const got = await reader.readRegion(slide.level(0), TISSUE.x, TISSUE.y, TISSUE.width, TISSUE.height);
    expect(pixelDiff(got.data, await svsRegion(TISSUE)).mean).toBeLessThan(8);
  });

  it('camelyon (TILED_FULL JPEG) equals DCMTK decoding of its frames, across frame borders', async () => {
    const { slide, reader } = await openReader('camelyon', 'dicomweb');
    const level = slide.level(0);
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-camelyon-'));
    try {
      await run(requireBinary('dcmj2pnm'), [
        '+on',
        '+Fa',
        path.join(fixture('camelyon').dir, 'camelyon.dcm'),
        path.join(dir, 'f'),
      ]);
      const rect = { x: 200, y: 150, width: 500, height: 300 }; // frames (0..2, 0..1) of 256 px
      const want = new Uint8Array(rect.width * rect.height * 3);
      for (let n = 0; n < level.tilesAcross * level.tilesDown; n++) {
        const col = n % level.tilesAcross;
        const row = Math.floor(n / level.tilesAcross);
        const { data, info } = await sharp(path.join(dir, `f.${n}.png`))
          .removeAlpha()
          .raw()
          .toBuffer({ resolveWithObject: true });
        for (let y = 0; y < info.height; y++) {
          for (let x = 0; x < info.width; x++) {
            const i = col * level.tileWidthPx + x - rect.x;
            const j = row * level.tileHeightPx + y - rect.y;
            if (i < 0 || j < 0 || i >= rect.width || j >= rect.height) continue;
            want.set(
              data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3),
              (j * rect.width + i) * 3,
            );
          }
        }
      }
      const got = await reader.readRegion(level, rect.x, rect.y, rect.width, rect.height);
      expect(pixelDiff(got.data, want).mean).toBe(0);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('reading into a caller buffer (`into`)', () => {
  it('overwrites every byte of a reused buffer with what a fresh read gives, at level scale and shrunk, edges included', async () => {
    const { slide, reader } = await openReader('cmu-jpeg', 'dicomweb');
    const level0 = slide.level(0);
    // Inside the image, across a frame corner, and hanging over the right and bottom edges.
    const rects = [
      { x: 200, y: 220, width: 224, height: 224 },
      { x: level0.widthPx - 100, y: level0.heightPx - 50, width: 224, height: 224 },
    ];
    const scratch = new Uint8Array(224 * 224 * 3);
    for (const rect of rects) {
      const fresh = await reader.readRegion(level0, rect.x, rect.y, rect.width, rect.height);
      scratch.fill(0x5a);
      const into = await reader.readRegion(level0, rect.x, rect.y, rect.width, rect.height, {
        into: scratch,
      });
      expect(into.data).toBe(scratch);
      expect(Buffer.compare(scratch, fresh.data), `${rect.x},${rect.y}`).toBe(0);
    }
    const choice: LevelScale = { level: level0, scale: 2 };
    const shrunk = await reader.readScaled(choice, { x: 100, y: 110, width: 224, height: 224 });
    scratch.fill(0xa5);
    const shrunkInto = await reader.readScaled(
      choice,
      { x: 100, y: 110, width: 224, height: 224 },
      { into: scratch },
    );
    expect(shrunkInto.data).toBe(scratch);
    expect(Buffer.compare(scratch, shrunk.data)).toBe(0);
  });

  it('refuses a buffer of the wrong size with INVALID_ARGUMENT, naming both sizes', async () => {
    const { slide, reader } = await openReader('cmu-jpeg', 'dicomweb');
    const err = await reader
      .readRegion(slide.level(0), 0, 0, 224, 224, { into: new Uint8Array(224 * 224 * 4) })
      .catch((e: unknown) => e);
    expect(isPathembedError(err, 'INVALID_ARGUMENT')).toBe(true);
    expect((err as Error).message).toMatch(/200704 bytes; it must hold 150528/);
  });
});
