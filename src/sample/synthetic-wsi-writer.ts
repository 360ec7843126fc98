/**
 * Writes a real DICOM VL Whole Slide Microscopy series (Part 10 files, one per level or
 * concatenation part, plus optional THUMBNAIL, LABEL and OVERVIEW images) from a pixel function, for
 * tests, benchmarks and the demo. The dataset is built as DICOM JSON and written by dcmjs; the Pixel
 * Data element (native, or encapsulated with a Basic Offset Table) is appended here so the fragment
 * layout is under control. Every attribute the WSI IOD requires is written (checked with dciodvfy in
 * test/unit/wsi-synthetic-writer.test.ts), and all UIDs derive from `seed`, so the same options give
 * byte-identical files.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import type { DicomJsonDataset, DicomJsonElement } from '../dicom-json.js';
import { Tag } from '../dicom-tags.js';
import { PathembedError } from '../errors.js';
import { SopClass, TransferSyntax } from '../uids.js';
import { umToMm } from '../units.js';
import { writePart10Header } from '../wsi/dcmjs.js';
import { deterministicUid } from './deterministic-uid.js';
import { coordinatePattern, labelPattern, type PixelFunction, type PixelLevel } from './pixel-patterns.js';

/**
 * How frames are positioned: TILED_FULL (positions implied by frame order), TILED_SPARSE (per-frame
 * PlanePositionSlideSequence), or PER_FRAME_UNSPECIFIED (per-frame positions and no
 * DimensionOrganizationType, as OrthancWSIDicomizer writes).
 */
export type SyntheticTiling = 'TILED_FULL' | 'TILED_SPARSE' | 'PER_FRAME_UNSPECIFIED';

export type SyntheticTransferSyntax = 'explicit-vr-little-endian' | 'jpeg-baseline';

export type SyntheticAssociatedKind = 'THUMBNAIL' | 'LABEL' | 'OVERVIEW';

export interface SyntheticWsiOptions {
  /** Level-0 total pixel matrix. */
  readonly widthPx: number;
  readonly heightPx: number;
  /** Tile (frame) size; default 256 x 256. */
  readonly tileWidthPx?: number;
  readonly tileHeightPx?: number;
  /** Downsample factor of each level from level 0, ascending, starting at 1; default [1, 2, 4]. */
  readonly downsamples?: readonly number[];
  /** Level-0 pixel spacing in micrometres per pixel (both axes); default 0.5. */
  readonly pixelSpacingUm?: number;
  /** Default explicit VR little endian (uncompressed RGB). JPEG baseline is encoded by sharp. */
  readonly transferSyntax?: SyntheticTransferSyntax;
  /** JPEG quality 1-100; default 95. */
  readonly jpegQuality?: number;
  /** JPEG chroma subsampling: 4:2:0 is written as YBR_FULL_422 (as scanners do), 4:4:4 as YBR_FULL. Default 4:2:0. */
  readonly jpegChromaSubsampling?: '4:2:0' | '4:4:4';
  /** Default TILED_FULL. */
  readonly tiling?: SyntheticTiling;
  /** Tiles not to store (per-frame tilings only): the reader must treat them as background. */
  readonly omitTile?: (levelIndex: number, col: number, row: number) => boolean;
  /** Frame order for per-frame tilings: row-major (default) or a seeded shuffle. */
  readonly frameOrder?: 'row-major' | 'shuffled';
  /** Split a level into a concatenation of parts with at most this many frames each. */
  readonly maxFramesPerInstance?: number;
  /** Associated images to write as well; default none. */
  readonly associatedImages?: readonly SyntheticAssociatedKind[];
  /** Longest side of the THUMBNAIL (default 256) and OVERVIEW (default 512) images. */
  readonly thumbnailMaxPx?: number;
  readonly overviewMaxPx?: number;
  /** Pixel source, called with the level's own pixel coordinates; default `coordinatePattern`. */
  readonly pixel?: PixelFunction;
  /** Seeds every UID and the shuffle; default 'pathembed-synthetic'. */
  readonly seed?: string;
  /** Encapsulated only: write the Basic Offset Table (default true) or leave it empty. */
  readonly basicOffsetTable?: boolean;
  /** Encapsulated only: split each frame over this many fragments (default 1). */
  readonly fragmentsPerFrame?: number;
  /** 'orthanc-swapped' writes PixelSpacing as OrthancWSIDicomizer 1.1 does: [width / rows, height / columns]. */
  readonly pixelSpacingQuirk?: 'none' | 'orthanc-swapped';
  readonly seriesDescription?: string;
  /** StudyInstanceUID to write instead of the seeded one: several slides (series) in one study. */
  readonly studyInstanceUid?: string;
  /** PatientID (default 'SYNTHETIC-0001') and ContainerIdentifier (default 'SYNTH-SLIDE-1'), for QIDO searches. */
  readonly patientId?: string;
  readonly containerIdentifier?: string;
  /** StudyDate, YYYYMMDD (default 20240102). */
  readonly studyDate?: string;
  /** false writes no VOLUME levels, only `associatedImages`: a label-only series as some scanners store it. */
  readonly volume?: boolean;
  /** File name prefix; default 'wsi'. */
  readonly filePrefix?: string;
}

export interface SyntheticInstance {
  readonly file: string;
  readonly sopInstanceUid: string;
  readonly kind: 'VOLUME' | SyntheticAssociatedKind;
  readonly frameCount: number;
  /** 0-based offset of the instance's first frame within its concatenation (0 when not concatenated). */
  readonly concatenationFrameOffset: number;
}

export interface SyntheticLevel {
  readonly index: number;
  readonly downsample: number;
  readonly widthPx: number;
  readonly heightPx: number;
  readonly tileWidthPx: number;
  readonly tileHeightPx: number;
  readonly tilesAcross: number;
  readonly tilesDown: number;
  readonly pixelSpacingUm: number;
  readonly instances: readonly SyntheticInstance[];
  readonly concatenationUid?: string;
  /** `tiles[row * tilesAcross + col]`: [index into `instances`, frame index], or null when omitted. */
  readonly tiles: ReadonlyArray<readonly [number, number] | null>;
}

export interface SyntheticWsi {
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string;
  readonly transferSyntaxUid: string;
  readonly files: readonly string[];
  readonly levels: readonly SyntheticLevel[];
  readonly associatedImages: readonly SyntheticInstance[];
}

const IMPLEMENTATION_CLASS_UID = deterministicUid('pathembed', 'implementation-class-uid');
const IMPLEMENTATION_VERSION = 'PATHEMBED_0_1';
/** Acquisition date of every synthetic slide: fixed, so files are reproducible. */
const DATE = '20240102';
const TIME = '120000';
/** TotalPixelMatrixOriginSequence, mm in the slide coordinate system. */
const ORIGIN_MM = { x: 20, y: 40 };
/** Image orientation of most scanners: rows run along -Y, columns along -X of the slide. */
const ORIENTATION = [0, -1, 0, -1, 0, 0] as const;
const SLICE_THICKNESS_MM = 0.004;

const el = (vr: string, ...v: unknown[]): DicomJsonElement => (v.length === 0 ? { vr } : { vr, Value: v });
const sq = (...itemsOf: DicomJsonDataset[]): DicomJsonElement => ({ vr: 'SQ', Value: itemsOf });
const code = (value: string, scheme: string, meaning: string): DicomJsonDataset => ({
  [Tag.CodeValue]: el('SH', value),
  [Tag.CodingSchemeDesignator]: el('SH', scheme),
  [Tag.CodeMeaning]: el('LO', meaning),
});
/** A decimal string value of at most 16 characters. */
const ds = (n: number): number => Number(n.toPrecision(10));

let srgbProfile: Promise<Buffer> | undefined;
/**
 * sRGB ICC profile as libvips ships it (the Optical Path module requires one for colour images):
 * the profile every synthetic slide carries, exported for tests that transform from it.
 */
export function syntheticSlideIccProfile(): Promise<Buffer> {
  srgbProfile ??= (async () => {
    const png = await sharp({ create: { width: 1, height: 1, channels: 3, background: '#ffffff' } })
      .withIccProfile('srgb')
      .png()
      .toBuffer();
    const { icc } = await sharp(png).metadata();
    if (!icc) throw new PathembedError('INTERNAL', 'sharp returned no sRGB ICC profile');
    return icc;
  })();
  return srgbProfile;
}

function invalidOption(message: string, option: string): PathembedError {
  return new PathembedError('INVALID_ARGUMENT', `Synthetic WSI: ${message}`, { option });
}

/** Deterministic permutation (xorshift seeded from the UID hash of the seed). */
function shuffled<T>(list: readonly T[], seed: string): T[] {
  const out = [...list];
  let state = Number(BigInt(deterministicUid(seed, 'shuffle').slice(5)) % 2147483647n) || 1;
  for (let i = out.length - 1; i > 0; i--) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    const j = (state >>> 0) % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** One tile as RGB, `tileW x tileH`, pixels beyond the level filled white. */
function renderTile(
  pixel: PixelFunction,
  level: PixelLevel,
  x0: number,
  y0: number,
  tileW: number,
  tileH: number,
  levelW: number,
  levelH: number,
): Buffer {
  const buf = Buffer.alloc(tileW * tileH * 3, 255);
  const w = Math.min(tileW, levelW - x0);
  const h = Math.min(tileH, levelH - y0);
  for (let y = 0; y < h; y++) {
    let o = y * tileW * 3;
    for (let x = 0; x < w; x++) {
      const [r, g, b] = pixel(x0 + x, y0 + y, level);
      buf[o++] = r;
      buf[o++] = g;
      buf[o++] = b;
    }
  }
  return buf;
}

interface EncodeSettings {
  readonly transferSyntaxUid: string;
  readonly jpegQuality: number;
  readonly chroma: '4:2:0' | '4:4:4';
}

async function encodeFrame(rgb: Buffer, width: number, height: number, s: EncodeSettings): Promise<Buffer> {
  if (s.transferSyntaxUid !== TransferSyntax.JpegBaseline) return rgb;
  return sharp(rgb, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: s.jpegQuality, chromaSubsampling: s.chroma, mozjpeg: false, optimiseCoding: true })
    .toBuffer();
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function itemHeader(tagGroup: number, tagElement: number, length: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(tagGroup, 0);
  b.writeUInt16LE(tagElement, 2);
  b.writeUInt32LE(length, 4);
  return b;
}

/** The Pixel Data element (explicit VR little endian), native or encapsulated. */
function pixelDataElement(
  frames: readonly Buffer[],
  encapsulated: boolean,
  basicOffsetTable: boolean,
  fragmentsPerFrame: number,
): Buffer {
  const tag = Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x42, 0x00, 0x00]); // (7FE0,0010) OB
  if (!encapsulated) {
    const data = Buffer.concat(frames);
    const padded = data.length % 2 === 0 ? data : Buffer.concat([data, Buffer.alloc(1)]);
    return Buffer.concat([tag, u32(padded.length), padded]);
  }
  const fragments: Buffer[] = [];
  const offsets: number[] = [];
  let offset = 0;
  for (const frame of frames) {
    offsets.push(offset);
    const even = frame.length % 2 === 0 ? frame : Buffer.concat([frame, Buffer.alloc(1)]);
    const pieces = Math.max(1, Math.min(fragmentsPerFrame, even.length / 2));
    const step = Math.ceil(even.length / pieces / 2) * 2;
    for (let start = 0; start < even.length; start += step) {
      const piece = even.subarray(start, Math.min(even.length, start + step));
      fragments.push(itemHeader(0xfffe, 0xe000, piece.length), piece);
      offset += 8 + piece.length;
    }
  }
  const bot = basicOffsetTable ? Buffer.concat(offsets.map(u32)) : Buffer.alloc(0);
  return Buffer.concat([
    tag,
    u32(0xffffffff),
    itemHeader(0xfffe, 0xe000, bot.length),
    bot,
    ...fragments,
    itemHeader(0xfffe, 0xe0dd, 0),
  ]);
}

interface SeriesContext {
  readonly seed: string;
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string;
  readonly frameOfReferenceUid: string;
  readonly dimensionOrganizationUid: string;
  readonly specimenUid: string;
  readonly icc: Buffer;
  readonly seriesDescription: string;
  readonly patientId: string;
  readonly containerIdentifier: string;
  readonly studyDate: string;
  readonly imagedWidthMm: number;
  readonly imagedHeightMm: number;
}

interface InstanceSpec {
  readonly sopInstanceUid: string;
  readonly instanceNumber: number;
  readonly imageType: readonly string[];
  readonly widthPx: number;
  readonly heightPx: number;
  readonly tileWidthPx: number;
  readonly tileHeightPx: number;
  /** PixelSpacing as written: [row spacing, column spacing] in mm. */
  readonly pixelSpacingMm: readonly [number, number];
  readonly tiling: SyntheticTiling;
  /** Per-frame tilings: (col, row) of each frame in order. */
  readonly framePositions?: ReadonlyArray<readonly [number, number]>;
  readonly frameCount: number;
  readonly transferSyntaxUid: string;
  readonly photometric: string;
  readonly lossyRatio?: number;
  readonly concatenation?: {
    readonly uid: string;
    readonly sourceUid: string;
    readonly number: number;
    readonly total: number;
    readonly frameOffset: number;
  };
}

/** The whole dataset of one instance, pixel data excepted. */
function instanceDataset(ctx: SeriesContext, s: InstanceSpec): DicomJsonDataset {
  const flavor = s.imageType[2];
  const showsLabel = flavor === 'LABEL' || flavor === 'OVERVIEW';
  const [rowSpacing, colSpacing] = s.pixelSpacingMm;
  const d: DicomJsonDataset = {
    [Tag.SpecificCharacterSet]: el('CS', 'ISO_IR 192'),
    [Tag.ImageType]: el('CS', ...s.imageType),
    [Tag.SOPClassUID]: el('UI', SopClass.VLWholeSlideMicroscopyImage),
    [Tag.SOPInstanceUID]: el('UI', s.sopInstanceUid),
    [Tag.StudyDate]: el('DA', ctx.studyDate),
    [Tag.ContentDate]: el('DA', DATE),
    [Tag.AcquisitionDateTime]: el('DT', `${DATE}${TIME}`),
    [Tag.StudyTime]: el('TM', TIME),
    [Tag.ContentTime]: el('TM', TIME),
    [Tag.AccessionNumber]: el('SH'),
    [Tag.Modality]: el('CS', 'SM'),
    [Tag.Manufacturer]: el('LO', 'pathembed'),
    [Tag.ReferringPhysicianName]: el('PN'),
    [Tag.StudyDescription]: el('LO', 'Synthetic whole-slide image'),
    [Tag.SeriesDescription]: el('LO', ctx.seriesDescription),
    [Tag.ManufacturerModelName]: el('LO', 'pathembed synthetic WSI writer'),
    [Tag.VolumetricProperties]: el('CS', 'VOLUME'),
    [Tag.PatientName]: el('PN', { Alphabetic: 'Synthetic^Slide' }),
    [Tag.PatientID]: el('LO', ctx.patientId),
    [Tag.PatientBirthDate]: el('DA'),
    [Tag.PatientSex]: el('CS'),
    [Tag.DeviceSerialNumber]: el('LO', 'SYNTHETIC-0001'),
    [Tag.SoftwareVersions]: el('LO', 'pathembed 0.1.0'),
    [Tag.StudyInstanceUID]: el('UI', ctx.studyInstanceUid),
    [Tag.SeriesInstanceUID]: el('UI', ctx.seriesInstanceUid),
    [Tag.StudyID]: el('SH', 'SYNTH-1'),
    [Tag.SeriesNumber]: el('IS', 1),
    [Tag.InstanceNumber]: el('IS', s.instanceNumber),
    [Tag.PatientOrientation]: el('CS'),
    [Tag.FrameOfReferenceUID]: el('UI', ctx.frameOfReferenceUid),
    [Tag.PositionReferenceIndicator]: el('LO', 'SLIDE_CORNER'),
    [Tag.DimensionOrganizationSequence]: sq({
      [Tag.DimensionOrganizationUID]: el('UI', ctx.dimensionOrganizationUid),
    }),
    [Tag.DimensionIndexSequence]: sq(
      {
        [Tag.DimensionOrganizationUID]: el('UI', ctx.dimensionOrganizationUid),
        [Tag.DimensionIndexPointer]: el('AT', Tag.ColumnPositionInTotalImagePixelMatrix),
        [Tag.FunctionalGroupPointer]: el('AT', Tag.PlanePositionSlideSequence),
        [Tag.DimensionDescriptionLabel]: el('LO', 'Column Position'),
      },
      {
        [Tag.DimensionOrganizationUID]: el('UI', ctx.dimensionOrganizationUid),
        [Tag.DimensionIndexPointer]: el('AT', Tag.RowPositionInTotalImagePixelMatrix),
        [Tag.FunctionalGroupPointer]: el('AT', Tag.PlanePositionSlideSequence),
        [Tag.DimensionDescriptionLabel]: el('LO', 'Row Position'),
      },
    ),
    [Tag.SamplesPerPixel]: el('US', 3),
    [Tag.PhotometricInterpretation]: el('CS', s.photometric),
    [Tag.PlanarConfiguration]: el('US', 0),
    [Tag.NumberOfFrames]: el('IS', s.frameCount),
    [Tag.Rows]: el('US', s.tileHeightPx),
    [Tag.Columns]: el('US', s.tileWidthPx),
    [Tag.BitsAllocated]: el('US', 8),
    [Tag.BitsStored]: el('US', 8),
    [Tag.HighBit]: el('US', 7),
    [Tag.PixelRepresentation]: el('US', 0),
    [Tag.BurnedInAnnotation]: el('CS', showsLabel ? 'YES' : 'NO'),
    [Tag.LossyImageCompression]: el('CS', s.lossyRatio !== undefined ? '01' : '00'),
    [Tag.ContainerIdentifier]: el('LO', ctx.containerIdentifier),
    [Tag.IssuerOfTheContainerIdentifierSequence]: sq(),
    [Tag.ContainerTypeCodeSequence]: sq(code('433466003', 'SCT', 'Microscope slide')),
    [Tag.AcquisitionContextSequence]: sq(),
    [Tag.SpecimenDescriptionSequence]: sq({
      [Tag.SpecimenIdentifier]: el('LO', 'SYNTH-SPECIMEN-1'),
      [Tag.SpecimenUID]: el('UI', ctx.specimenUid),
      [Tag.IssuerOfTheSpecimenIdentifierSequence]: sq(),
      [Tag.SpecimenPreparationSequence]: sq(),
    }),
    [Tag.ImagedVolumeWidth]: el('FL', ctx.imagedWidthMm),
    [Tag.ImagedVolumeHeight]: el('FL', ctx.imagedHeightMm),
    [Tag.ImagedVolumeDepth]: el('FL', SLICE_THICKNESS_MM),
    [Tag.TotalPixelMatrixColumns]: el('UL', s.widthPx),
    [Tag.TotalPixelMatrixRows]: el('UL', s.heightPx),
    [Tag.TotalPixelMatrixOriginSequence]: sq({
      [Tag.XOffsetInSlideCoordinateSystem]: el('DS', ORIGIN_MM.x),
      [Tag.YOffsetInSlideCoordinateSystem]: el('DS', ORIGIN_MM.y),
    }),
    [Tag.SpecimenLabelInImage]: el('CS', showsLabel ? 'YES' : 'NO'),
    [Tag.FocusMethod]: el('CS', 'AUTO'),
    [Tag.ExtendedDepthOfField]: el('CS', 'NO'),
    [Tag.ImageOrientationSlide]: el('DS', ...ORIENTATION),
    [Tag.OpticalPathSequence]: sq({
      [Tag.IlluminationTypeCodeSequence]: sq(code('111744', 'DCM', 'Brightfield illumination')),
      [Tag.ICCProfile]: { vr: 'OB', InlineBinary: ctx.icc.toString('base64') },
      [Tag.OpticalPathIdentifier]: el('SH', '1'),
      [Tag.OpticalPathDescription]: el('ST', 'Brightfield'),
      [Tag.IlluminationColorCodeSequence]: sq(code('414298005', 'SCT', 'Full Spectrum')),
    }),
    [Tag.NumberOfOpticalPaths]: el('UL', 1),
    [Tag.TotalPixelMatrixFocalPlanes]: el('UL', 1),
    [Tag.SharedFunctionalGroupsSequence]: sq({
      [Tag.PixelMeasuresSequence]: sq({
        [Tag.SliceThickness]: el('DS', SLICE_THICKNESS_MM),
        [Tag.PixelSpacing]: el('DS', ds(rowSpacing), ds(colSpacing)),
      }),
      [Tag.OpticalPathIdentificationSequence]: sq({ [Tag.OpticalPathIdentifier]: el('SH', '1') }),
      [Tag.WholeSlideMicroscopyImageFrameTypeSequence]: sq({ [Tag.FrameType]: el('CS', ...s.imageType) }),
    }),
  };
  if (s.lossyRatio !== undefined) {
    d[Tag.LossyImageCompressionRatio] = el('DS', ds(s.lossyRatio));
    d[Tag.LossyImageCompressionMethod] = el('CS', 'ISO_10918_1');
  }
  if (flavor === 'LABEL') {
    d[Tag.BarcodeValue] = el('LT', 'SYNTH-SLIDE-1');
    d[Tag.LabelText] = el('UT', 'pathembed synthetic slide');
  }
  if (s.tiling !== 'PER_FRAME_UNSPECIFIED') d[Tag.DimensionOrganizationType] = el('CS', s.tiling);
  if (s.concatenation) {
    d[Tag.ConcatenationUID] = el('UI', s.concatenation.uid);
    d[Tag.SOPInstanceUIDOfConcatenationSource] = el('UI', s.concatenation.sourceUid);
    d[Tag.InConcatenationNumber] = el('US', s.concatenation.number);
    d[Tag.InConcatenationTotalNumber] = el('US', s.concatenation.total);
    d[Tag.ConcatenationFrameOffsetNumber] = el('UL', s.concatenation.frameOffset);
  }
  if (s.framePositions) {
    d[Tag.PerFrameFunctionalGroupsSequence] = sq(
      ...s.framePositions.map(([col, row]) => {
        const x = col * s.tileWidthPx;
        const y = row * s.tileHeightPx;
        // Slide coordinates of the frame's first pixel: origin + row direction * x + column direction * y.
        return {
          [Tag.FrameContentSequence]: sq({ [Tag.DimensionIndexValues]: el('UL', col + 1, row + 1) }),
          [Tag.PlanePositionSlideSequence]: sq({
            [Tag.XOffsetInSlideCoordinateSystem]: el(
              'DS',
              ds(ORIGIN_MM.x + ORIENTATION[0] * x * colSpacing + ORIENTATION[3] * y * rowSpacing),
            ),
            [Tag.YOffsetInSlideCoordinateSystem]: el(
              'DS',
              ds(ORIGIN_MM.y + ORIENTATION[1] * x * colSpacing + ORIENTATION[4] * y * rowSpacing),
            ),
            [Tag.ZOffsetInSlideCoordinateSystem]: el('DS', 0),
            [Tag.ColumnPositionInTotalImagePixelMatrix]: el('SL', x + 1),
            [Tag.RowPositionInTotalImagePixelMatrix]: el('SL', y + 1),
          }),
        };
      }),
    );
  }
  return d;
}

async function writeInstance(
  file: string,
  ctx: SeriesContext,
  spec: InstanceSpec,
  frames: readonly Buffer[],
  basicOffsetTable: boolean,
  fragmentsPerFrame: number,
): Promise<void> {
  const meta: DicomJsonDataset = {
    [Tag.FileMetaInformationVersion]: { vr: 'OB', InlineBinary: Buffer.from([0, 1]).toString('base64') },
    [Tag.MediaStorageSOPClassUID]: el('UI', SopClass.VLWholeSlideMicroscopyImage),
    [Tag.MediaStorageSOPInstanceUID]: el('UI', spec.sopInstanceUid),
    [Tag.TransferSyntaxUID]: el('UI', spec.transferSyntaxUid),
    [Tag.ImplementationClassUID]: el('UI', IMPLEMENTATION_CLASS_UID),
    [Tag.ImplementationVersionName]: el('SH', IMPLEMENTATION_VERSION),
  };
  const header = writePart10Header(meta, instanceDataset(ctx, spec));
  const encapsulated = spec.transferSyntaxUid !== TransferSyntax.ExplicitVRLittleEndian;
  const pixels = pixelDataElement(frames, encapsulated, basicOffsetTable, fragmentsPerFrame);
  await fs.writeFile(file, Buffer.concat([header, pixels]));
}

/** Writes the series into `dir` (created if needed) and describes what it wrote. */
export async function writeSyntheticWsi(dir: string, options: SyntheticWsiOptions): Promise<SyntheticWsi> {
  const widthPx = options.widthPx;
  const heightPx = options.heightPx;
  const tileW = options.tileWidthPx ?? 256;
  const tileH = options.tileHeightPx ?? 256;
  const downsamples = options.downsamples ?? [1, 2, 4];
  const spacingUm = options.pixelSpacingUm ?? 0.5;
  const tiling = options.tiling ?? 'TILED_FULL';
  const seed = options.seed ?? 'pathembed-synthetic';
  const pixel = options.pixel ?? coordinatePattern;
  const prefix = options.filePrefix ?? 'wsi';
  const fragmentsPerFrame = options.fragmentsPerFrame ?? 1;
  const basicOffsetTable = options.basicOffsetTable ?? true;
  for (const [name, v] of Object.entries({ widthPx, heightPx, tileW, tileH, fragmentsPerFrame })) {
    if (!Number.isInteger(v) || v < 1)
      throw invalidOption(`${name} must be a positive integer, got ${v}`, name);
  }
  if (
    downsamples[0] !== 1 ||
    downsamples.some((d, i) => !Number.isInteger(d) || (i > 0 && d <= downsamples[i - 1]!))
  ) {
    throw invalidOption(
      `downsamples must be ascending integers starting at 1, got ${downsamples.join(', ')}`,
      'downsamples',
    );
  }
  if (tiling === 'TILED_FULL' && options.omitTile) {
    throw invalidOption(
      'omitTile needs per-frame positions (TILED_SPARSE or PER_FRAME_UNSPECIFIED)',
      'omitTile',
    );
  }
  const encode: EncodeSettings = {
    transferSyntaxUid:
      options.transferSyntax === 'jpeg-baseline'
        ? TransferSyntax.JpegBaseline
        : TransferSyntax.ExplicitVRLittleEndian,
    jpegQuality: options.jpegQuality ?? 95,
    chroma: options.jpegChromaSubsampling ?? '4:2:0',
  };
  const jpeg = encode.transferSyntaxUid === TransferSyntax.JpegBaseline;
  const photometric = jpeg ? (encode.chroma === '4:4:4' ? 'YBR_FULL' : 'YBR_FULL_422') : 'RGB';
  const uid = (name: string) => deterministicUid(seed, name);
  const ctx: SeriesContext = {
    seed,
    studyInstanceUid: options.studyInstanceUid ?? uid('study'),
    seriesInstanceUid: uid('series'),
    frameOfReferenceUid: uid('frame-of-reference'),
    dimensionOrganizationUid: uid('dimension-organization'),
    specimenUid: uid('specimen'),
    icc: await syntheticSlideIccProfile(),
    seriesDescription: options.seriesDescription ?? 'pathembed synthetic slide',
    patientId: options.patientId ?? 'SYNTHETIC-0001',
    containerIdentifier: options.containerIdentifier ?? 'SYNTH-SLIDE-1',
    studyDate: options.studyDate ?? DATE,
    imagedWidthMm: umToMm(widthPx * spacingUm),
    imagedHeightMm: umToMm(heightPx * spacingUm),
  };
  await fs.mkdir(dir, { recursive: true });

  const files: string[] = [];
  const levels: SyntheticLevel[] = [];
  let instanceNumber = 0;

  for (const [index, downsample] of (options.volume === false ? [] : downsamples).entries()) {
    const level: PixelLevel = { index, downsample };
    const lw = Math.ceil(widthPx / downsample);
    const lh = Math.ceil(heightPx / downsample);
    const across = Math.ceil(lw / tileW);
    const down = Math.ceil(lh / tileH);
    const spacingMm = umToMm(spacingUm * downsample);
    const pixelSpacingMm: [number, number] =
      options.pixelSpacingQuirk === 'orthanc-swapped'
        ? [ctx.imagedWidthMm / lh, ctx.imagedHeightMm / lw]
        : [spacingMm, spacingMm];
    let positions: Array<readonly [number, number]> = [];
    for (let row = 0; row < down; row++) {
      for (let col = 0; col < across; col++)
        if (!options.omitTile?.(index, col, row)) positions.push([col, row]);
    }
    if (positions.length === 0) throw invalidOption(`level ${index} would have no tiles`, 'omitTile');
    if (tiling !== 'TILED_FULL' && options.frameOrder === 'shuffled')
      positions = shuffled(positions, `${seed}/level-${index}`);

    const frames: Buffer[] = [];
    for (const [col, row] of positions) {
      const rgb = renderTile(pixel, level, col * tileW, row * tileH, tileW, tileH, lw, lh);
      frames.push(await encodeFrame(rgb, tileW, tileH, encode));
    }

    const perPart = options.maxFramesPerInstance ?? frames.length;
    if (!Number.isInteger(perPart) || perPart < 1) {
      throw invalidOption(
        `maxFramesPerInstance must be a positive integer, got ${perPart}`,
        'maxFramesPerInstance',
      );
    }
    const partCount = Math.ceil(frames.length / perPart);
    const concatenationUid = partCount > 1 ? uid(`level-${index}/concatenation`) : undefined;
    instanceNumber++;
    const instances: SyntheticInstance[] = [];
    const tiles: Array<readonly [number, number] | null> = new Array(across * down).fill(null);
    for (let part = 0; part < partCount; part++) {
      const start = part * perPart;
      const partFrames = frames.slice(start, start + perPart);
      const partPositions = positions.slice(start, start + perPart);
      const sopInstanceUid = uid(`level-${index}/part-${part + 1}`);
      const file = path.join(dir, `${prefix}-level${index}${partCount > 1 ? `-part${part + 1}` : ''}.dcm`);
      const rawBytes = partFrames.length * tileW * tileH * 3;
      await writeInstance(
        file,
        ctx,
        {
          sopInstanceUid,
          instanceNumber,
          imageType:
            index === 0
              ? ['ORIGINAL', 'PRIMARY', 'VOLUME', 'NONE']
              : ['DERIVED', 'PRIMARY', 'VOLUME', 'RESAMPLED'],
          widthPx: lw,
          heightPx: lh,
          tileWidthPx: tileW,
          tileHeightPx: tileH,
          pixelSpacingMm,
          tiling,
          ...(tiling !== 'TILED_FULL' ? { framePositions: partPositions } : {}),
          frameCount: partFrames.length,
          transferSyntaxUid: encode.transferSyntaxUid,
          photometric,
          ...(jpeg ? { lossyRatio: rawBytes / partFrames.reduce((n, f) => n + f.length, 0) } : {}),
          ...(concatenationUid
            ? {
                concatenation: {
                  uid: concatenationUid,
                  sourceUid: uid(`level-${index}/concatenation-source`),
                  number: part + 1,
                  total: partCount,
                  frameOffset: start,
                },
              }
            : {}),
        },
        partFrames,
        basicOffsetTable,
        fragmentsPerFrame,
      );
      partPositions.forEach(([col, row], frameIndex) => {
        tiles[row * across + col] = [part, frameIndex];
      });
      instances.push({
        file,
        sopInstanceUid,
        kind: 'VOLUME',
        frameCount: partFrames.length,
        concatenationFrameOffset: concatenationUid ? start : 0,
      });
      files.push(file);
    }
    levels.push({
      index,
      downsample,
      widthPx: lw,
      heightPx: lh,
      tileWidthPx: tileW,
      tileHeightPx: tileH,
      tilesAcross: across,
      tilesDown: down,
      pixelSpacingUm: spacingUm * downsample,
      instances,
      ...(concatenationUid ? { concatenationUid } : {}),
      tiles,
    });
  }

  const associatedImages: SyntheticInstance[] = [];
  for (const kind of options.associatedImages ?? []) {
    let w: number;
    let h: number;
    let source: PixelFunction;
    let level: PixelLevel;
    let spacing: [number, number];
    if (kind === 'LABEL') {
      [w, h] = [256, 128];
      source = labelPattern;
      level = { index: -1, downsample: 1 };
      spacing = [0.1, 0.1]; // a 25.6 x 12.8 mm label
    } else {
      const maxPx = kind === 'THUMBNAIL' ? (options.thumbnailMaxPx ?? 256) : (options.overviewMaxPx ?? 512);
      const scale = Math.max(1, Math.max(widthPx, heightPx) / maxPx);
      [w, h] = [Math.max(1, Math.round(widthPx / scale)), Math.max(1, Math.round(heightPx / scale))];
      source = pixel;
      level = { index: -1, downsample: widthPx / w };
      spacing = [ctx.imagedHeightMm / h, ctx.imagedWidthMm / w];
    }
    const rgb = renderTile(source, level, 0, 0, w, h, w, h);
    const frame = await encodeFrame(rgb, w, h, encode);
    const sopInstanceUid = uid(kind.toLowerCase());
    const file = path.join(dir, `${prefix}-${kind.toLowerCase()}.dcm`);
    await writeInstance(
      file,
      ctx,
      {
        sopInstanceUid,
        instanceNumber: ++instanceNumber,
        imageType:
          kind === 'THUMBNAIL'
            ? ['DERIVED', 'PRIMARY', 'THUMBNAIL', 'RESAMPLED']
            : ['ORIGINAL', 'PRIMARY', kind, 'NONE'],
        widthPx: w,
        heightPx: h,
        tileWidthPx: w,
        tileHeightPx: h,
        pixelSpacingMm: spacing,
        tiling: 'TILED_FULL',
        frameCount: 1,
        transferSyntaxUid: encode.transferSyntaxUid,
        photometric,
        ...(jpeg ? { lossyRatio: (w * h * 3) / frame.length } : {}),
      },
      [frame],
      basicOffsetTable,
      1,
    );
    associatedImages.push({ file, sopInstanceUid, kind, frameCount: 1, concatenationFrameOffset: 0 });
    files.push(file);
  }

  return {
    studyInstanceUid: ctx.studyInstanceUid,
    seriesInstanceUid: ctx.seriesInstanceUid,
    transferSyntaxUid: encode.transferSyntaxUid,
    files,
    levels,
    associatedImages,
  };
}
