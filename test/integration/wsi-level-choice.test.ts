import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { IDC_METADATA } from '../../scripts/dev-services/fixtures.js';
import { loadConfig } from '../../src/config.js';
import { chooseLevel, MAX_DOWNSAMPLE } from '../../src/wsi/level-choice.js';
import { LocalFrameSource } from '../../src/wsi/local-frame-source.js';
import { openSlide } from '../../src/wsi/slide.js';
import { buildSlidePyramid } from '../../src/wsi/slide-pyramid.js';
import { thrownPathembedError } from '../helpers/errors.js';
import { fixture } from '../helpers/services.js';

// TCGA-05-4244: levels at 0.2325, 0.93 and 3.72 um/px.
const levels = buildSlidePyramid(
  JSON.parse(fs.readFileSync(path.join(IDC_METADATA, 'TCGA-LUAD_TCGA-05-4244-01Z-00-DX1.json'), 'utf8'))
    .images,
).levels;
const tolerance = loadConfig({}).PATHEMBED_LEVEL_TOLERANCE;

describe('chooseLevel', () => {
  it('uses the default tolerance of 10 %', () => {
    expect(tolerance).toBe(0.1);
  });

  it('takes a level within tolerance as it is', () => {
    const c = chooseLevel(levels, 0.25, { tolerance });
    expect(c.level.index).toBe(0);
    expect(c.scale).toBe(1);
    expect(c.matched).toBe(true);
    expect(c.levelSpacingUm).toBeCloseTo(0.2325, 12);
    expect(chooseLevel(levels, 1.0, { tolerance }).level.index).toBe(1);
    expect(chooseLevel(levels, 4.0, { tolerance }).level.index).toBe(2);
    expect(chooseLevel(levels, 3.72, { tolerance: 0 })).toMatchObject({ scale: 1, matched: true });
  });

  it('downsamples the nearest finer level when none matches', () => {
    const c = chooseLevel(levels, 0.5, { tolerance });
    expect(c.level.index).toBe(0);
    expect(c.matched).toBe(false);
    expect(c.scale).toBeCloseTo(0.5 / 0.2325, 12);
    const d = chooseLevel(levels, 2.0, { tolerance });
    expect(d.level.index).toBe(1);
    expect(d.scale).toBeCloseTo(2.0 / 0.93, 12);
    const e = chooseLevel(levels, 0.9, { tolerance: 0.01 });
    expect(e.level.index).toBe(0);
    expect(e.scale).toBeCloseTo(0.9 / 0.2325, 12);
  });

  it('allows exactly 8x and refuses more', () => {
    expect(MAX_DOWNSAMPLE).toBe(8);
    const eight = chooseLevel(levels, 8 * 3.72, { tolerance: 0 });
    expect(eight.level.index).toBe(2);
    expect(eight.scale).toBeCloseTo(8, 12);
    const err = thrownPathembedError(() => chooseLevel(levels, 40, { tolerance }));
    expect(err.code).toBe('NO_MATCHING_LEVEL');
    expect(err.message).toBe(
      'No level serves 40 um/px: the nearest finer level 2 (3.720 um/px) would need 10.75x downsampling, more than the 8x allowed',
    );
  });

  it('refuses a target finer than the finest level, naming the finest available', () => {
    const err = thrownPathembedError(() => chooseLevel(levels, 0.1, { tolerance }));
    expect(err.code).toBe('NO_MATCHING_LEVEL');
    expect(err.message).toContain('the finest available is level 0 at 0.2325 um/px');
    expect(err.details).toMatchObject({ finestLevel: 0, finestSpacingUm: 0.2325 });
    // Within tolerance below the finest level is still a match.
    expect(chooseLevel(levels, 0.22, { tolerance }).level.index).toBe(0);
  });

  it('refuses a target that is not a positive number', () => {
    expect(thrownPathembedError(() => chooseLevel(levels, 0, { tolerance })).code).toBe('INVALID_ARGUMENT');
    expect(thrownPathembedError(() => chooseLevel(levels, Number.NaN, { tolerance })).code).toBe(
      'INVALID_ARGUMENT',
    );
  });

  it('is what the slide facade answers', async () => {
    const slide = await openSlide(await LocalFrameSource.open(fixture('synthetic-full').dir));
    try {
      expect(slide.pyramid.levels.length).toBe(3);
      expect(slide.levelForSpacing(0.5, tolerance)).toMatchObject({
        scale: 1,
        matched: true,
        level: { index: 0 },
      });
      expect(slide.levelForSpacing(1.0, tolerance).level.index).toBe(1);
      const c = slide.levelForSpacing(3.0, tolerance);
      expect(c.level.index).toBe(2);
      expect(c.scale).toBeCloseTo(1.5, 12);
      expect(slide.level(2).widthPx).toBe(250);
      expect(() => slide.level(3)).toThrow(/levels 0\.\.2, not 3/);
      expect(slide.associatedImage('THUMBNAIL')?.widthPx).toBe(256);
      expect(slide.associatedImage('OVERVIEW')).toBeUndefined();
    } finally {
      await slide.close();
    }
  });
});
