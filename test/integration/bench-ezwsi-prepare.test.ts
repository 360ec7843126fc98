/**
 * bench/ezwsi_read.py `prepare`, which copies a slide into the layout EZ-WSI reads for `npm run
 * bench:wsi`, run by Python (pydicom) on real slides and checked with pathembed's own reader: the
 * frames are moved, never re-encoded, into row-major TILED_FULL order, so the copy's pixels are the
 * original's; a slide that is already TILED_FULL is copied as it is; a level with tiles missing is
 * refused, saying why, since filling them would invent pixels.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FrameDecoder } from '../../src/codecs/index.js';
import { loadConfig } from '../../src/config.js';
import { FrameCache } from '../../src/wsi/frame-cache.js';
import { openLocalFrameSource } from '../../src/wsi/local-frame-source.js';
import { PatchReader } from '../../src/wsi/patch-reader.js';
import { openSlide, type Slide } from '../../src/wsi/slide.js';
import { tileFrame } from '../../src/wsi/tile-index.js';
import { pythonEnv } from '../helpers/python-env.js';
import { fixture } from '../helpers/services.js';

const SCRIPT = path.resolve('bench', 'ezwsi_read.py');
const RUN_SCRIPT =
  'import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name="__main__")';
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'pathembed-ezwsi-prepare-'));
const decoder = new FrameDecoder({ decodeThreads: 1 });
afterAll(async () => {
  await decoder.close();
  fs.rmSync(out, { recursive: true, force: true });
});

async function prepare(
  input: string,
  name: string,
): Promise<{ dir: string; report: Record<string, unknown> }> {
  const dir = path.join(out, name);
  const stdout = await (await pythonEnv()).run(RUN_SCRIPT, [SCRIPT, 'prepare', input, dir]);
  return { dir, report: JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown> };
}

async function open(folder: string): Promise<Slide> {
  return openSlide(await openLocalFrameSource(folder));
}

/** Level 0's whole pixel matrix, as pathembed reads it. */
async function levelPixels(slide: Slide): Promise<Uint8Array> {
  const level = slide.level(0);
  const reader = new PatchReader(new FrameCache(slide.source, decoder, { maxBytes: 256 * 1024 * 1024 }), {
    levelTolerance: loadConfig().PATHEMBED_LEVEL_TOLERANCE,
  });
  return (await reader.readRegion(level, 0, 0, level.widthPx, level.heightPx)).data;
}

describe('bench/ezwsi_read.py prepare', () => {
  it('re-orders the dicomizer’s frames row-major as TILED_FULL, moving the encoded bytes and nothing else', async () => {
    const original = await open(fixture('cmu-jpeg').dir);
    const { dir, report } = await prepare(fixture('cmu-jpeg').dir, 'cmu-jpeg');
    expect(report).toMatchObject({
      transferSyntax: '1.2.840.10008.1.2.4.50',
      tileWidth: 240,
      tileHeight: 240,
    });
    const copy = await open(dir);
    try {
      expect(copy.pyramid.levels.map((l) => [l.widthPx, l.heightPx])).toEqual(
        original.pyramid.levels.map((l) => [l.widthPx, l.heightPx]),
      );
      for (const level of copy.pyramid.levels) {
        expect(level.tiling).toBe('TILED_FULL');
        expect(level.imageType[2]).toBe('VOLUME');
      }
      const was = original.level(0);
      const now = copy.level(0);
      expect(original.pyramid.levels[0]!.tiling).not.toBe('TILED_FULL');
      // Frame k of the copy is tile (k mod across, k div across), byte for byte the original's frame of that tile.
      const instance = now.instances[0]!.sopInstanceUid;
      const copied = await copy.source.fetchFrames(
        instance,
        Array.from({ length: now.tilesAcross * now.tilesDown }, (_, k) => k),
      );
      for (let k = 0; k < copied.length; k++) {
        const col = k % now.tilesAcross;
        const row = Math.floor(k / now.tilesAcross);
        const at = tileFrame(was, col, row)!;
        const [frame] = await original.source.fetchFrames(at.instanceUid, [at.frameIndex]);
        expect(Buffer.from(copied[k]!.data).equals(Buffer.from(frame!.data)), `tile ${col},${row}`).toBe(
          true,
        );
      }
      expect(Buffer.from(await levelPixels(copy)).equals(Buffer.from(await levelPixels(original)))).toBe(
        true,
      );
    } finally {
      await copy.close();
      await original.close();
    }
  });

  it('copies a slide that is already TILED_FULL as it is, from one file', async () => {
    const file = fs.readdirSync(fixture('camelyon').dir).find((f) => f.endsWith('.dcm'))!;
    const { dir, report } = await prepare(path.join(fixture('camelyon').dir, file), 'camelyon');
    expect(report).toMatchObject({ transferSyntax: '1.2.840.10008.1.2.4.50', tileWidth: 256 });
    const original = await open(fixture('camelyon').dir);
    const copy = await open(dir);
    try {
      expect(copy.level(0).tiling).toBe('TILED_FULL');
      expect(Buffer.from(await levelPixels(copy)).equals(Buffer.from(await levelPixels(original)))).toBe(
        true,
      );
    } finally {
      await copy.close();
      await original.close();
    }
  });

  it('refuses a level with tiles missing, saying EZ-WSI reads only TILED_FULL levels', async () => {
    await expect(prepare(fixture('synthetic-sparse').dir, 'sparse')).rejects.toThrow(
      /TILED_SPARSE level with 8 of its 12 tiles; EZ-WSI reads only TILED_FULL levels/,
    );
  });

  it('refuses a level whose frames do not cover each tile position once, rather than misplace tiles', async () => {
    // The dicomizer's smallest level with its second frame moved onto the first one's position.
    const dir = path.join(out, 'duplicate-position');
    fs.mkdirSync(dir);
    const files = fs.readdirSync(fixture('cmu-jpeg').dir).filter((f) => f.endsWith('.dcm'));
    const edit = [
      'import pydicom, sys, os',
      'smallest = min(sys.argv[2:], key=lambda p: int(pydicom.dcmread(p, stop_before_pixels=True).TotalPixelMatrixColumns))',
      'ds = pydicom.dcmread(smallest)',
      'first, second = (f.PlanePositionSlideSequence[0] for f in ds.PerFrameFunctionalGroupsSequence[:2])',
      'second.RowPositionInTotalImagePixelMatrix = first.RowPositionInTotalImagePixelMatrix',
      'second.ColumnPositionInTotalImagePixelMatrix = first.ColumnPositionInTotalImagePixelMatrix',
      'ds.save_as(os.path.join(sys.argv[1], "level.dcm"))',
    ].join('\n');
    await (await pythonEnv()).run(edit, [dir, ...files.map((f) => path.join(fixture('cmu-jpeg').dir, f))]);
    await expect(prepare(dir, 'duplicate-position-out')).rejects.toThrow(
      /has \d+ frames but not one on each of its \d+ tile positions/,
    );
  });

  it('refuses a level split into a concatenation as that, not as tiles missing', async () => {
    await expect(prepare(fixture('cmu-jpeg-concat').dir, 'concat')).rejects.toThrow(
      /is part \d+ of a concatenation \(a level split over several instances\)/,
    );
  });
});
