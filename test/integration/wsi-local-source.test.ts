import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CMU } from '../../scripts/dev-services/fixtures.js';
import { Tag } from '../../src/dicom-tags.js';
import { isPathembedError, type PathembedError } from '../../src/errors.js';
import { writeSyntheticWsi } from '../../src/sample/synthetic-wsi-writer.js';
import { TransferSyntax } from '../../src/uids.js';
import { LocalFrameSource } from '../../src/wsi/local-frame-source.js';
import { pixelSpacingUm } from '../../src/wsi/pixel-spacing.js';
import { buildSlidePyramid } from '../../src/wsi/slide-pyramid.js';
import { tileFrame } from '../../src/wsi/tile-index.js';
import { fixture } from '../helpers/services.js';

const require = createRequire(import.meta.url);
const dcmjs = require('dcmjs') as {
  data: { DicomMessage: { readFile(b: ArrayBuffer): { dict: Record<string, { Value: ArrayBuffer[] }> } } };
  log: { getLogger(name: string): { setLevel(level: string): void } };
};
// dcmjs complains about cmu-raw's implicit-VR pixel data ("ox") while it reads it as the reference.
dcmjs.log.getLogger('validation.dcmjs').setLevel('silent');

/** Every frame of a file as dcmjs reads it (the whole file in memory): an independent reference. */
async function dcmjsFrames(file: string): Promise<Uint8Array[]> {
  const buf = await fs.readFile(file);
  const parsed = dcmjs.data.DicomMessage.readFile(
    buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength),
  );
  return parsed.dict['7FE00010'].Value.map((v) => new Uint8Array(v));
}

async function refusal(p: Promise<unknown>): Promise<PathembedError> {
  try {
    await p;
  } catch (err) {
    if (isPathembedError(err)) return err;
    throw err;
  }
  throw new Error('expected a PathembedError');
}

let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-local-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('LocalFrameSource on real files', () => {
  it('reads the Camelyon TILED_FULL instance: 1152 x 700, 256 px tiles, 15 JPEG frames, 28.97 um/px', async () => {
    const source = await LocalFrameSource.open(fixture('camelyon').dir);
    try {
      const metadata = await source.seriesMetadata();
      expect(metadata.length).toBe(1);
      expect(metadata[0][Tag.TransferSyntaxUID].Value).toEqual([TransferSyntax.JpegBaseline]);
      expect(metadata[0][Tag.PixelData]).toBeUndefined();
      const p = buildSlidePyramid(metadata);
      expect(p.levels.length).toBe(1);
      const [level] = p.levels;
      expect([level.widthPx, level.heightPx, level.tileWidthPx, level.tileHeightPx]).toEqual([
        1152, 700, 256, 256,
      ]);
      expect([level.tilesAcross, level.tilesDown, level.frameCount]).toEqual([5, 3, 15]);
      expect(level.tiling).toBe('TILED_FULL');
      expect(level.frame.photometricInterpretation).toBe('YBR_FULL_422');
      expect(pixelSpacingUm(level).x).toBeCloseTo(28.969, 6);
      expect(pixelSpacingUm(level).y).toBeCloseTo(28.968, 6);
      expect(level.instances[0].transferSyntaxUid).toBe(TransferSyntax.JpegBaseline);

      const reference = await dcmjsFrames(path.join(fixture('camelyon').dir, 'camelyon.dcm'));
      const uid = level.instances[0].sopInstanceUid;
      const frames = await source.fetchFrames(uid, [14, 0, 7]);
      expect(frames.map((f) => f.transferSyntaxUid)).toEqual(Array(3).fill(TransferSyntax.JpegBaseline));
      expect(Buffer.from(frames[0].data).equals(Buffer.from(reference[14]))).toBe(true);
      expect(Buffer.from(frames[1].data).equals(Buffer.from(reference[0]))).toBe(true);
      expect(Buffer.from(frames[2].data).equals(Buffer.from(reference[7]))).toBe(true);
      expect(source.stats).toEqual({
        requests: 3,
        frames: 3,
        bytes: reference[14].length + reference[0].length + reference[7].length,
      });
    } finally {
      await source.close();
    }
  });

  for (const name of ['cmu-jpeg', 'cmu-jpeg2000', 'cmu-raw']) {
    it(`reads ${name} (OrthancWSIDicomizer): 4 levels, 2220 x 2967 at 0.499 um/px, per-frame positions`, async () => {
      const source = await LocalFrameSource.open(fixture(name).dir);
      try {
        const p = buildSlidePyramid(await source.seriesMetadata());
        expect(p.levels.map((l) => [l.widthPx, l.heightPx])).toEqual([
          [2220, 2967],
          [1110, 1484],
          [555, 742],
          [278, 371],
        ]);
        expect(p.levels.map((l) => l.frameCount)).toEqual([130, 35, 12, 4]);
        expect(p.levels.every((l) => l.tiling === 'UNSPECIFIED' && l.layout.kind === 'sparse')).toBe(true);
        expect(p.levels.every((l) => l.storedTileCount === l.tilesAcross * l.tilesDown)).toBe(true);
        const spacing = pixelSpacingUm(p.levels[0]);
        expect(spacing.x).toBeCloseTo(CMU.mppUm, 6);
        expect(spacing.y).toBeCloseTo(CMU.mppUm, 6);
        expect(p.levels[0].pixelSpacingSource).toBe('imaged-volume');
        expect(pixelSpacingUm(p.levels[1]).x).toBeCloseTo(0.998, 6);

        // Frames: byte-identical to what dcmjs reads from the whole file, at the positions the file states.
        const level = p.levels[2];
        const file = source.fileOf(level.instances[0].sopInstanceUid)!;
        const reference = await dcmjsFrames(file);
        const frameBytes = name === 'cmu-raw' ? 240 * 240 * 3 : undefined;
        for (let row = 0; row < level.tilesDown; row++) {
          for (let col = 0; col < level.tilesAcross; col++) {
            const tf = tileFrame(level, col, row)!;
            const [frame] = await source.fetchFrames(tf.instanceUid, [tf.frameIndex]);
            const expected = frameBytes
              ? reference[0].subarray(tf.frameIndex * frameBytes, (tf.frameIndex + 1) * frameBytes)
              : reference[tf.frameIndex];
            expect(Buffer.from(frame.data).equals(Buffer.from(expected))).toBe(true);
          }
        }
      } finally {
        await source.close();
      }
    });
  }

  it('reads the CMU concatenation as 4 levels (not 5), level 0 in two parts', async () => {
    const source = await LocalFrameSource.open(fixture('cmu-jpeg-concat').dir);
    try {
      const metadata = await source.seriesMetadata();
      expect(metadata.length).toBe(5);
      const p = buildSlidePyramid(metadata);
      expect(p.levels.length).toBe(4);
      expect(p.levels.map((l) => [l.tilesAcross, l.tilesDown, l.frameCount])).toEqual([
        [19, 25, 475],
        [10, 13, 130],
        [5, 7, 35],
        [3, 4, 12],
      ]);
      const level0 = p.levels[0];
      expect(level0.tileWidthPx).toBe(120);
      expect(level0.concatenationUid).toBeDefined();
      // Where the dicomizer splits level 0 depends on compressed tile sizes in its threads' write
      // order, so it varies between conversions; the parts must still tile the level exactly.
      const [first, second] = level0.instances;
      expect(level0.instances.length).toBe(2);
      expect(first.concatenationFrameOffset).toBe(0);
      expect(second.concatenationFrameOffset).toBe(first.frameCount);
      expect(first.frameCount + second.frameCount).toBe(475);
      expect(first.frameCount).toBeGreaterThan(0);
      // The last tile lies in the second part.
      const last = tileFrame(level0, 18, 24)!;
      expect(last.instanceUid).toBe(level0.instances[1].sopInstanceUid);
      const [frame] = await source.fetchFrames(last.instanceUid, [last.frameIndex]);
      expect(Buffer.from(frame.data.subarray(0, 3)).toString('hex')).toBe('ffd8ff');
    } finally {
      await source.close();
    }
  });
});

describe('LocalFrameSource on encapsulated layouts', () => {
  it('reads frames split over several fragments, with and without a Basic Offset Table', async () => {
    const base = {
      widthPx: 600,
      heightPx: 300,
      downsamples: [1],
      transferSyntax: 'jpeg-baseline',
      seed: 'fragments',
    } as const;
    await writeSyntheticWsi(path.join(tmp, 'one'), base);
    await writeSyntheticWsi(path.join(tmp, 'bot'), { ...base, fragmentsPerFrame: 3 });
    await writeSyntheticWsi(path.join(tmp, 'nobot'), {
      ...base,
      fragmentsPerFrame: 3,
      basicOffsetTable: false,
    });
    await writeSyntheticWsi(path.join(tmp, 'nobot-single'), { ...base, basicOffsetTable: false });
    const read = async (name: string) => {
      const source = await LocalFrameSource.open(path.join(tmp, name));
      try {
        const [level] = buildSlidePyramid(await source.seriesMetadata()).levels;
        return await source.fetchFrames(level.instances[0].sopInstanceUid, [0, 1, 2, 3, 4, 5]);
      } finally {
        await source.close();
      }
    };
    const expected = await read('one');
    expect(expected.length).toBe(6);
    for (const name of ['bot', 'nobot', 'nobot-single']) {
      const frames = await read(name);
      frames.forEach((f, i) => {
        expect(Buffer.from(f.data).equals(Buffer.from(expected[i].data))).toBe(true);
      });
    }
    const fragmented = await LocalFrameSource.open(path.join(tmp, 'bot'));
    const [level] = buildSlidePyramid(await fragmented.seriesMetadata()).levels;
    await fragmented.fetchFrames(level.instances[0].sopInstanceUid, [2]);
    expect(fragmented.stats.requests).toBe(3); // one read per fragment
    expect(fragmented.stats.frames).toBe(1);
    await fragmented.close();
  });
});

describe('LocalFrameSource errors', () => {
  it('LOCAL_SOURCE_ERROR for a missing or empty folder', async () => {
    const missing = await refusal(LocalFrameSource.open(path.join(tmp, 'does-not-exist')));
    expect(missing.code).toBe('LOCAL_SOURCE_ERROR');
    expect(missing.message).toContain('is not a readable folder');
    await fs.mkdir(path.join(tmp, 'empty'));
    const empty = await refusal(LocalFrameSource.open(path.join(tmp, 'empty')));
    expect(empty.code).toBe('LOCAL_SOURCE_ERROR');
    expect(empty.message).toBe(`${path.join(tmp, 'empty')} holds no files`);
  });

  it('LOCAL_SOURCE_ERROR naming a file that is not DICOM or is truncated', async () => {
    const dir = path.join(tmp, 'bad');
    await fs.mkdir(dir);
    await fs.copyFile(path.join(fixture('camelyon').dir, 'camelyon.dcm'), path.join(dir, 'a.dcm'));
    await fs.writeFile(
      path.join(dir, 'notes.txt'),
      'not a DICOM file at all, but long enough to have a preamble '.repeat(4),
    );
    const notDicom = await refusal(LocalFrameSource.open(dir));
    expect(notDicom.code).toBe('LOCAL_SOURCE_ERROR');
    expect(notDicom.message).toBe(
      `${path.join(dir, 'notes.txt')} cannot be read as DICOM: not a DICOM Part 10 file (no DICM marker after the 128-byte preamble)`,
    );
    await fs.rm(path.join(dir, 'notes.txt'));
    const whole = await fs.readFile(path.join(dir, 'a.dcm'));
    await fs.writeFile(path.join(dir, 'b.dcm'), whole.subarray(0, whole.length - 5000));
    const truncated = await refusal(LocalFrameSource.open(dir));
    expect(truncated.code).toBe('LOCAL_SOURCE_ERROR');
    expect(truncated.message).toContain(`${path.join(dir, 'b.dcm')} cannot be read as DICOM`);
  });

  it('LOCAL_SOURCE_ERROR for whole-slide images of two series in one folder', async () => {
    const dir = path.join(tmp, 'two-series');
    await writeSyntheticWsi(dir, {
      widthPx: 100,
      heightPx: 100,
      downsamples: [1],
      seed: 'one',
      filePrefix: 'a',
    });
    await writeSyntheticWsi(dir, {
      widthPx: 100,
      heightPx: 100,
      downsamples: [1],
      seed: 'two',
      filePrefix: 'b',
    });
    const err = await refusal(LocalFrameSource.open(dir));
    expect(err.code).toBe('LOCAL_SOURCE_ERROR');
    expect(err.message).toContain('holds whole-slide images of 2 series');
  });

  it('LOCAL_SOURCE_ERROR for a frame index outside the instance', async () => {
    const source = await LocalFrameSource.open(fixture('camelyon').dir);
    const [ds] = await source.seriesMetadata();
    const err = await refusal(source.fetchFrames(String(ds[Tag.SOPInstanceUID].Value?.[0]), [15]));
    expect(err.code).toBe('LOCAL_SOURCE_ERROR');
    expect(err.message).toMatch(/^Frame index 15 is outside 0\.\.14 of .*camelyon\.dcm$/);
    await source.close();
  });
});
