import { describe, expect, it } from 'vitest';
import type { RgbFrame } from '../../src/codecs/index.js';
import { areaResample, cropRgb } from '../../src/wsi/resample.js';

/** A source whose pixels encode their coordinates, with enough variety that wrong weights show. */
function coordinateImage(widthPx: number, heightPx: number): RgbFrame {
  const data = new Uint8Array(widthPx * heightPx * 3);
  for (let y = 0; y < heightPx; y++) {
    for (let x = 0; x < widthPx; x++) {
      const p = (y * widthPx + x) * 3;
      data[p] = x % 256;
      data[p + 1] = y % 256;
      data[p + 2] = (x * 7 + y * 13) % 256;
    }
  }
  return { width: widthPx, height: heightPx, data };
}

/** The exact area-weighted mean of a source rectangle, by a plain 2-D sum (not separable). */
function exactAreaMean(src: RgbFrame, x0: number, y0: number, x1: number, y1: number, c: number): number {
  let sum = 0;
  let area = 0;
  for (let v = Math.floor(y0); v < Math.ceil(y1); v++) {
    for (let u = Math.floor(x0); u < Math.ceil(x1); u++) {
      const w = (Math.min(u + 1, x1) - Math.max(u, x0)) * (Math.min(v + 1, y1) - Math.max(v, y0));
      if (w <= 0) continue;
      sum += w * src.data[(v * src.width + u) * 3 + c];
      area += w;
    }
  }
  return sum / area;
}

describe('areaResample', () => {
  it('shrinks by 2 to the exact mean of each 2 x 2 block', () => {
    const src = coordinateImage(64, 48);
    const out = areaResample(src, { srcXPx: 0, srcYPx: 0, scaleX: 2, scaleY: 2, widthPx: 32, heightPx: 24 });
    for (let j = 0; j < 24; j++) {
      for (let i = 0; i < 32; i++) {
        for (let c = 0; c < 3; c++) {
          let sum = 0;
          for (const [dx, dy] of [
            [0, 0],
            [1, 0],
            [0, 1],
            [1, 1],
          ]) {
            sum += src.data[((2 * j + dy) * 64 + 2 * i + dx) * 3 + c];
          }
          expect(out.data[(j * 32 + i) * 3 + c]).toBe(Math.round(sum / 4));
        }
      }
    }
  });

  it('shrinks by an integer factor from an integer offset as a box filter', () => {
    const src = coordinateImage(100, 90);
    const k = 3;
    const out = areaResample(src, { srcXPx: 4, srcYPx: 5, scaleX: k, scaleY: k, widthPx: 30, heightPx: 28 });
    for (let j = 0; j < 28; j++) {
      for (let i = 0; i < 30; i++) {
        for (let c = 0; c < 3; c++) {
          let sum = 0;
          for (let dy = 0; dy < k; dy++)
            for (let dx = 0; dx < k; dx++) sum += src.data[((5 + k * j + dy) * 100 + 4 + k * i + dx) * 3 + c];
          expect(out.data[(j * 30 + i) * 3 + c]).toBe(Math.round(sum / (k * k)));
        }
      }
    }
  });

  it('shrinks by a non-integer factor from a fractional offset to the area-weighted mean', () => {
    const src = coordinateImage(120, 110);
    const scale = 1.37;
    const window = { srcXPx: 0.3, srcYPx: 0.85, scaleX: scale, scaleY: scale, widthPx: 80, heightPx: 75 };
    const out = areaResample(src, window);
    let worst = 0;
    for (let j = 0; j < window.heightPx; j++) {
      for (let i = 0; i < window.widthPx; i++) {
        const x0 = window.srcXPx + i * scale;
        const y0 = window.srcYPx + j * scale;
        for (let c = 0; c < 3; c++) {
          const exact = exactAreaMean(src, x0, y0, x0 + scale, y0 + scale, c);
          worst = Math.max(worst, Math.abs(out.data[(j * window.widthPx + i) * 3 + c] - exact));
        }
      }
    }
    // Correctly rounded: never further than half a level from the exact mean.
    expect(worst).toBeLessThanOrEqual(0.5 + 1e-9);
  });

  it('keeps a uniform colour uniform at any factor', () => {
    const src: RgbFrame = { width: 50, height: 40, data: new Uint8Array(50 * 40 * 3) };
    for (let p = 0; p < src.data.length; p += 3) src.data.set([200, 17, 99], p);
    const out = areaResample(src, {
      srcXPx: 0.5,
      srcYPx: 0.25,
      scaleX: 2.7,
      scaleY: 2.7,
      widthPx: 18,
      heightPx: 14,
    });
    for (let p = 0; p < out.data.length; p += 3)
      expect([...out.data.subarray(p, p + 3)]).toEqual([200, 17, 99]);
  });

  it('copies pixels unchanged at scale 1 from an integer offset', () => {
    const src = coordinateImage(30, 20);
    const out = areaResample(src, { srcXPx: 3, srcYPx: 4, scaleX: 1, scaleY: 1, widthPx: 10, heightPx: 8 });
    expect(out).toEqual(cropRgb(src, 3, 4, 10, 8));
    expect([...out.data.subarray(0, 3)]).toEqual([3, 4, (3 * 7 + 4 * 13) % 256]);
  });

  it('refuses a window beyond its source', () => {
    const src = coordinateImage(10, 10);
    expect(() =>
      areaResample(src, { srcXPx: 0, srcYPx: 0, scaleX: 2, scaleY: 2, widthPx: 6, heightPx: 5 }),
    ).toThrow(/outside its source/);
  });
});
