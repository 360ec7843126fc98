/**
 * Frame decoding on real slides, checked against DCMTK's own decoders: the CAMELYON lymph node
 * level (JPEG baseline, YBR_FULL_422) as stored and re-encoded by DCMTK into every other transfer
 * syntax and colour layout, and the Aperio CMU-1 region (RGB-coded JPEG tiles) as Orthanc's
 * dicomizer writes it. Derived files go to the git-ignored .cache/codecs-dicom folder.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../../scripts/dev-services/binaries.js';
import { ybrFullToRgbInPlace } from '../../src/codecs/color.js';
import { FrameDecoder, type FrameDescription } from '../../src/codecs/index.js';
import { decodeWithSharp } from '../../src/codecs/jpeg.js';
import { readJpegHeader } from '../../src/codecs/jpeg-markers.js';
import { isPathembedError } from '../../src/errors.js';
import { TransferSyntax } from '../../src/uids.js';
import { pixelDiff as diff } from '../helpers/compare.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TESTDATA = path.resolve(ROOT, '../shared/testdata');
const CAMELYON = path.join(TESTDATA, 'camelyon-lymph-node-tiled-full.dcm');
const APERIO_SVS = path.join(TESTDATA, 'CMU-1-Small-Region.svs');
const CACHE = path.join(ROOT, '.cache', 'codecs-dicom');

/** A missing tool or test file fails the run, naming what to install; it never skips a test. */
function requireFile(file: string): string {
  if (!fs.existsSync(file)) throw new Error(`Test data missing: ${file} (see ../shared/testdata/README.md)`);
  return file;
}

// dcmjs ships no type declarations; these are the few members the tests use.
interface NaturalDataset {
  Rows: number;
  Columns: number;
  SamplesPerPixel: number;
  PhotometricInterpretation: string;
  BitsAllocated: number;
  BitsStored: number;
  PixelRepresentation: number;
  PlanarConfiguration?: number;
  NumberOfFrames?: number | string;
  PixelData: ArrayBuffer[];
  PerFrameFunctionalGroupsSequence?: {
    PlanePositionSlideSequence?: {
      ColumnPositionInTotalImagePixelMatrix: number;
      RowPositionInTotalImagePixelMatrix: number;
    }[];
  }[];
}
interface Dcmjs {
  data: {
    DicomMessage: {
      readFile(buffer: ArrayBuffer): { dict: unknown; meta: Record<string, { Value: string[] }> };
    };
    DicomMetaDictionary: { naturalizeDataset(dict: unknown): NaturalDataset };
  };
}
const dcmjs = createRequire(import.meta.url)('dcmjs') as Dcmjs;

interface DicomFile {
  transferSyntaxUid: string;
  desc: FrameDescription;
  frameCount: number;
  frame(index: number): Uint8Array;
  dataset: NaturalDataset;
}

function readDicom(file: string): DicomFile {
  const buf = fs.readFileSync(file);
  const message = dcmjs.data.DicomMessage.readFile(
    buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength),
  );
  const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(message.dict);
  const transferSyntaxUid = message.meta['00020010'].Value[0];
  const desc: FrameDescription = {
    rows: ds.Rows,
    columns: ds.Columns,
    samplesPerPixel: ds.SamplesPerPixel,
    photometricInterpretation: ds.PhotometricInterpretation,
    bitsAllocated: ds.BitsAllocated,
    bitsStored: ds.BitsStored,
    pixelRepresentation: ds.PixelRepresentation,
    planarConfiguration: ds.PlanarConfiguration,
  };
  const frameCount = Number(ds.NumberOfFrames ?? 1);
  const native =
    transferSyntaxUid === TransferSyntax.ExplicitVRLittleEndian ||
    transferSyntaxUid === TransferSyntax.ImplicitVRLittleEndian;
  const frameBytes = desc.rows * desc.columns * desc.samplesPerPixel;
  return {
    transferSyntaxUid,
    desc,
    frameCount,
    dataset: ds,
    frame: (i) =>
      native ? new Uint8Array(ds.PixelData[0], i * frameBytes, frameBytes) : new Uint8Array(ds.PixelData[i]),
  };
}

function dcmtk(tool: string, ...args: string[]): string {
  const out = path.join(CACHE, args.pop()!);
  execFileSync(tool, [...args, out], { stdio: 'pipe' });
  return out;
}

/** JFIF APP0 right after SOI: the stream now states YCbCr, whatever the DICOM label says. */
function withJfifMarker(jpeg: Uint8Array): Uint8Array {
  const app0 = [
    0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01,
  ];
  return Uint8Array.from([0xff, 0xd8, ...app0, 0x00, 0x00, ...jpeg.subarray(2)]);
}

let decoder: FrameDecoder;

beforeAll(() => {
  decoder = new FrameDecoder({ decodeThreads: 2 });
});

afterAll(async () => {
  await decoder?.close();
});

describe('CAMELYON level against DCMTK', () => {
  const files: Record<string, DicomFile> = {};

  beforeAll(() => {
    requireBinary('dcmdjpeg');
    requireFile(CAMELYON);
    fs.rmSync(CACHE, { recursive: true, force: true });
    fs.mkdirSync(CACHE, { recursive: true });
    // DCMTK's decode of the stored JPEG frames is the reference every other variant is held to.
    const ref = dcmtk('dcmdjpeg', CAMELYON, 'ref-rgb.dcm');
    const ybr = dcmtk('dcmdjpeg', '+cn', CAMELYON, 'ybr-full.dcm');
    const variants: Record<string, string> = {
      source: CAMELYON,
      ref,
      ybr,
      planar: dcmtk('dcmdjpeg', '+pl', CAMELYON, 'planar.dcm'),
      losslessSv1: dcmtk('dcmcjpeg', '+e1', ref, 'lossless-sv1.dcm'),
      losslessSv6: dcmtk('dcmcjpeg', '+el', '+sv', '6', ref, 'lossless-sv6.dcm'),
      losslessYbr: dcmtk('dcmcjpeg', '+el', ybr, 'lossless-ybr.dcm'),
      rgbCodedJpeg: dcmtk('dcmcjpeg', '+cr', '+eb', '+q', '95', ref, 'rgb-coded.dcm'),
      jpegLs: dcmtk('dcmcjpls', ref, 'jpeg-ls.dcm'),
      jpegLsNear: dcmtk('dcmcjpls', '+en', '+md', '2', ref, 'jpeg-ls-near.dcm'),
      jpegLsYbr: dcmtk('dcmcjpls', ybr, 'jpeg-ls-ybr.dcm'),
      rle: dcmtk('dcmcrle', ref, 'rle.dcm'),
      rleYbr: dcmtk('dcmcrle', ybr, 'rle-ybr.dcm'),
    };
    for (const [name, file] of Object.entries(variants)) files[name] = readDicom(file);
  });

  async function expectMatchesReference(
    name: string,
    bounds: { max: number; mean: number },
    override: Partial<FrameDescription> = {},
  ) {
    const file = files[name];
    const ref = files.ref;
    expect(file.frameCount).toBe(15);
    const worst = { max: 0, mean: 0 };
    for (let i = 0; i < file.frameCount; i++) {
      const frame = await decoder.decode(file.frame(i), file.transferSyntaxUid, {
        ...file.desc,
        ...override,
      });
      const d = diff(frame.data, ref.frame(i));
      worst.max = Math.max(worst.max, d.max);
      worst.mean = Math.max(worst.mean, d.mean);
    }
    expect(worst.max, `${name} max`).toBeLessThanOrEqual(bounds.max);
    expect(worst.mean, `${name} mean`).toBeLessThanOrEqual(bounds.mean);
    return worst;
  }

  it('decodes the stored JPEG baseline YBR_FULL_422 frames like DCMTK', async () => {
    const source = files.source;
    expect(source.transferSyntaxUid).toBe(TransferSyntax.JpegBaseline);
    expect(source.desc.photometricInterpretation).toBe('YBR_FULL_422');
    // Two libjpeg builds may differ by rounding in the IDCT and chroma upsampling, no more.
    await expectMatchesReference('source', { max: 8, mean: 1 });
  });

  it('ignores an RGB label on a YCbCr (JFIF) stream', async () => {
    const source = files.source;
    const frame = source.frame(7);
    expect(readJpegHeader(frame).jfif).toBe(true);
    const asRgb = await decoder.decode(frame, source.transferSyntaxUid, {
      ...source.desc,
      photometricInterpretation: 'RGB',
    });
    const asYbr = await decoder.decode(frame, source.transferSyntaxUid, source.desc);
    expect(diff(asRgb.data, asYbr.data).max).toBe(0);
  });

  it('decodes an RGB-coded (Adobe transform 0) JPEG right whether labelled RGB or YBR_FULL_422', async () => {
    const file = files.rgbCodedJpeg;
    expect(readJpegHeader(file.frame(0)).adobeTransform).toBe(0);
    await expectMatchesReference('rgbCodedJpeg', { max: 40, mean: 1.5 });
    await expectMatchesReference(
      'rgbCodedJpeg',
      { max: 40, mean: 1.5 },
      { photometricInterpretation: 'YBR_FULL_422' },
    );
    // Believing the label instead of the stream would shift every colour.
    const frame = await decoder.decode(file.frame(3), file.transferSyntaxUid, file.desc);
    ybrFullToRgbInPlace(frame.data);
    expect(diff(frame.data, files.ref.frame(3)).mean).toBeGreaterThan(20);
  });

  it('decodes JPEG lossless SV1 (.70) and predictor 6 (.57) exactly', async () => {
    expect(files.losslessSv1.transferSyntaxUid).toBe(TransferSyntax.JpegLosslessSV1);
    expect(files.losslessSv6.transferSyntaxUid).toBe(TransferSyntax.JpegLossless);
    await expectMatchesReference('losslessSv1', { max: 0, mean: 0 });
    await expectMatchesReference('losslessSv6', { max: 0, mean: 0 });
  });

  it('converts lossless JPEG of YBR_FULL samples, which only the header describes', async () => {
    expect(files.losslessYbr.desc.photometricInterpretation).toBe('YBR_FULL');
    await expectMatchesReference('losslessYbr', { max: 1, mean: 0.05 });
  });

  it('falls back to jpeg-lossless-decoder-js when libjpeg refuses a lossless stream, and trusts its markers', async () => {
    const file = files.losslessYbr;
    const marked = withJfifMarker(file.frame(2));
    await expect(decodeWithSharp(marked)).rejects.toThrow(/Unsupported color conversion/);
    const frame = await decoder.decode(marked, file.transferSyntaxUid, {
      ...file.desc,
      photometricInterpretation: 'RGB',
    });
    expect(diff(frame.data, files.ref.frame(2)).max).toBeLessThanOrEqual(1);
  });

  it('converts uncompressed YBR_FULL and reads planar configuration 1', async () => {
    expect(files.planar.desc.planarConfiguration).toBe(1);
    await expectMatchesReference('ybr', { max: 1, mean: 0.05 });
    await expectMatchesReference('planar', { max: 0, mean: 0 });
  });

  it('decodes DCMTK JPEG-LS: lossless exactly, near-lossless within NEAR=2, YBR_FULL converted', async () => {
    await expectMatchesReference('jpegLs', { max: 0, mean: 0 });
    await expectMatchesReference('jpegLsNear', { max: 2, mean: 1.5 });
    await expectMatchesReference('jpegLsYbr', { max: 1, mean: 0.05 });
  });

  it('decodes DCMTK RLE exactly, YBR_FULL segments converted', async () => {
    expect(files.rle.transferSyntaxUid).toBe(TransferSyntax.RleLossless);
    await expectMatchesReference('rle', { max: 0, mean: 0 });
    await expectMatchesReference('rleYbr', { max: 1, mean: 0.05 });
  });

  it('refuses a truncated real frame with FRAME_DECODE_ERROR', async () => {
    const source = files.source;
    const frame = source.frame(5);
    const err = await decoder
      .decode(frame.subarray(0, frame.length / 2), source.transferSyntaxUid, source.desc)
      .catch((e: unknown) => e);
    expect(isPathembedError(err, 'FRAME_DECODE_ERROR')).toBe(true);
  });
});

describe('Aperio RGB-coded JPEG tiles (CMU-1 via OrthancWSIDicomizer)', () => {
  let level: DicomFile;

  beforeAll(() => {
    requireBinary('OrthancWSIDicomizer');
    requireFile(APERIO_SVS);
    const out = path.join(CACHE, 'aperio');
    fs.rmSync(out, { recursive: true, force: true });
    fs.mkdirSync(out, { recursive: true });
    // Without --reencode the dicomizer copies Aperio's JPEG tiles byte for byte.
    execFileSync('OrthancWSIDicomizer', [`--folder=${out}`, '--threads=1', '--pyramid=0', APERIO_SVS], {
      stdio: 'pipe',
    });
    const files = fs.readdirSync(out).filter((f) => f.endsWith('.dcm'));
    level = files
      .map((f) => readDicom(path.join(out, f)))
      .sort((a, b) => b.desc.columns * b.frameCount - a.desc.columns * a.frameCount)[0];
  });

  it('decodes tiles to the same pixels as the SVS itself, labelled RGB or YBR_FULL_422', async () => {
    expect(level.transferSyntaxUid).toBe(TransferSyntax.JpegBaseline);
    const positions = level.dataset.PerFrameFunctionalGroupsSequence ?? [];
    const checked = [0, 11, 57].filter((i) => i < level.frameCount);
    for (const i of checked) {
      const pos = positions[i]?.PlanePositionSlideSequence?.[0];
      expect(pos).toBeDefined();
      const left = pos!.ColumnPositionInTotalImagePixelMatrix - 1;
      const top = pos!.RowPositionInTotalImagePixelMatrix - 1;
      const width = level.desc.columns;
      const height = level.desc.rows;
      const reference = new Uint8Array(
        await sharp(APERIO_SVS).extract({ left, top, width, height }).removeAlpha().raw().toBuffer(),
      );
      const frame = level.frame(i);
      expect(readJpegHeader(frame).jfif).toBe(false);
      for (const pi of [level.desc.photometricInterpretation, 'YBR_FULL_422']) {
        const decoded = await decoder.decode(frame, level.transferSyntaxUid, {
          ...level.desc,
          photometricInterpretation: pi,
        });
        expect(diff(decoded.data, reference).mean, `frame ${i} as ${pi}`).toBeLessThan(1);
      }
    }
  });
});
