import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../../scripts/dev-services/binaries.js';
import { CMU, CMU_SVS } from '../../scripts/dev-services/fixtures.js';
import type { RgbFrame } from '../../src/codecs/index.js';
import { LUMINANCE_MAX, otsuThreshold, SATURATION_FLOOR, TissueMask } from '../../src/wsi/tissue-mask.js';

const run = promisify(execFile);
/** vips shrink factor: 16 x 0.499 = 7.98 µm/px, the default mask spacing. */
const SHRINK = 16;

function uniform(widthPx: number, heightPx: number, rgb: [number, number, number]): RgbFrame {
  const data = new Uint8Array(widthPx * heightPx * 3);
  for (let p = 0; p < data.length; p += 3) data.set(rgb, p);
  return { width: widthPx, height: heightPx, data };
}

describe('otsuThreshold', () => {
  it('splits a two-peak histogram between the peaks', () => {
    const h = new Array(256).fill(0);
    for (let i = 0; i < 6; i++) h[i] = 1000; // glass
    for (let i = 60; i < 140; i++) h[i] = 100; // stain
    const t = otsuThreshold(h);
    expect(t).toBeGreaterThanOrEqual(5);
    expect(t).toBeLessThan(60);
  });

  it('is 0 for an empty histogram', () => {
    expect(otsuThreshold(new Array(256).fill(0))).toBe(0);
  });
});

describe('TissueMask on CMU-1-Small-Region (read by vips from the SVS)', () => {
  let mask: TissueMask;

  beforeAll(async () => {
    const vips = requireBinary('vips');
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-tissue-'));
    const png = path.join(dir, 'cmu.png');
    // shrink is a box filter, the same area average the mask's own reader applies.
    await run(vips, ['shrink', CMU_SVS, png, String(SHRINK), String(SHRINK)]);
    const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    await fs.rm(dir, { recursive: true, force: true });
    mask = TissueMask.fromRgb(
      { width: info.width, height: info.height, data: new Uint8Array(data) },
      CMU.mppUm * SHRINK,
    );
  });

  it('finds about a third of the image to be tissue', () => {
    // Looked at by eye: a strip of skin from top to bottom over about a third of the field,
    // the rest white glass. Otsu gives S > 48 (of 255): 31.5 %.
    expect(mask.fraction).toBeGreaterThan(0.27);
    expect(mask.fraction).toBeLessThan(0.38);
    expect(mask.saturationThreshold).toBeGreaterThanOrEqual(SATURATION_FLOOR);
  });

  it('does not count glass as tissue and counts the epidermis as tissue', () => {
    const patch = (x: number, y: number) =>
      mask.tissueFraction({ x: x, y: y, width: 224, height: 224 }, CMU.mppUm);
    // glass: the right margin near the top and the left margin low down
    // (a speck of dust may touch one mask pixel: under 1 %)
    expect(patch(1900, 200)).toBeLessThan(0.01);
    expect(patch(1950, 1300)).toBeLessThan(0.01);
    expect(patch(100, 1500)).toBeLessThan(0.01);
    // tissue in the lower middle
    expect(patch(700, 2600)).toBeGreaterThan(0.95);
    expect(patch(900, 2400)).toBeGreaterThan(0.85);
  });

  it('writes a PNG of the mask size, white where tissue', async () => {
    const png = await mask.toPng();
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height, meta.channels]).toEqual([
      'png',
      mask.widthPx,
      mask.heightPx,
      1,
    ]);
    // (sharp's raw output would expand grey to RGB; take the one band)
    const { data } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    let white = 0;
    for (let i = 0; i < data.length; i++) {
      expect(data[i] === 0 || data[i] === 255).toBe(true);
      if (data[i] === 255) white++;
      expect(data[i] === 255).toBe(mask.data[i] === 1);
    }
    expect(white / data.length).toBeCloseTo(mask.fraction, 10);
  });
});

describe('TissueMask classification', () => {
  it('finds no tissue on white glass, even with a faint colour cast', () => {
    expect(TissueMask.fromRgb(uniform(20, 20, [245, 245, 245]), 8).fraction).toBe(0);
    // half of it slightly tinted: Otsu would split the two, the floor refuses
    const img = uniform(20, 20, [240, 243, 245]);
    for (let p = 0; p < img.data.length / 2; p += 3) img.data.set([236, 240, 244], p);
    expect(TissueMask.fromRgb(img, 8).fraction).toBe(0);
  });

  it('finds no tissue in black padding or noisy near-black', () => {
    const img = uniform(10, 10, [0, 0, 0]);
    img.data.set([2, 0, 1], 0);
    img.data.set([10, 0, 5], 30);
    expect(TissueMask.fromRgb(img, 8).fraction).toBe(0);
  });

  it('takes stain for tissue and leaves bright saturated pixels (glass) out', () => {
    const img = uniform(10, 10, [244, 244, 244]);
    for (let p = 0; p < 50 * 3; p += 3) img.data.set([200, 100, 170], p); // eosin-pink, first 5 rows
    img.data.set([255, 236, 250], 99 * 3); // bright tint: Y > LUMINANCE_MAX
    const mask = TissueMask.fromRgb(img, 8);
    expect(0.299 * 255 + 0.587 * 236 + 0.114 * 250).toBeGreaterThan(LUMINANCE_MAX);
    expect(mask.fraction).toBe(0.5);
    expect(mask.data[0]).toBe(1);
    expect(mask.data[99]).toBe(0);
  });

  it('measures the area-weighted tissue fraction of a rectangle in another grid', () => {
    // 4 x 2 mask at 8 µm/px, tissue in column 1 only
    const data = new Uint8Array([0, 1, 0, 0, 0, 1, 0, 0]);
    const mask = new TissueMask(4, 2, 8, data, 20);
    // a 16 x 16 px rect at 1 µm/px from (4, 0): mask x 0.5..2.5 -> column 1 fully, halves of 0 and 2
    expect(mask.tissueFraction({ x: 4, y: 0, width: 16, height: 16 }, 1)).toBeCloseTo(0.5, 12);
    expect(mask.tissueFraction({ x: 8, y: 0, width: 8, height: 16 }, 1)).toBe(1);
    // beyond the mask: glass
    expect(mask.tissueFraction({ x: 8, y: 8, width: 8, height: 16 }, 1)).toBeCloseTo(0.5, 12);
    expect(mask.tissueFraction({ x: 100, y: 100, width: 8, height: 8 }, 1)).toBe(0);
  });
});
