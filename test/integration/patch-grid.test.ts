import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CMU } from '../../scripts/dev-services/fixtures.js';
import { FrameDecoder } from '../../src/codecs/index.js';
import { isPathembedError } from '../../src/errors.js';
import { FrameCache } from '../../src/wsi/frame-cache.js';
import { openLocalFrameSource } from '../../src/wsi/local-frame-source.js';
import { buildPatchGrid, explicitPatches, type PatchGrid } from '../../src/wsi/patch-grid.js';
import { type LevelScale, PatchReader } from '../../src/wsi/patch-reader.js';
import { openSlide, type Slide } from '../../src/wsi/slide.js';
import { chooseMaskLevel, computeTissueMask, type TissueMask } from '../../src/wsi/tissue-mask.js';
import { fixture } from '../helpers/services.js';

const PATCH_PX = 224;
const TISSUE_SPACING_UM = 8;

let decoder: FrameDecoder;
let slide: Slide;
let reader: PatchReader;
let mask: TissueMask;
let at05: LevelScale;

function grid(
  options: Partial<{ pixelSpacingUm: number; stridePx: number; minTissue: number }> = {},
): PatchGrid {
  const pixelSpacingUm = options.pixelSpacingUm ?? 0.5;
  return buildPatchGrid(reader.chooseLevel(slide.pyramid.levels, pixelSpacingUm), mask, {
    pixelSpacingUm,
    patchSizePx: PATCH_PX,
    stridePx: options.stridePx ?? PATCH_PX,
    minTissue: options.minTissue ?? 0.5,
  });
}

function errorCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isPathembedError(err) ? err.code : String(err);
  }
  return undefined;
}

beforeAll(async () => {
  decoder = new FrameDecoder({ decodeThreads: 2 });
  const source = await openLocalFrameSource(fixture('cmu-jpeg').dir);
  slide = await openSlide(source);
  reader = new PatchReader(new FrameCache(source, decoder, { maxBytes: 64 << 20 }), { levelTolerance: 0.1 });
  mask = await computeTissueMask(reader, slide.pyramid.levels, { spacingUm: TISSUE_SPACING_UM });
  at05 = reader.chooseLevel(slide.pyramid.levels, 0.5);
});

afterAll(async () => {
  await slide.close();
  await decoder.close();
});

describe('tissue mask of a slide (cmu-jpeg, through the patch reader)', () => {
  it('is computed at the configured spacing from the nearest finer level', () => {
    // levels at 0.5, 1, 2 and 4 µm/px: none within 8-16, so level 3 is shrunk by about 2
    const choice = chooseMaskLevel(slide.pyramid.levels, TISSUE_SPACING_UM);
    expect(choice.level.index).toBe(3);
    expect(choice.scale).toBeCloseTo(2.006, 3);
    expect(mask.pixelSpacingUm).toBeCloseTo(TISSUE_SPACING_UM, 9);
    // the whole level, the last partial mask pixel included: 278 x 371 px / 2.006
    expect([mask.widthPx, mask.heightPx]).toEqual([
      Math.ceil(choice.level.widthPx / choice.scale),
      Math.ceil(choice.level.heightPx / choice.scale),
    ]);
    expect([mask.widthPx, mask.heightPx]).toEqual([139, 185]);
  });

  it('covers about a third of the slide, as the mask of the source SVS does', () => {
    // tissue-mask.test.ts measures 31.5 % on the SVS itself; the DICOM pyramid's level 3 is a
    // re-encoded, smoothed copy, so allow a few points either way.
    expect(mask.fraction).toBeGreaterThan(0.27);
    expect(mask.fraction).toBeLessThan(0.38);
  });
});

describe('buildPatchGrid', () => {
  it('lays whole patches row-major over the target grid and keeps those with enough tissue', () => {
    const g = grid();
    expect([g.level, g.downsample, g.widthPx, g.heightPx]).toEqual([0, 1, CMU.widthPx, CMU.heightPx]);
    expect(g.candidates).toBe(Math.floor(CMU.widthPx / PATCH_PX) * Math.floor(CMU.heightPx / PATCH_PX));
    expect(g.patches.length).toBeGreaterThan(0.2 * g.candidates);
    expect(g.patches.length).toBeLessThan(0.6 * g.candidates);
    g.patches.forEach((p, i) => {
      expect(p.index).toBe(i);
      expect([p.width, p.height]).toEqual([PATCH_PX, PATCH_PX]);
      expect(p.x % PATCH_PX).toBe(0);
      expect(p.y % PATCH_PX).toBe(0);
      expect(p.x + PATCH_PX).toBeLessThanOrEqual(g.widthPx);
      expect(p.y + PATCH_PX).toBeLessThanOrEqual(g.heightPx);
      expect(p.tissueFraction).toBeGreaterThanOrEqual(0.5);
      if (i > 0) {
        const q = g.patches[i - 1];
        expect(p.y > q.y || (p.y === q.y && p.x > q.x)).toBe(true);
      }
    });
    expect(g.tissue).toEqual({
      method: 'otsu-saturation',
      spacingUm: mask.pixelSpacingUm,
      fraction: mask.fraction,
    });
  });

  it('is deterministic and survives a JSON round trip', () => {
    const a = grid();
    expect(grid()).toEqual(a);
    expect(JSON.parse(JSON.stringify(a))).toEqual(a);
  });

  it('honours the minimum tissue fraction and the stride', () => {
    const all = grid({ minTissue: 0 });
    expect(all.patches.length).toBe(all.candidates);
    const strict = grid({ minTissue: 0.9 });
    expect(strict.patches.every((p) => p.tissueFraction >= 0.9)).toBe(true);
    const half = grid();
    expect(strict.patches.length).toBeLessThan(half.patches.length);
    // every kept patch at 0.9 is one of the patches kept at 0.5
    const key = (p: { x: number; y: number }) => `${p.x},${p.y}`;
    const halfKeys = new Set(half.patches.map(key));
    expect(strict.patches.every((p) => halfKeys.has(key(p)))).toBe(true);

    const overlapping = grid({ stridePx: 112, minTissue: 0 });
    expect(overlapping.candidates).toBe(
      (Math.floor((CMU.widthPx - PATCH_PX) / 112) + 1) * (Math.floor((CMU.heightPx - PATCH_PX) / 112) + 1),
    );
  });

  it('uses the target grid of a coarser spacing', () => {
    const at1 = grid({ pixelSpacingUm: 1 });
    expect([at1.level, at1.downsample, at1.widthPx, at1.heightPx]).toEqual([1, 1, 1110, 1484]);
    const at075 = grid({ pixelSpacingUm: 0.75 });
    expect(at075.level).toBe(0);
    expect(at075.downsample).toBeCloseTo(0.75 / CMU.mppUm, 6);
    expect(at075.widthPx).toBe(Math.floor(CMU.widthPx / (0.75 / CMU.mppUm)));
  });

  it('refuses a bad stride, patch size or tissue fraction', () => {
    const options = { pixelSpacingUm: 0.5, patchSizePx: PATCH_PX, stridePx: PATCH_PX, minTissue: 0.5 };
    expect(errorCode(() => buildPatchGrid(at05, mask, { ...options, stridePx: 0 }))).toBe('INVALID_ARGUMENT');
    expect(errorCode(() => buildPatchGrid(at05, mask, { ...options, patchSizePx: 1.5 }))).toBe(
      'INVALID_ARGUMENT',
    );
    expect(errorCode(() => buildPatchGrid(at05, mask, { ...options, minTissue: 2 }))).toBe(
      'INVALID_ARGUMENT',
    );
  });
});

describe('explicitPatches', () => {
  it('keeps the given order and measures each patch', () => {
    const list = explicitPatches(
      at05,
      [
        { x: 700, y: 2600 },
        { x: 1900, y: 200, width: PATCH_PX, height: PATCH_PX },
      ],
      mask,
      { patchSizePx: PATCH_PX },
    );
    expect(list.map((p) => [p.index, p.x, p.y, p.width, p.height])).toEqual([
      [0, 700, 2600, PATCH_PX, PATCH_PX],
      [1, 1900, 200, PATCH_PX, PATCH_PX],
    ]);
    expect(list[0].tissueFraction).toBeGreaterThan(0.9);
    expect(list[1].tissueFraction).toBeLessThan(0.01);
    // without a mask every patch counts as tissue
    expect(
      explicitPatches(at05, [{ x: 0, y: 0 }], undefined, { patchSizePx: PATCH_PX })[0].tissueFraction,
    ).toBe(1);
  });

  it('refuses patches of the wrong size, at non-integer positions, or outside the image', () => {
    const check = (p: { x: number; y: number; width?: number }, requireInside?: boolean) =>
      errorCode(() =>
        explicitPatches(at05, [{ x: 0, y: 0 }, p], mask, { patchSizePx: PATCH_PX, requireInside }),
      );
    expect(check({ x: 0, y: 0, width: 256 })).toBe('INVALID_ARGUMENT');
    expect(check({ x: 10.5, y: 0 })).toBe('INVALID_ARGUMENT');
    expect(check({ x: CMU.widthPx - PATCH_PX, y: CMU.heightPx - PATCH_PX })).toBeUndefined();
    expect(check({ x: CMU.widthPx - PATCH_PX + 1, y: 0 })).toBe('PATCH_OUTSIDE_IMAGE');
    expect(check({ x: -1, y: 0 })).toBe('PATCH_OUTSIDE_IMAGE');
    // partly outside is allowed when the caller accepts padding; wholly outside never is
    expect(check({ x: -100, y: 0 }, false)).toBeUndefined();
    expect(check({ x: CMU.widthPx, y: 0 }, false)).toBe('PATCH_OUTSIDE_IMAGE');
    try {
      explicitPatches(
        at05,
        [
          { x: 0, y: 0 },
          { x: 5000, y: 0 },
        ],
        mask,
        { patchSizePx: PATCH_PX },
      );
    } catch (err) {
      expect(isPathembedError(err) && err.details.index).toBe(1);
    }
  });
});
