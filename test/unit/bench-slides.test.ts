import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_PATCHES,
  dicomFiles,
  gridRects,
  gridRegion,
  maxPatchesArg,
  userSlides,
} from '../../bench/bench-slides.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pathembed-bench-slides-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function part10(file: string): void {
  const bytes = Buffer.alloc(200);
  bytes.write('DICM', 128, 'latin1');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, bytes);
}

describe('the grid a benchmark reads', () => {
  it('is the whole level while its grid fits in the limit', () => {
    const level = { widthPx: 2220, heightPx: 2967 };
    const region = gridRegion(level, 224, 224, DEFAULT_MAX_PATCHES);
    expect(region).toEqual({ x: 0, y: 0, width: 2220, height: 2967 });
    // 9 across (2220 = 9 x 224 + 204), 13 down: the 117 patches of the fixtures' EZ-WSI rows.
    expect(gridRects(region, 224, 224)).toHaveLength(117);
  });

  it('is a centred window on the stride grid of at most the limit on a whole-slide level', () => {
    const level = { widthPx: 98_304, heightPx: 65_536 };
    const region = gridRegion(level, 224, 224, 1000);
    const rects = gridRects(region, 224, 224);
    expect(rects.length).toBeLessThanOrEqual(1000);
    expect(rects.length).toBeGreaterThan(950);
    // Every patch is a patch of the whole level's grid, inside the level.
    for (const r of rects) {
      expect(r.x % 224).toBe(0);
      expect(r.y % 224).toBe(0);
      expect(r.x + r.width).toBeLessThanOrEqual(level.widthPx);
      expect(r.y + r.height).toBeLessThanOrEqual(level.heightPx);
    }
    // Centred: the window's middle is within a stride of the level's.
    expect(Math.abs(region.x + region.width / 2 - level.widthPx / 2)).toBeLessThanOrEqual(224);
    expect(Math.abs(region.y + region.height / 2 - level.heightPx / 2)).toBeLessThanOrEqual(224);
  });

  it('keeps to the level on a long thin one, and reads the overlapping stride as the same window would', () => {
    const level = { widthPx: 100_000, heightPx: 500 };
    const rects = gridRects(gridRegion(level, 224, 224, 300), 224, 224);
    // 2 rows fit: 150 columns of them.
    expect(rects).toHaveLength(300);
    expect(new Set(rects.map((r) => r.y))).toEqual(new Set([0, 224]));
    const half = gridRects(gridRegion(level, 224, 112, 300), 224, 112);
    expect(half.length).toBeLessThanOrEqual(300);
    expect(half.length).toBeGreaterThan(290);
  });
});

describe('the --slide and --max-patches arguments', () => {
  it('takes folders and files, names them by their base name, and makes equal names unique', () => {
    const a = path.join(dir, 'one', 'slide-a');
    const b = path.join(dir, 'two', 'slide-a');
    const file = path.join(dir, 'lymph-node.dcm');
    part10(path.join(a, 'x.dcm'));
    part10(path.join(b, 'x.dcm'));
    part10(file);
    expect(userSlides(['--slide', a, '--runs', '3', '--slide', b, '--slide', file])).toEqual([
      { name: 'slide-a', path: a },
      { name: 'slide-a-2', path: b },
      { name: 'lymph-node', path: file },
    ]);
    expect(() => userSlides(['--slide', path.join(dir, 'missing')])).toThrow(/no such file or folder/);
    expect(() => userSlides(['--slide'])).toThrow(/needs a path/);
  });

  it('finds the Part 10 files of a folder, in sub-folders too, and leaves other files and the DICOMDIR out', () => {
    const slide = path.join(dir, 'nested');
    part10(path.join(slide, 'level-0', 'a'));
    part10(path.join(slide, 'level-1', 'b.dcm'));
    fs.writeFileSync(path.join(slide, 'README.txt'), 'not DICOM');
    part10(path.join(slide, 'DICOMDIR'));
    fs.writeFileSync(path.join(slide, 'level-0', 'short'), 'DICM');
    expect(dicomFiles(slide).map((f) => path.relative(slide, f))).toEqual([
      path.join('level-0', 'a'),
      path.join('level-1', 'b.dcm'),
    ]);
  });

  it('reads --max-patches, refusing what is not a positive integer', () => {
    expect(maxPatchesArg([])).toBe(DEFAULT_MAX_PATCHES);
    expect(maxPatchesArg(['--max-patches', '250'])).toBe(250);
    expect(() => maxPatchesArg(['--max-patches', '0'])).toThrow(/positive integer/);
    expect(() => maxPatchesArg(['--max-patches', 'many'])).toThrow(/positive integer/);
  });
});
