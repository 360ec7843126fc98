/**
 * Path Foundation's image_dimensions for DICOM levels (wsi/resized-level.ts): which stored level a
 * resize reads, where a resized patch comes from, and its pixels, checked against an independent
 * area average of a synthetic slide whose pixels encode their own coordinates.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameDecoder } from '../../src/codecs/index.js';
import { isPathembedError } from '../../src/errors.js';
import { encodeCoordinatePixel } from '../../src/sample/pixel-patterns.js';
import { writeSyntheticWsi } from '../../src/sample/synthetic-wsi-writer.js';
import { FrameCache } from '../../src/wsi/frame-cache.js';
import { LocalFrameSource } from '../../src/wsi/local-frame-source.js';
import { PatchReader } from '../../src/wsi/patch-reader.js';
import {
  levelForResize,
  readResizedPatch,
  roundHalfEven,
  sourceRectOfResized,
} from '../../src/wsi/resized-level.js';
import type { SlideLevel } from '../../src/wsi/slide-level.js';
import { buildSlidePyramid } from '../../src/wsi/slide-pyramid.js';

const W = 1000;
const H = 700;
let tmp: string;
let source: LocalFrameSource;
let decoder: FrameDecoder;
let levels: readonly SlideLevel[];

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-resize-'));
  await writeSyntheticWsi(tmp, { widthPx: W, heightPx: H, seed: 'resize-test' });
  source = await LocalFrameSource.open(tmp);
  levels = buildSlidePyramid(await source.seriesMetadata()).levels;
  decoder = new FrameDecoder({ decodeThreads: 1 });
});
afterAll(async () => {
  await decoder?.close();
  await source?.close?.();
  await fs.rm(tmp, { recursive: true, force: true });
});

/** Python's round by its definition: the nearer integer, ties to the even one. */
function pyRound(v: number): number {
  const lo = Math.floor(v);
  const hi = lo + 1;
  if (v - lo < hi - v) return lo;
  if (hi - v < v - lo) return hi;
  return lo % 2 === 0 ? lo : hi;
}

/** Level-0 pixel (black outside), straight from the pattern the slide was written with. */
function level0(x: number, y: number, c: number): number {
  if (x < 0 || y < 0 || x >= W || y >= H) return 0;
  return encodeCoordinatePixel(x, y)[c];
}

/** The plain 2-D area mean of level-0 block [bx0, bx1) x [by0, by1) over output pixel (i, j). */
function expectedPixel(bx0: number, by0: number, bw: number, bh: number, i: number, j: number, c: number) {
  const sx = bw / 224;
  const sy = bh / 224;
  const x0 = bx0 + i * sx;
  const x1 = bx0 + (i + 1) * sx;
  const y0 = by0 + j * sy;
  const y1 = by0 + (j + 1) * sy;
  let sum = 0;
  let area = 0;
  for (let v = Math.floor(y0); v < Math.ceil(y1); v++) {
    for (let u = Math.floor(x0); u < Math.ceil(x1); u++) {
      const w = (Math.min(u + 1, x1) - Math.max(u, x0)) * (Math.min(v + 1, y1) - Math.max(v, y0));
      if (w <= 0) continue;
      sum += w * level0(u, v, c);
      area += w;
    }
  }
  return sum / area;
}

describe('resized DICOM levels (image_dimensions)', () => {
  it('rounds halves to even as Python does', () => {
    expect([0.5, 1.5, 2.5, 3.5, 2.4999, 2.5001].map(roundHalfEven)).toEqual([0, 2, 2, 4, 2, 3]);
  });

  it('maps a resized patch to the level block Google reads', () => {
    const level = { widthPx: 1000, heightPx: 700 };
    const size = { widthPx: 450, heightPx: 300 };
    for (const [x, y] of [
      [0, 0],
      [17, 5],
      [226, 76],
      [300, 200],
    ]) {
      const rect = sourceRectOfResized(level, size, { x: x, y: y, width: 224, height: 224 });
      const x0 = pyRound((x * 1000) / 450);
      const y0 = pyRound((y * 700) / 300);
      expect(rect).toEqual({
        x: x0,
        y: y0,
        width: pyRound(((x + 224) * 1000) / 450) - x0,
        height: pyRound(((y + 224) * 700) / 300) - y0,
      });
    }
  });

  it('gives the area average of the level block, pixel for pixel, padding past the edge black', async () => {
    const reader = new PatchReader(new FrameCache(source, decoder, { maxBytes: 64 << 20 }), {
      levelTolerance: 0.1,
    });
    const size = { widthPx: 450, heightPx: 300 };
    let checked = 0;
    for (const [x, y] of [
      [13, 29],
      [226, 76],
      [400, 250],
    ]) {
      const rect = { x: x, y: y, width: 224, height: 224 };
      const got = await readResizedPatch(reader, levels[0], size, rect);
      const bx0 = pyRound((x * W) / size.widthPx);
      const by0 = pyRound((y * H) / size.heightPx);
      const bw = pyRound(((x + 224) * W) / size.widthPx) - bx0;
      const bh = pyRound(((y + 224) * H) / size.heightPx) - by0;
      let worst = 0;
      for (let j = 0; j < 224; j += 3) {
        for (let i = 0; i < 224; i += 3) {
          for (let c = 0; c < 3; c++) {
            const want = expectedPixel(bx0, by0, bw, bh, i, j, c);
            worst = Math.max(worst, Math.abs(got.data[(j * 224 + i) * 3 + c] - want));
            checked++;
          }
        }
      }
      // Rounded to the nearest byte: never more than half a level off the exact mean.
      expect(worst).toBeLessThanOrEqual(0.5 + 1e-9);
    }
    expect(checked).toBeGreaterThan(10_000);
    // Past the edge with the patch required inside: refused, as Google does.
    const outside = await readResizedPatch(
      reader,
      levels[0],
      size,
      { x: 400, y: 250, width: 224, height: 224 },
      {
        requireInside: true,
      },
    ).catch((e: unknown) => e);
    expect(isPathembedError(outside) && outside.code).toBe('PATCH_OUTSIDE_IMAGE');
  });

  it('reads the named level when shrinking, refuses past 8x, and takes a finer level to enlarge', () => {
    const [l0, l1, l2] = levels;
    expect(levelForResize(levels, l1, { widthPx: 300, heightPx: 200 })).toBe(l1);
    const tooMuch = (() => {
      try {
        levelForResize(levels, l0, { widthPx: 100, heightPx: 87 });
      } catch (e) {
        return e;
      }
    })();
    expect(isPathembedError(tooMuch) && tooMuch.code).toBe('RESIZE_DOWNSAMPLING_TOO_LARGE');
    // 8x exactly is allowed (Google refuses only more).
    expect(levelForResize(levels, l0, { widthPx: 125, heightPx: 88 })).toBe(l0);
    // Larger than the named level 2 (250 x 175): the smallest level that is large enough, level 1.
    expect(levelForResize(levels, l2, { widthPx: 400, heightPx: 300 })).toBe(l1);
    expect(levelForResize(levels, l2, { widthPx: 600, heightPx: 300 })).toBe(l0);
    const tooBig = (() => {
      try {
        levelForResize(levels, l2, { widthPx: 1200, heightPx: 300 });
      } catch (e) {
        return e;
      }
    })();
    expect(isPathembedError(tooBig) && tooBig.code).toBe('INVALID_ARGUMENT');
  });
});
