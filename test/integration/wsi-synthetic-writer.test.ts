import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../../scripts/dev-services/binaries.js';
import { SYNTHETIC_FIXTURES } from '../../scripts/dev-services/fixtures.js';
import type { DicomJsonDataset } from '../../src/dicom-json.js';
import { Tag } from '../../src/dicom-tags.js';
import { isPathembedError } from '../../src/errors.js';
import { deterministicUid } from '../../src/sample/deterministic-uid.js';
import {
  decodeCoordinatePixel,
  encodeCoordinatePixel,
  hematoxylinEosinPattern,
} from '../../src/sample/pixel-patterns.js';
import { writeSampleSlide } from '../../src/sample/sample-slide.js';
import { type SyntheticWsi, writeSyntheticWsi } from '../../src/sample/synthetic-wsi-writer.js';
import { TransferSyntax } from '../../src/uids.js';
import { LocalFrameSource } from '../../src/wsi/local-frame-source.js';
import { pixelSpacingUm } from '../../src/wsi/pixel-spacing.js';
import { pyramidFromJson, pyramidToJson } from '../../src/wsi/pyramid-json.js';
import type { PyramidLevel, SlidePyramid } from '../../src/wsi/slide-level.js';
import { buildSlidePyramid } from '../../src/wsi/slide-pyramid.js';
import { tileFrame } from '../../src/wsi/tile-index.js';
import { fixture } from '../helpers/services.js';

const run = promisify(execFile);

/** dciodvfy's report of one file (it writes to stderr and exits 0 on errors too). */
async function dciodvfy(file: string): Promise<string[]> {
  const bin = requireBinary('dciodvfy');
  const { stdout, stderr } = await run(bin, [file]).catch((err) => err as { stdout: string; stderr: string });
  return `${stdout}${stderr}`.split('\n').filter((l) => l.trim() !== '');
}

let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-synthetic-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

type FixtureName = keyof typeof SYNTHETIC_FIXTURES;

/** The writer's description of a fixture: the same options write the same UIDs and layout. */
async function layoutOf(name: FixtureName): Promise<SyntheticWsi> {
  return writeSyntheticWsi(path.join(tmp, `layout-${name}`), SYNTHETIC_FIXTURES[name]);
}

async function pyramidOf(dir: string): Promise<{ pyramid: SlidePyramid; source: LocalFrameSource }> {
  const source = await LocalFrameSource.open(dir);
  return { pyramid: buildSlidePyramid(await source.seriesMetadata()), source };
}

/** Every tile of every level maps to the frame the writer put it in, and omitted tiles to undefined. */
function expectLayout(pyramid: SlidePyramid, written: SyntheticWsi): void {
  expect(pyramid.levels.length).toBe(written.levels.length);
  for (const [i, w] of written.levels.entries()) {
    const level = pyramid.levels[i];
    expect([level.widthPx, level.heightPx, level.tilesAcross, level.tilesDown]).toEqual([
      w.widthPx,
      w.heightPx,
      w.tilesAcross,
      w.tilesDown,
    ]);
    expect(level.instances.map((x) => [x.sopInstanceUid, x.frameCount, x.concatenationFrameOffset])).toEqual(
      w.instances.map((x) => [x.sopInstanceUid, x.frameCount, x.concatenationFrameOffset]),
    );
    for (let row = 0; row < w.tilesDown; row++) {
      for (let col = 0; col < w.tilesAcross; col++) {
        const entry = w.tiles[row * w.tilesAcross + col];
        const expected = entry
          ? { instanceUid: w.instances[entry[0]].sopInstanceUid, frameIndex: entry[1] }
          : undefined;
        expect(tileFrame(level, col, row)).toEqual(expected);
      }
    }
  }
}

/** Checks every pixel of every stored tile of a raw level against the coordinate code. */
async function expectCoordinatePixels(source: LocalFrameSource, level: PyramidLevel): Promise<number> {
  let checked = 0;
  for (let row = 0; row < level.tilesDown; row++) {
    for (let col = 0; col < level.tilesAcross; col++) {
      const tf = tileFrame(level, col, row);
      if (!tf) continue;
      const [frame] = await source.fetchFrames(tf.instanceUid, [tf.frameIndex]);
      expect(frame.data.length).toBe(level.tileWidthPx * level.tileHeightPx * 3);
      for (let y = 0; y < level.tileHeightPx; y++) {
        for (let x = 0; x < level.tileWidthPx; x++) {
          const o = (y * level.tileWidthPx + x) * 3;
          const gx = col * level.tileWidthPx + x;
          const gy = row * level.tileHeightPx + y;
          const pixel = [frame.data[o], frame.data[o + 1], frame.data[o + 2]];
          if (gx < level.widthPx && gy < level.heightPx) {
            const decoded = decodeCoordinatePixel(pixel[0], pixel[1], pixel[2]);
            if (decoded.x !== gx || decoded.y !== gy) {
              throw new Error(
                `level ${level.index} pixel (${gx}, ${gy}) decodes to (${decoded.x}, ${decoded.y})`,
              );
            }
            checked++;
          } else if (pixel.some((v) => v !== 255)) {
            throw new Error(`level ${level.index} padding at (${gx}, ${gy}) is not white`);
          }
        }
      }
    }
  }
  return checked;
}

describe('coordinate encoding', () => {
  it('round-trips every coordinate up to 4095', () => {
    for (const [x, y] of [
      [0, 0],
      [255, 256],
      [999, 699],
      [4095, 4095],
      [1234, 3210],
    ]) {
      const [r, g, b] = encodeCoordinatePixel(x, y);
      expect(decodeCoordinatePixel(r, g, b)).toEqual({ x, y });
    }
    expect(encodeCoordinatePixel(0x3a7, 0x2bc)).toEqual([0xa7, 0xbc, 0x23]);
  });
});

describe('synthetic fixtures', () => {
  it('synthetic-full: TILED_FULL, 3 levels, partial edge tiles, every pixel encodes its own coordinates', async () => {
    const written = await layoutOf('synthetic-full');
    const { pyramid, source } = await pyramidOf(fixture('synthetic-full').dir);
    try {
      expectLayout(pyramid, written);
      expect(pyramid.levels.map((l) => [l.widthPx, l.heightPx, l.frameCount])).toEqual([
        [1000, 700, 12],
        [500, 350, 4],
        [250, 175, 1],
      ]);
      expect(pyramid.levels.map((l) => l.tiling)).toEqual(['TILED_FULL', 'TILED_FULL', 'TILED_FULL']);
      expect(pyramid.levels.map((l) => pixelSpacingUm(l).x)).toEqual([0.5, 1, 2]);
      expect(pyramid.levels.every((l) => l.pixelSpacingSource === 'pixel-spacing')).toBe(true);
      expect(pyramid.levels[0].imageType).toEqual(['ORIGINAL', 'PRIMARY', 'VOLUME', 'NONE']);
      expect(pyramid.levels[1].imageType).toEqual(['DERIVED', 'PRIMARY', 'VOLUME', 'RESAMPLED']);
      expect(pyramid.levels[0].instances[0].transferSyntaxUid).toBe(TransferSyntax.ExplicitVRLittleEndian);
      expect(pyramid.levels[0].frame.photometricInterpretation).toBe('RGB');
      expect(pyramid.associatedImages.map((a) => [a.kind, a.widthPx, a.heightPx])).toEqual([
        ['LABEL', 256, 128],
        ['THUMBNAIL', 256, 179],
      ]);
      let checked = 0;
      for (const level of pyramid.levels) checked += await expectCoordinatePixels(source, level);
      expect(checked).toBe(1000 * 700 + 500 * 350 + 250 * 175);
    } finally {
      await source.close();
    }
  });

  it('synthetic-sparse: TILED_SPARSE, shuffled frames, omitted tiles are undefined', async () => {
    const written = await layoutOf('synthetic-sparse');
    const { pyramid, source } = await pyramidOf(fixture('synthetic-sparse').dir);
    try {
      expectLayout(pyramid, written);
      const [level0, level1] = pyramid.levels;
      expect(level0.tiling).toBe('TILED_SPARSE');
      expect(level0.layout.kind).toBe('sparse');
      expect([level0.frameCount, level0.storedTileCount]).toEqual([8, 8]);
      expect(tileFrame(level0, 1, 0)).toBeUndefined();
      expect(tileFrame(level0, 0, 1)).toBeUndefined();
      expect(tileFrame(level0, 3, 1)).toBeUndefined();
      expect(tileFrame(level0, 0, 0)).toBeDefined();
      expect(tileFrame(level1, 1, 0)).toBeUndefined();
      expect(level1.storedTileCount).toBe(3);
      // Shuffled: frame order is not row-major, yet every stored pixel is where it belongs.
      expect(written.levels[0].tiles.filter((t) => t !== null).map((t) => t![1])).not.toEqual([
        0, 1, 2, 3, 4, 5, 6, 7,
      ]);
      for (const level of pyramid.levels) await expectCoordinatePixels(source, level);
    } finally {
      await source.close();
    }
  });

  it('synthetic-noorg: per-frame positions, no DimensionOrganizationType, OrthancWSIDicomizer-swapped spacing', async () => {
    const written = await layoutOf('synthetic-noorg');
    const { pyramid, source } = await pyramidOf(fixture('synthetic-noorg').dir);
    try {
      expectLayout(pyramid, written);
      const metadata = await source.seriesMetadata();
      expect(metadata.every((ds) => ds[Tag.DimensionOrganizationType] === undefined)).toBe(true);
      expect(pyramid.levels.map((l) => l.tiling)).toEqual(['UNSPECIFIED', 'UNSPECIFIED', 'UNSPECIFIED']);
      expect(pyramid.levels.every((l) => l.pixelSpacingSource === 'imaged-volume')).toBe(true);
      // ImagedVolumeWidth/Height are FL (float32): 0.35 mm is 0.3499999940 mm.
      expect(pixelSpacingUm(pyramid.levels[0]).x).toBeCloseTo(0.5, 7);
      expect(pixelSpacingUm(pyramid.levels[0]).y).toBeCloseTo(0.5, 7);
      expect(pixelSpacingUm(pyramid.levels[2]).x).toBeCloseTo(2, 7);
      await expectCoordinatePixels(source, pyramid.levels[0]);
    } finally {
      await source.close();
    }
  });

  it('synthetic-concat: level 0 is one level over a 3-part concatenation', async () => {
    const written = await layoutOf('synthetic-concat');
    const { pyramid, source } = await pyramidOf(fixture('synthetic-concat').dir);
    try {
      expect((await source.seriesMetadata()).length).toBe(5);
      expectLayout(pyramid, written);
      const [level0] = pyramid.levels;
      expect(pyramid.levels.length).toBe(3);
      expect(level0.tiling).toBe('TILED_FULL');
      expect(level0.concatenationUid).toBe(written.levels[0].concatenationUid);
      expect(level0.instances.map((i) => [i.frameCount, i.concatenationFrameOffset])).toEqual([
        [5, 0],
        [5, 5],
        [2, 10],
      ]);
      // Frame n = row * 4 + col: tile (0, 1) is frame 4 of part 1, tile (1, 1) frame 0 of part 2.
      expect(tileFrame(level0, 0, 1)).toEqual({
        instanceUid: level0.instances[0].sopInstanceUid,
        frameIndex: 4,
      });
      expect(tileFrame(level0, 1, 1)).toEqual({
        instanceUid: level0.instances[1].sopInstanceUid,
        frameIndex: 0,
      });
      expect(tileFrame(level0, 3, 2)).toEqual({
        instanceUid: level0.instances[2].sopInstanceUid,
        frameIndex: 1,
      });
      await expectCoordinatePixels(source, level0);
    } finally {
      await source.close();
    }
  });

  it('synthetic-jpeg: JPEG baseline YBR_FULL_422 frames that decode to roughly the coordinate code', async () => {
    const { pyramid, source } = await pyramidOf(fixture('synthetic-jpeg').dir);
    try {
      const level = pyramid.levels[1];
      expect(level.frame.photometricInterpretation).toBe('YBR_FULL_422');
      expect(level.instances[0].transferSyntaxUid).toBe(TransferSyntax.JpegBaseline);
      const metadata = await source.seriesMetadata();
      expect(metadata[0][Tag.LossyImageCompression].Value).toEqual(['01']);
      const tf = tileFrame(level, 0, 0)!;
      const [frame] = await source.fetchFrames(tf.instanceUid, [tf.frameIndex]);
      const { data, info } = await sharp(Buffer.from(frame.data)).raw().toBuffer({ resolveWithObject: true });
      expect([info.width, info.height, info.channels]).toEqual([256, 256, 3]);
      // Green carries y & 0xff, smooth along rows: JPEG q95 keeps it within a few levels.
      const o = (100 * 256 + 50) * 3;
      expect(Math.abs(data[o + 1] - 100)).toBeLessThanOrEqual(4);
    } finally {
      await source.close();
    }
  });
});

describe('synthetic writer', () => {
  it('passes dciodvfy with no errors (TILED_FULL levels, thumbnail, label, overview)', async () => {
    const written = await writeSyntheticWsi(path.join(tmp, 'dciodvfy'), {
      widthPx: 1000,
      heightPx: 700,
      associatedImages: ['THUMBNAIL', 'LABEL', 'OVERVIEW'],
      seed: 'dciodvfy',
    });
    const jpeg = await writeSyntheticWsi(path.join(tmp, 'dciodvfy-jpeg'), {
      widthPx: 600,
      heightPx: 400,
      transferSyntax: 'jpeg-baseline',
      seed: 'dciodvfy-jpeg',
    });
    for (const file of [...written.files, ...jpeg.files]) {
      const report = await dciodvfy(file);
      expect(report[0]).toBe('VLWholeSlideMicroscopyImage');
      expect(
        report.filter((l) => /^(Error|Warning)/.test(l)),
        file,
      ).toEqual([]);
    }
  });

  it("leaves only dciodvfy's per-instance tile count check for sparse levels and concatenation parts", async () => {
    // dciodvfy expects every instance to hold the whole tile grid; TILED_SPARSE may omit tiles and a
    // concatenation part holds a share of the frames, both as PS3.3 allows.
    const written = await writeSyntheticWsi(path.join(tmp, 'dciodvfy-sparse'), {
      widthPx: 1000,
      heightPx: 700,
      tiling: 'TILED_SPARSE',
      omitTile: (level, col, row) => level === 0 && col === 1 && row === 1,
      maxFramesPerInstance: 6,
      seed: 'dciodvfy-sparse',
    });
    for (const file of written.files) {
      const errors = (await dciodvfy(file)).filter((l) => /^(Error|Warning)/.test(l));
      for (const e of errors) {
        expect(e).toMatch(
          /^Error - NumberOfFrames does not match expected value for tiled total pixel matrix got \d+ expected 12/,
        );
      }
    }
  });

  it('writes byte-identical files for the same options', async () => {
    const options = { widthPx: 300, heightPx: 200, transferSyntax: 'jpeg-baseline', seed: 'same' } as const;
    const a = await writeSyntheticWsi(path.join(tmp, 'same-a'), options);
    const b = await writeSyntheticWsi(path.join(tmp, 'same-b'), options);
    expect(a.files.length).toBe(3);
    for (const [i, file] of a.files.entries()) {
      expect((await fs.readFile(file)).equals(await fs.readFile(b.files[i]))).toBe(true);
    }
    expect(a.seriesInstanceUid).toBe(deterministicUid('same', 'series'));
    expect(a.seriesInstanceUid).toMatch(/^2\.25\.\d{1,39}$/);
  });

  it('refuses omitted tiles with TILED_FULL and malformed downsamples', async () => {
    const refuse = async (p: Promise<unknown>) => {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isPathembedError(err, 'INVALID_ARGUMENT')).toBe(true);
    };
    await refuse(
      writeSyntheticWsi(path.join(tmp, 'x1'), { widthPx: 10, heightPx: 10, omitTile: () => true }),
    );
    await refuse(writeSyntheticWsi(path.join(tmp, 'x2'), { widthPx: 10, heightPx: 10, downsamples: [2, 4] }));
  });
});

describe('slide model refusals on synthetic metadata', () => {
  async function metadataOf(name: FixtureName): Promise<DicomJsonDataset[]> {
    const source = await LocalFrameSource.open(fixture(name).dir);
    const metadata = structuredClone(await source.seriesMetadata());
    await source.close();
    return metadata;
  }

  it('DICOM_TILED_FULL_ERROR when a concatenation part loses a frame', async () => {
    const metadata = await metadataOf('synthetic-concat');
    const part3 = metadata.find((ds) => ds[Tag.ConcatenationFrameOffsetNumber]?.Value?.[0] === 10)!;
    part3[Tag.NumberOfFrames] = { vr: 'IS', Value: [1] };
    expect(() => buildSlidePyramid(metadata)).toThrow(
      /^TILED_FULL level 1000 x 700 px with 256 x 256 px tiles needs 4 x 3 = 12 frames but its 3 instances hold 11$/,
    );
  });

  it('UNSUPPORTED_WSI when per-frame Z offsets differ (focal planes)', async () => {
    const metadata = await metadataOf('synthetic-sparse');
    const level0 = metadata.find((ds) => ds[Tag.TotalPixelMatrixColumns]?.Value?.[0] === 1000)!;
    const frame = level0[Tag.PerFrameFunctionalGroupsSequence].Value![3] as DicomJsonDataset;
    const position = frame[Tag.PlanePositionSlideSequence].Value![0] as DicomJsonDataset;
    position[Tag.ZOffsetInSlideCoordinateSystem] = { vr: 'DS', Value: [0.002] };
    let err: unknown;
    try {
      buildSlidePyramid(metadata);
    } catch (e) {
      err = e;
    }
    expect(isPathembedError(err, 'UNSUPPORTED_WSI')).toBe(true);
    expect((err as Error).message).toMatch(
      /^Several focal planes at one level: frames of instance .* lie at Z offsets 0, 0\.002 mm/,
    );
  });

  it('merges per-frame instances of one size that are not a concatenation; refuses TILED_FULL copies', async () => {
    const stripConcatenation = (metadata: DicomJsonDataset[]) => {
      for (const ds of metadata) {
        for (const tag of [
          Tag.ConcatenationUID,
          Tag.InConcatenationNumber,
          Tag.InConcatenationTotalNumber,
          Tag.ConcatenationFrameOffsetNumber,
          Tag.SOPInstanceUIDOfConcatenationSource,
        ]) {
          delete ds[tag];
        }
      }
      return metadata;
    };
    const sparseDir = path.join(tmp, 'split-sparse');
    const written = await writeSyntheticWsi(sparseDir, {
      widthPx: 1000,
      heightPx: 700,
      tiling: 'TILED_SPARSE',
      maxFramesPerInstance: 5,
      frameOrder: 'shuffled',
      seed: 'split-sparse',
    });
    const source = await LocalFrameSource.open(sparseDir);
    const merged = buildSlidePyramid(stripConcatenation(structuredClone(await source.seriesMetadata())));
    await source.close();
    expect(merged.levels[0].instances.length).toBe(3);
    expect(merged.levels[0].concatenationUid).toBeUndefined();
    expect(merged.levels[0].storedTileCount).toBe(12);
    expect(merged.levels[0].instances.every((i) => i.concatenationFrameOffset === 0)).toBe(true);
    const w = written.levels[0];
    for (let slot = 0; slot < w.tiles.length; slot++) {
      const [part, frameIndex] = w.tiles[slot]!;
      expect(tileFrame(merged.levels[0], slot % w.tilesAcross, Math.floor(slot / w.tilesAcross))).toEqual({
        instanceUid: w.instances[part].sopInstanceUid,
        frameIndex,
      });
    }

    const err = await (async () => {
      try {
        buildSlidePyramid(stripConcatenation(await metadataOf('synthetic-concat')));
      } catch (e) {
        return e;
      }
    })();
    expect(isPathembedError(err, 'UNSUPPORTED_WSI')).toBe(true);
    expect((err as Error).message).toMatch(
      /^The 1000 x 700 px level is stored 3 times \(.*\) in instances that are not one concatenation; duplicate levels are not read$/,
    );
  });

  it('round-trips a sparse pyramid through JSON', async () => {
    const p = buildSlidePyramid(await metadataOf('synthetic-sparse'));
    const back = pyramidFromJson(pyramidToJson(p));
    expect(back).toEqual(p);
    expect(tileFrame(back.levels[0], 1, 0)).toBeUndefined();
    expect(tileFrame(back.levels[0], 2, 2)).toEqual(tileFrame(p.levels[0], 2, 2));
  });
});

describe('sample slide', () => {
  it('writes an H&E-like slide with tissue and empty glass, a thumbnail and a label', async () => {
    const written = await writeSampleSlide(path.join(tmp, 'sample'), { widthPx: 1024, heightPx: 768 });
    const { pyramid, source } = await pyramidOf(path.join(tmp, 'sample'));
    try {
      expect(pyramid.levels.map((l) => [l.widthPx, l.heightPx])).toEqual([
        [1024, 768],
        [256, 192],
        [64, 48],
      ]);
      expect(pyramid.associatedImages.map((a) => a.kind)).toEqual(['LABEL', 'THUMBNAIL']);
      expect(written.transferSyntaxUid).toBe(TransferSyntax.JpegBaseline);
      // The level-1 image, decoded: some glass (near white), some eosin (pink), some hematoxylin (purple).
      const level = pyramid.levels[1];
      const tf = tileFrame(level, 0, 0)!;
      const [frame] = await source.fetchFrames(tf.instanceUid, [tf.frameIndex]);
      const { data } = await sharp(Buffer.from(frame.data)).raw().toBuffer({ resolveWithObject: true });
      let glass = 0;
      let tissue = 0;
      for (let y = 0; y < 192; y++) {
        for (let x = 0; x < 256; x++) {
          const o = (y * 256 + x) * 3;
          if (data[o] > 225 && data[o + 1] > 225 && data[o + 2] > 225) glass++;
          else if (data[o] > data[o + 1] + 30) tissue++;
        }
      }
      const total = 256 * 192;
      expect(glass / total).toBeGreaterThan(0.15);
      expect(tissue / total).toBeGreaterThan(0.15);
    } finally {
      await source.close();
    }
  });

  it('has purple nuclei on pink tissue at level 0', () => {
    const pattern = hematoxylinEosinPattern({ widthPx: 3072, heightPx: 2048, seed: 'pathembed-sample' });
    let purple = 0;
    let pink = 0;
    for (let y = 800; y < 1000; y++) {
      for (let x = 1000; x < 1200; x++) {
        const [r, g, b] = pattern(x, y, { index: 0, downsample: 1 });
        if (b > r && r < 140) purple++;
        else if (r > g + 40 && r > 180) pink++;
      }
    }
    expect(purple).toBeGreaterThan(1000);
    expect(pink).toBeGreaterThan(10000);
  });
});
