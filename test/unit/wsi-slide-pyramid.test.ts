import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { IDC_METADATA } from '../../scripts/dev-services/fixtures.js';
import type { DicomJsonDataset } from '../../src/dicom-json.js';
import { Tag } from '../../src/dicom-tags.js';
import { pixelSpacingUm, resolvePixelSpacing } from '../../src/wsi/pixel-spacing.js';
import { pyramidFromJson, pyramidToJson } from '../../src/wsi/pyramid-json.js';
import { tilesOverlapping } from '../../src/wsi/region.js';
import { associatedImage, buildSlidePyramid } from '../../src/wsi/slide-pyramid.js';
import { levelFrameCount, tileFrame, tileRect } from '../../src/wsi/tile-index.js';
import { thrownPathembedError } from '../helpers/errors.js';

function idc(name: string): { images: DicomJsonDataset[]; annotations?: DicomJsonDataset[] } {
  return JSON.parse(fs.readFileSync(path.join(IDC_METADATA, name), 'utf8'));
}

const TCGA = 'TCGA-LUAD_TCGA-05-4244-01Z-00-DX1.json';
const CPTAC = 'C3N-01016-22.json';
const HTAN = 'HTA9_1_BA_L.json';

/** A deep copy of the metadata with `edit` applied to the instance whose matrix is `widthPx` wide. */
function edited(
  images: DicomJsonDataset[],
  widthPx: number,
  edit: (ds: DicomJsonDataset) => void,
): DicomJsonDataset[] {
  const copy = structuredClone(images);
  const target = copy.find(
    (ds) =>
      ds[Tag.TotalPixelMatrixColumns]?.Value?.[0] === widthPx && ds[Tag.ImageType]?.Value?.[2] === 'VOLUME',
  );
  if (!target) throw new Error(`no VOLUME instance ${widthPx} px wide`);
  edit(target);
  return copy;
}

describe('buildSlidePyramid on IDC metadata', () => {
  it('reads the TCGA-LUAD slide: 3 TILED_FULL levels, 0.2325 um/px, a thumbnail kept apart', () => {
    const p = buildSlidePyramid(idc(TCGA).images);
    expect(p.levels.map((l) => [l.widthPx, l.heightPx])).toEqual([
      [46336, 44288],
      [11584, 11072],
      [2896, 2768],
    ]);
    expect(p.levels.map((l) => l.frameCount)).toEqual([31313, 2024, 132]);
    expect(p.levels.map((l) => [l.tilesAcross, l.tilesDown])).toEqual([
      [181, 173],
      [46, 44],
      [12, 11],
    ]);
    for (const level of p.levels) {
      expect(level.tileWidthPx).toBe(256);
      expect(level.tileHeightPx).toBe(256);
      expect(level.tiling).toBe('TILED_FULL');
      expect(level.layout).toEqual({ kind: 'full' });
      expect(level.frame).toEqual({
        rows: 256,
        columns: 256,
        samplesPerPixel: 3,
        photometricInterpretation: 'RGB',
        bitsAllocated: 8,
        bitsStored: 8,
        pixelRepresentation: 0,
        planarConfiguration: 0,
      });
    }
    expect(pixelSpacingUm(p.levels[0])).toEqual({ x: 0.2325, y: 0.2325 });
    expect(p.levels[0].pixelSpacingSource).toBe('pixel-spacing');
    expect(pixelSpacingUm(p.levels[1]).x).toBeCloseTo(0.93, 12);
    expect(pixelSpacingUm(p.levels[2]).x).toBeCloseTo(3.72, 12);
    expect(p.levels[0].instances).toEqual([
      {
        sopInstanceUid: '1.3.6.1.4.1.5962.99.1.3510881361.982628633.1635598486609.8.0',
        frameCount: 31313,
        concatenationFrameOffset: 0,
      },
    ]);
    expect(p.associatedImages.map((a) => [a.kind, a.widthPx, a.heightPx])).toEqual([['THUMBNAIL', 803, 768]]);
    expect(associatedImage(p, 'LABEL')).toBeUndefined();
    expect(p.seriesInstanceUid).toBe(idc(TCGA).images[0][Tag.SeriesInstanceUID].Value?.[0]);
  });

  it('maps TILED_FULL tiles to frames row-major', () => {
    const [level0] = buildSlidePyramid(idc(TCGA).images).levels;
    const uid = level0.instances[0].sopInstanceUid;
    expect(tileFrame(level0, 0, 0)).toEqual({ instanceUid: uid, frameIndex: 0 });
    expect(tileFrame(level0, 5, 2)).toEqual({ instanceUid: uid, frameIndex: 2 * 181 + 5 });
    expect(tileFrame(level0, 180, 172)).toEqual({ instanceUid: uid, frameIndex: 31312 });
    expect(tileFrame(level0, 181, 0)).toBeUndefined();
    expect(tileFrame(level0, 0, 173)).toBeUndefined();
    expect(tileFrame(level0, -1, 0)).toBeUndefined();
    expect(tileRect(level0, 180, 172)).toEqual({ x: 46080, y: 44032, width: 256, height: 256 });
    expect(tilesOverlapping(level0, { x: 250, y: 10, width: 300, height: 250 })).toEqual([
      { col: 0, row: 0 },
      { col: 1, row: 0 },
      { col: 2, row: 0 },
      { col: 0, row: 1 },
      { col: 1, row: 1 },
      { col: 2, row: 1 },
    ]);
    expect(levelFrameCount(level0)).toBe(31313);
  });

  it('reads the CPTAC slide: 3 levels at 0.4942 um/px with 240 px tiles, overview and thumbnail apart', () => {
    const p = buildSlidePyramid(idc(CPTAC).images);
    expect(p.levels.map((l) => [l.widthPx, l.heightPx, l.tileWidthPx, l.frameCount])).toEqual([
      [47807, 47007, 240, 39200],
      [11951, 11751, 240, 2450],
      [2987, 2937, 240, 169],
    ]);
    expect(pixelSpacingUm(p.levels[0])).toEqual({ x: 0.4942, y: 0.4942 });
    expect(p.associatedImages.map((a) => [a.kind, a.widthPx, a.heightPx])).toEqual([
      ['OVERVIEW', 1600, 629],
      ['THUMBNAIL', 781, 768],
    ]);
  });

  it('refuses the multiplexed fluorescence slide, saying why', () => {
    const err = thrownPathembedError(() => buildSlidePyramid(idc(HTAN).images));
    expect(err.code).toBe('UNSUPPORTED_WSI');
    expect(err.message).toContain('Multiplexed fluorescence: 3 optical paths');
    expect(err.message).toContain('MONOCHROME2');
    expect(err.message).toContain('NUCLEI');
    expect(err.message).toContain('at one level (3875 x 2313 px');
    expect(err.details.opticalPaths).toEqual(['0 (NUCLEI)', '1 (PD1)', '3 (RORGT)']);
  });

  it('refuses one channel of it as fluorescence', () => {
    const images = idc(HTAN).images;
    const seriesUid = images[0][Tag.SeriesInstanceUID].Value?.[0];
    const err = thrownPathembedError(() =>
      buildSlidePyramid(images.filter((ds) => ds[Tag.SeriesInstanceUID].Value?.[0] === seriesUid)),
    );
    expect(err.code).toBe('UNSUPPORTED_WSI');
    expect(err.message).toMatch(
      /^Fluorescence image in instance .* MONOCHROME2 under epifluorescence illumination/,
    );
  });
});

describe('buildSlidePyramid refusals', () => {
  const images = () => idc(TCGA).images;

  it('DICOM_TILED_FULL_ERROR when a TILED_FULL frame count does not fill the grid', () => {
    const err = thrownPathembedError(() =>
      buildSlidePyramid(
        edited(images(), 46336, (ds) => {
          ds[Tag.NumberOfFrames] = { vr: 'IS', Value: [31312] };
        }),
      ),
    );
    expect(err.code).toBe('DICOM_TILED_FULL_ERROR');
    expect(err.message).toBe(
      'TILED_FULL level 46336 x 44288 px with 256 x 256 px tiles needs 181 x 173 = 31313 frames but instance 1.3.6.1.4.1.5962.99.1.3510881361.982628633.1635598486609.8.0 holds 31312',
    );
  });

  it('UNSUPPORTED_WSI for several focal planes', () => {
    const err = thrownPathembedError(() =>
      buildSlidePyramid(
        edited(images(), 11584, (ds) => {
          ds[Tag.TotalPixelMatrixFocalPlanes] = { vr: 'UL', Value: [3] };
        }),
      ),
    );
    expect(err.code).toBe('UNSUPPORTED_WSI');
    expect(err.message).toMatch(
      /^Several focal planes \(3\) in instance 1\.3\.6\.1\.4\.1\.5962\.99\.1\.3510881361\.982628633\.1635598486609\.22\.0 \(11584 x 11072 px\)/,
    );
  });

  it('UNSUPPORTED_WSI for 16-bit samples', () => {
    const err = thrownPathembedError(() =>
      buildSlidePyramid(
        edited(images(), 2896, (ds) => {
          ds[Tag.BitsAllocated] = { vr: 'US', Value: [16] };
          ds[Tag.BitsStored] = { vr: 'US', Value: [12] };
        }),
      ),
    );
    expect(err.code).toBe('UNSUPPORTED_WSI');
    expect(err.message).toContain(
      'Unsupported bit depth in instance 1.3.6.1.4.1.5962.99.1.3510881361.982628633.1635598486609.29.0',
    );
    expect(err.message).toContain('BitsAllocated 16, BitsStored 12');
  });

  it('UNSUPPORTED_WSI for a colour model other than RGB/YBR/MONOCHROME2', () => {
    const err = thrownPathembedError(() =>
      buildSlidePyramid(
        edited(images(), 2896, (ds) => {
          ds[Tag.SamplesPerPixel] = { vr: 'US', Value: [1] };
          ds[Tag.PhotometricInterpretation] = { vr: 'CS', Value: ['PALETTE COLOR'] };
        }),
      ),
    );
    expect(err.code).toBe('UNSUPPORTED_WSI');
    expect(err.message).toContain('SamplesPerPixel 1 with PhotometricInterpretation PALETTE COLOR');
  });

  it('UNSUPPORTED_WSI for several optical paths in one brightfield instance', () => {
    const err = thrownPathembedError(() =>
      buildSlidePyramid(
        edited(images(), 2896, (ds) => {
          ds[Tag.NumberOfOpticalPaths] = { vr: 'UL', Value: [2] };
        }),
      ),
    );
    expect(err.code).toBe('UNSUPPORTED_WSI');
    expect(err.message).toMatch(/^Several optical paths \(2: /);
  });

  it('NOT_A_WSI for a series without a VOLUME image or without WSI instances', () => {
    const thumbnailOnly = images().filter((ds) => ds[Tag.ImageType].Value?.[2] === 'THUMBNAIL');
    const err = thrownPathembedError(() => buildSlidePyramid(thumbnailOnly));
    expect(err.code).toBe('NOT_A_WSI');
    expect(err.message).toBe('The series holds 1 whole-slide instances but no VOLUME image (only THUMBNAIL)');
    const annotations = idc(TCGA).annotations ?? [];
    expect(annotations.length).toBe(1);
    const err2 = thrownPathembedError(() => buildSlidePyramid(annotations));
    expect(err2.code).toBe('NOT_A_WSI');
    expect(err2.message).toContain('1.2.840.10008.5.1.4.1.1.91.1');
  });

  it('INVALID_DICOM for an incomplete concatenation', () => {
    const copy = edited(images(), 46336, (ds) => {
      ds[Tag.ConcatenationUID] = { vr: 'UI', Value: ['2.25.1'] };
      ds[Tag.InConcatenationNumber] = { vr: 'US', Value: [1] };
      ds[Tag.InConcatenationTotalNumber] = { vr: 'US', Value: [2] };
      ds[Tag.ConcatenationFrameOffsetNumber] = { vr: 'UL', Value: [0] };
    });
    const err = thrownPathembedError(() => buildSlidePyramid(copy));
    expect(err.code).toBe('INVALID_DICOM');
    expect(err.message).toContain('Concatenation 2.25.1 is incomplete: the series holds 1 of its 2 parts');
  });
});

describe('pixel spacing rule', () => {
  const ds = (
    pixelSpacing: number[] | undefined,
    volumeMm: [number, number] | undefined,
  ): DicomJsonDataset => ({
    ...(pixelSpacing
      ? {
          [Tag.SharedFunctionalGroupsSequence]: {
            vr: 'SQ',
            Value: [
              {
                [Tag.PixelMeasuresSequence]: {
                  vr: 'SQ',
                  Value: [{ [Tag.PixelSpacing]: { vr: 'DS', Value: pixelSpacing } }],
                },
              },
            ],
          },
        }
      : {}),
    ...(volumeMm
      ? {
          [Tag.ImagedVolumeWidth]: { vr: 'FL', Value: [volumeMm[0]] },
          [Tag.ImagedVolumeHeight]: { vr: 'FL', Value: [volumeMm[1]] },
        }
      : {}),
  });

  it('prefers the imaged volume when PixelSpacing is swapped the way OrthancWSIDicomizer writes it', () => {
    // CMU-1-Small-Region as OrthancWSIDicomizer 1.1 wrote it: 2220 x 2967 px over 1.10778 x 1.480533 mm.
    const s = resolvePixelSpacing(ds([0.000373367016, 0.000666906766], [1.10777998, 1.480533]), 2220, 2967);
    expect(s?.source).toBe('imaged-volume');
    expect(s?.x).toBeCloseTo(0.000499, 9);
    expect(s?.y).toBeCloseTo(0.000499, 9);
  });

  it('prefers the imaged volume for a plainly swapped [x, y] PixelSpacing', () => {
    // 1000 x 700 px over 0.25 x 0.35 mm: x 0.00025, y 0.0005; PixelSpacing should be [0.0005, 0.00025].
    const s = resolvePixelSpacing(ds([0.00025, 0.0005], [0.25, 0.35]), 1000, 700);
    expect(s).toEqual({ x: 0.00025, y: 0.0005, source: 'imaged-volume' });
    expect(resolvePixelSpacing(ds([0.0005, 0.00025], [0.25, 0.35]), 1000, 700)?.source).toBe('pixel-spacing');
  });

  it('keeps PixelSpacing when both agree (TCGA level 0) or disagree some other way', () => {
    const tcga = resolvePixelSpacing(
      ds([0.0002325, 0.0002325], [10.773119926452637, 10.29695987701416]),
      46336,
      44288,
    );
    expect(tcga).toEqual({ x: 0.0002325, y: 0.0002325, source: 'pixel-spacing' });
    // The volume implies 0.0006 mm/px, 20 % off, and is not a swap: the calibrated attribute wins.
    const other = resolvePixelSpacing(ds([0.0005, 0.0005], [0.6, 0.42]), 1000, 700);
    expect(other).toEqual({ x: 0.0005, y: 0.0005, source: 'pixel-spacing' });
  });

  it('uses whichever one is present', () => {
    expect(resolvePixelSpacing(ds([0.001, 0.002], undefined), 10, 10)).toEqual({
      x: 0.002,
      y: 0.001,
      source: 'pixel-spacing',
    });
    expect(resolvePixelSpacing(ds(undefined, [1, 2]), 1000, 1000)).toEqual({
      x: 0.001,
      y: 0.002,
      source: 'imaged-volume',
    });
    expect(resolvePixelSpacing(ds(undefined, undefined), 10, 10)).toBeUndefined();
  });

  it('derives a level lacking both from the finest level that has one', () => {
    const copy = edited(idc(TCGA).images, 11584, (d) => {
      delete d[Tag.SharedFunctionalGroupsSequence];
      delete d[Tag.ImagedVolumeWidth];
      delete d[Tag.ImagedVolumeHeight];
    });
    const level1 = buildSlidePyramid(copy).levels[1];
    expect(level1.pixelSpacingSource).toBe('derived-from-level-0');
    expect(pixelSpacingUm(level1).x).toBeCloseTo(0.93, 9);
  });
});

describe('pyramid JSON', () => {
  it('round-trips through JSON unchanged', () => {
    for (const name of [TCGA, CPTAC]) {
      const p = buildSlidePyramid(idc(name).images);
      const back = pyramidFromJson(pyramidToJson(p));
      expect(back).toEqual(p);
      expect(JSON.parse(JSON.stringify(p))).toEqual(p);
      expect(tileFrame(back.levels[0], 3, 4)).toEqual(tileFrame(p.levels[0], 3, 4));
    }
  });

  it('refuses JSON that is not a pyramid', () => {
    expect(thrownPathembedError(() => pyramidFromJson('{"format":1}')).code).toBe('INVALID_ARGUMENT');
    expect(thrownPathembedError(() => pyramidFromJson('not json')).code).toBe('INVALID_ARGUMENT');
    const p = JSON.parse(pyramidToJson(buildSlidePyramid(idc(TCGA).images)));
    p.format = 99;
    expect(thrownPathembedError(() => pyramidFromJson(p)).message).toContain('format');
  });
});
