/**
 * Builds the slide model from a series' DICOM JSON metadata (WADO-RS, or the local reader's dcmjs
 * datasets): VOLUME levels finest first, each one level whatever its storage (one instance, a
 * concatenation, TILED_FULL or per-frame positions), and LABEL/OVERVIEW/THUMBNAIL images apart.
 *
 * What the service cannot read correctly is refused here with UNSUPPORTED_WSI naming the feature and
 * the instance (several focal planes or optical paths, fluorescence, bit depths other than 8,
 * unusual colour models), never passed on to give a silently wrong answer.
 */
import type { FrameDescription } from '../codecs/index.js';
import { type DicomJsonDataset, items, num, requireStr, str, values } from '../dicom-json.js';
import { EPIFLUORESCENCE_ILLUMINATION_CODE, Tag } from '../dicom-tags.js';
import { PathembedError } from '../errors.js';
import { SopClass } from '../uids.js';
import { resolvePixelSpacing } from './pixel-spacing.js';
import {
  type AssociatedImage,
  type AssociatedImageKind,
  type PixelSpacingSource,
  type PyramidLevel,
  SLIDE_PYRAMID_FORMAT,
  type SlideInstance,
  type SlidePyramid,
  type TileLayout,
  type TilingKind,
} from './slide-level.js';

const ASSOCIATED_KINDS: readonly AssociatedImageKind[] = ['LABEL', 'OVERVIEW', 'THUMBNAIL'];
const COLOUR_PHOTOMETRICS = new Set(['RGB', 'YBR_FULL', 'YBR_FULL_422', 'YBR_ICT', 'YBR_RCT']);
/** Z offsets (mm) closer than this are one focal plane. */
const Z_EPSILON_MM = 1e-6;

/** One WSI instance as the model needs it, read once from its dataset. */
interface ParsedInstance {
  readonly ds: DicomJsonDataset;
  readonly sopInstanceUid: string;
  readonly imageType: string[];
  /** ImageType value 3 (or FrameType's), VOLUME when neither is there (OrthancWSIDicomizer). */
  readonly flavor: string;
  readonly widthPx: number;
  readonly heightPx: number;
  readonly tileWidthPx: number;
  readonly tileHeightPx: number;
  readonly frameCount: number;
  readonly dimensionOrganizationType?: string;
  readonly concatenationUid?: string;
  readonly concatenationFrameOffset: number;
  readonly inConcatenationNumber?: number;
  readonly inConcatenationTotalNumber?: number;
  readonly instanceNumber?: number;
  readonly transferSyntaxUid?: string;
  readonly frame: FrameDescription;
}

function unsupported(message: string, details: Record<string, unknown>): PathembedError {
  return new PathembedError('UNSUPPORTED_WSI', message, details);
}

function invalid(message: string, details: Record<string, unknown>): PathembedError {
  return new PathembedError('INVALID_DICOM', message, details);
}

function requirePositiveInt(ds: DicomJsonDataset, tag: string, name: string, fallback?: number): number {
  const n = num(ds, tag) ?? fallback;
  if (n === undefined || !Number.isInteger(n) || n <= 0) {
    throw invalid(
      `Required attribute ${name} (${tag}) is missing or not a positive integer in instance ${str(ds, Tag.SOPInstanceUID)}`,
      {
        tag,
        attribute: name,
        value: n,
        sopInstanceUid: str(ds, Tag.SOPInstanceUID),
      },
    );
  }
  return n;
}

function sharedGroup(ds: DicomJsonDataset): DicomJsonDataset | undefined {
  return items(ds, Tag.SharedFunctionalGroupsSequence)[0];
}

function imageTypeOf(ds: DicomJsonDataset): string[] {
  const imageType = values<string>(ds, Tag.ImageType).map(String);
  if (imageType.length > 0) return imageType;
  const shared = sharedGroup(ds);
  const frameTypeItem = shared ? items(shared, Tag.WholeSlideMicroscopyImageFrameTypeSequence)[0] : undefined;
  return frameTypeItem ? values<string>(frameTypeItem, Tag.FrameType).map(String) : [];
}

function frameDescriptionOf(ds: DicomJsonDataset): FrameDescription {
  const samplesPerPixel = requirePositiveInt(ds, Tag.SamplesPerPixel, 'SamplesPerPixel');
  const frame: FrameDescription = {
    rows: requirePositiveInt(ds, Tag.Rows, 'Rows'),
    columns: requirePositiveInt(ds, Tag.Columns, 'Columns'),
    samplesPerPixel,
    photometricInterpretation: requireStr(
      ds,
      Tag.PhotometricInterpretation,
      'PhotometricInterpretation',
    ).trim(),
    bitsAllocated: requirePositiveInt(ds, Tag.BitsAllocated, 'BitsAllocated'),
  };
  const bitsStored = num(ds, Tag.BitsStored);
  if (bitsStored !== undefined) frame.bitsStored = bitsStored;
  const pixelRepresentation = num(ds, Tag.PixelRepresentation);
  if (pixelRepresentation !== undefined) frame.pixelRepresentation = pixelRepresentation;
  const planarConfiguration = num(ds, Tag.PlanarConfiguration);
  if (samplesPerPixel > 1 && planarConfiguration !== undefined)
    frame.planarConfiguration = planarConfiguration;
  return frame;
}

/**
 * Geometry a slide may declare. The largest whole-slide images scanned are about 250,000 px on a
 * side; a header declaring far more is corrupt or hostile, and must be refused before anything is
 * sized from it (a 4e9-column matrix once reached an array allocation as "Invalid array length").
 */
const MAX_TOTAL_PIXEL_MATRIX_PX = 1_000_000;
/** Tiles of one level: 2^24 is 27 times the tiles of a 250,000 px square slide in 256 px tiles. */
const MAX_TILES_PER_LEVEL = 16_777_216;

function requireBounded(
  ds: DicomJsonDataset,
  tag: string,
  name: string,
  value: number,
  limit: number,
  why: string,
): number {
  if (value > limit) {
    throw invalid(
      `${name} (${tag}) is ${value} in instance ${str(ds, Tag.SOPInstanceUID)}; at most ${limit} is accepted (${why})`,
      { tag, attribute: name, value, limit, sopInstanceUid: str(ds, Tag.SOPInstanceUID) },
    );
  }
  return value;
}

function parseInstance(ds: DicomJsonDataset): ParsedInstance {
  const sopInstanceUid = requireStr(ds, Tag.SOPInstanceUID, 'SOPInstanceUID');
  const imageType = imageTypeOf(ds);
  const frame = frameDescriptionOf(ds);
  const concatenationUid = str(ds, Tag.ConcatenationUID);
  const bigger = 'larger than any whole-slide image; the header is corrupt';
  const widthPx = requireBounded(
    ds,
    Tag.TotalPixelMatrixColumns,
    'TotalPixelMatrixColumns',
    requirePositiveInt(ds, Tag.TotalPixelMatrixColumns, 'TotalPixelMatrixColumns', num(ds, Tag.Columns)),
    MAX_TOTAL_PIXEL_MATRIX_PX,
    bigger,
  );
  const heightPx = requireBounded(
    ds,
    Tag.TotalPixelMatrixRows,
    'TotalPixelMatrixRows',
    requirePositiveInt(ds, Tag.TotalPixelMatrixRows, 'TotalPixelMatrixRows', num(ds, Tag.Rows)),
    MAX_TOTAL_PIXEL_MATRIX_PX,
    bigger,
  );
  const tiles = Math.ceil(widthPx / frame.columns) * Math.ceil(heightPx / frame.rows);
  if (tiles > MAX_TILES_PER_LEVEL) {
    throw invalid(
      `TotalPixelMatrixColumns x TotalPixelMatrixRows (${widthPx} x ${heightPx}) in ${frame.columns} x ${frame.rows} px frames (Columns x Rows) make ${tiles} tiles in instance ${sopInstanceUid}; at most ${MAX_TILES_PER_LEVEL} are accepted`,
      { attribute: 'Columns', value: frame.columns, tiles, limit: MAX_TILES_PER_LEVEL, sopInstanceUid },
    );
  }
  return {
    ds,
    sopInstanceUid,
    imageType,
    flavor: (imageType[2] ?? 'VOLUME').trim().toUpperCase(),
    widthPx,
    heightPx,
    tileWidthPx: frame.columns,
    tileHeightPx: frame.rows,
    frameCount: requirePositiveInt(ds, Tag.NumberOfFrames, 'NumberOfFrames', 1),
    dimensionOrganizationType: str(ds, Tag.DimensionOrganizationType)?.trim().toUpperCase() || undefined,
    concatenationUid: concatenationUid || undefined,
    concatenationFrameOffset: concatenationUid ? (num(ds, Tag.ConcatenationFrameOffsetNumber) ?? 0) : 0,
    inConcatenationNumber: num(ds, Tag.InConcatenationNumber),
    inConcatenationTotalNumber: num(ds, Tag.InConcatenationTotalNumber),
    instanceNumber: num(ds, Tag.InstanceNumber),
    transferSyntaxUid: str(ds, Tag.TransferSyntaxUID) ?? str(ds, Tag.AvailableTransferSyntaxUID),
    frame,
  };
}

function opticalPathIdentifiers(inst: ParsedInstance): string[] {
  const ids = new Set<string>();
  for (const item of items(inst.ds, Tag.OpticalPathSequence)) {
    const id = str(item, Tag.OpticalPathIdentifier);
    if (id !== undefined) ids.add(id.trim());
  }
  const shared = sharedGroup(inst.ds);
  for (const item of shared ? items(shared, Tag.OpticalPathIdentificationSequence) : []) {
    const id = str(item, Tag.OpticalPathIdentifier);
    if (id !== undefined) ids.add(id.trim());
  }
  for (const perFrame of items(inst.ds, Tag.PerFrameFunctionalGroupsSequence)) {
    for (const item of items(perFrame, Tag.OpticalPathIdentificationSequence)) {
      const id = str(item, Tag.OpticalPathIdentifier);
      if (id !== undefined) ids.add(id.trim());
    }
  }
  return [...ids];
}

function opticalPathNames(instances: readonly ParsedInstance[]): string[] {
  const names = new Set<string>();
  for (const inst of instances) {
    for (const item of items(inst.ds, Tag.OpticalPathSequence)) {
      const id = str(item, Tag.OpticalPathIdentifier)?.trim();
      const description = str(item, Tag.OpticalPathDescription)?.trim();
      names.add(description ? `${id ?? '?'} (${description})` : (id ?? '?'));
    }
  }
  return [...names];
}

function isFluorescence(inst: ParsedInstance): boolean {
  return items(inst.ds, Tag.OpticalPathSequence).some((path) =>
    items(path, Tag.IlluminationTypeCodeSequence).some(
      (code) => str(code, Tag.CodeValue)?.trim() === EPIFLUORESCENCE_ILLUMINATION_CODE,
    ),
  );
}

function describeInstance(inst: ParsedInstance): string {
  return `instance ${inst.sopInstanceUid} (${inst.widthPx} x ${inst.heightPx} px)`;
}

/** Refuses, per instance, what the reader cannot turn into correct RGB patches. */
function checkReadable(inst: ParsedInstance): void {
  const { frame } = inst;
  const details = { sopInstanceUid: inst.sopInstanceUid, widthPx: inst.widthPx, heightPx: inst.heightPx };
  if (frame.bitsAllocated !== 8 || (frame.bitsStored !== undefined && frame.bitsStored !== 8)) {
    throw unsupported(
      `Unsupported bit depth in ${describeInstance(inst)}: BitsAllocated ${frame.bitsAllocated}, BitsStored ${frame.bitsStored ?? 'absent'}; only 8-bit samples are read`,
      { ...details, bitsAllocated: frame.bitsAllocated, bitsStored: frame.bitsStored },
    );
  }
  const colour = frame.samplesPerPixel === 3 && COLOUR_PHOTOMETRICS.has(frame.photometricInterpretation);
  const grey = frame.samplesPerPixel === 1 && frame.photometricInterpretation === 'MONOCHROME2';
  if (!colour && !grey) {
    throw unsupported(
      `Unsupported colour model in ${describeInstance(inst)}: SamplesPerPixel ${frame.samplesPerPixel} with PhotometricInterpretation ${frame.photometricInterpretation}; only RGB/YBR (3 samples) and MONOCHROME2 (1 sample) are read`,
      {
        ...details,
        samplesPerPixel: frame.samplesPerPixel,
        photometricInterpretation: frame.photometricInterpretation,
      },
    );
  }
  const focalPlanes = Math.max(
    num(inst.ds, Tag.TotalPixelMatrixFocalPlanes) ?? 1,
    num(inst.ds, Tag.NumberOfFocalPlanes) ?? 1,
  );
  if (focalPlanes > 1) {
    throw unsupported(
      `Several focal planes (${focalPlanes}) in ${describeInstance(inst)}: Z-stacks are not read; the service needs one focal plane per level`,
      { ...details, focalPlanes },
    );
  }
  const opticalPaths = Math.max(
    num(inst.ds, Tag.NumberOfOpticalPaths) ?? 1,
    items(inst.ds, Tag.OpticalPathSequence).length,
    opticalPathIdentifiers(inst).length,
  );
  if (opticalPaths > 1) throw severalOpticalPaths([inst], opticalPaths);
}

/** Refuses single-channel fluorescence: Path Foundation embeds brightfield H&E. */
function checkBrightfield(inst: ParsedInstance): void {
  const { frame } = inst;
  const details = { sopInstanceUid: inst.sopInstanceUid, widthPx: inst.widthPx, heightPx: inst.heightPx };
  if (frame.photometricInterpretation === 'MONOCHROME2' && isFluorescence(inst)) {
    throw unsupported(
      `Fluorescence image in ${describeInstance(inst)}: MONOCHROME2 under epifluorescence illumination (optical path ${opticalPathNames([inst]).join(', ')}); the service embeds brightfield (H&E) slides only`,
      {
        ...details,
        photometricInterpretation: frame.photometricInterpretation,
        illumination: 'epifluorescence',
      },
    );
  }
}

function severalOpticalPaths(instances: readonly ParsedInstance[], count: number): PathembedError {
  // Callers pass one instance or a whole level, never none.
  const first = instances[0]!;
  const names = opticalPathNames(instances);
  const multiplexed = first.frame.photometricInterpretation === 'MONOCHROME2';
  const what = multiplexed
    ? `Multiplexed fluorescence: ${count} optical paths (channels ${names.join(', ')}) of MONOCHROME2 images`
    : `Several optical paths (${count}: ${names.join(', ')})`;
  return unsupported(
    `${what} at one level (${first.widthPx} x ${first.heightPx} px, instances ${instances.map((i) => i.sopInstanceUid).join(', ')}); the service embeds single-optical-path brightfield (H&E) slides only`,
    {
      sopInstanceUids: instances.map((i) => i.sopInstanceUid),
      widthPx: first.widthPx,
      heightPx: first.heightPx,
      opticalPaths: names,
    },
  );
}

/** The plane position item of a per-frame group, else the shared one. */
function planePosition(
  perFrame: DicomJsonDataset | undefined,
  shared: DicomJsonDataset | undefined,
): DicomJsonDataset | undefined {
  return (
    (perFrame ? items(perFrame, Tag.PlanePositionSlideSequence)[0] : undefined) ??
    (shared ? items(shared, Tag.PlanePositionSlideSequence)[0] : undefined)
  );
}

/** A level's storage: its parts in frame order, as one concatenation or one instance. */
interface LevelParts {
  readonly parts: ParsedInstance[];
  readonly concatenationUid?: string;
}

function orderConcatenation(uid: string, parts: ParsedInstance[]): ParsedInstance[] {
  const ordered = [...parts].sort(
    (a, b) =>
      a.concatenationFrameOffset - b.concatenationFrameOffset ||
      (a.inConcatenationNumber ?? 0) - (b.inConcatenationNumber ?? 0),
  );
  const total = ordered.find((p) => p.inConcatenationTotalNumber !== undefined)?.inConcatenationTotalNumber;
  if (total !== undefined && total !== ordered.length) {
    throw invalid(
      `Concatenation ${uid} is incomplete: the series holds ${ordered.length} of its ${total} parts (${ordered.map((p) => p.sopInstanceUid).join(', ')})`,
      { concatenationUid: uid, partsFound: ordered.length, partsExpected: total },
    );
  }
  let expectedOffset = 0;
  for (const part of ordered) {
    if (part.concatenationFrameOffset !== expectedOffset) {
      throw invalid(
        `Concatenation ${uid} has a gap or overlap: part ${part.sopInstanceUid} starts at frame offset ${part.concatenationFrameOffset}, expected ${expectedOffset}`,
        {
          concatenationUid: uid,
          sopInstanceUid: part.sopInstanceUid,
          offset: part.concatenationFrameOffset,
          expectedOffset,
        },
      );
    }
    expectedOffset += part.frameCount;
  }
  return ordered;
}

/** Splits the instances of one pixel-matrix size into concatenations and single instances. */
function storageUnits(instances: readonly ParsedInstance[]): LevelParts[] {
  const byConcatenation = new Map<string, ParsedInstance[]>();
  const units: LevelParts[] = [];
  for (const inst of instances) {
    if (inst.concatenationUid) {
      const list = byConcatenation.get(inst.concatenationUid) ?? [];
      list.push(inst);
      byConcatenation.set(inst.concatenationUid, list);
    } else {
      units.push({ parts: [inst] });
    }
  }
  for (const [uid, parts] of byConcatenation)
    units.push({ parts: orderConcatenation(uid, parts), concatenationUid: uid });
  // Every unit holds at least one part.
  return units.sort(
    (a, b) =>
      (a.parts[0]!.instanceNumber ?? 0) - (b.parts[0]!.instanceNumber ?? 0) ||
      a.parts[0]!.sopInstanceUid.localeCompare(b.parts[0]!.sopInstanceUid),
  );
}

function tilingOf(inst: ParsedInstance): TilingKind {
  if (inst.dimensionOrganizationType === 'TILED_FULL') return 'TILED_FULL';
  if (inst.dimensionOrganizationType === 'TILED_SPARSE') return 'TILED_SPARSE';
  return 'UNSPECIFIED';
}

interface SparseTiles {
  tiles: Array<readonly [number, number] | null>;
  stored: number;
}

/** Reads per-frame positions of every part into the tile grid; refuses anything off the grid. */
function sparseTiles(parts: readonly ParsedInstance[], tilesAcross: number, tilesDown: number): SparseTiles {
  const tiles: Array<readonly [number, number] | null> = new Array(tilesAcross * tilesDown).fill(null);
  const zOffsets: number[] = [];
  let stored = 0;
  parts.forEach((inst, ordinal) => {
    const perFrame = items(inst.ds, Tag.PerFrameFunctionalGroupsSequence);
    const shared = sharedGroup(inst.ds);
    const unpositionedSingleTile =
      perFrame.length === 0 && inst.frameCount === 1 && tilesAcross * tilesDown === 1;
    if (perFrame.length < inst.frameCount && !unpositionedSingleTile && !planePosition(undefined, shared)) {
      throw invalid(
        `${describeInstance(inst)} has ${inst.frameCount} frames but ${perFrame.length} per-frame positions (PerFrameFunctionalGroupsSequence > PlanePositionSlideSequence) and its DimensionOrganizationType is ${inst.dimensionOrganizationType ?? 'absent'}, not TILED_FULL: its tiles cannot be placed`,
        { sopInstanceUid: inst.sopInstanceUid, frameCount: inst.frameCount, perFrameItems: perFrame.length },
      );
    }
    for (let frameIndex = 0; frameIndex < inst.frameCount; frameIndex++) {
      const position = planePosition(perFrame[frameIndex], shared);
      const colPos = position
        ? num(position, Tag.ColumnPositionInTotalImagePixelMatrix)
        : unpositionedSingleTile
          ? 1
          : undefined;
      const rowPos = position
        ? num(position, Tag.RowPositionInTotalImagePixelMatrix)
        : unpositionedSingleTile
          ? 1
          : undefined;
      if (colPos === undefined || rowPos === undefined) {
        throw invalid(
          `Frame ${frameIndex + 1} of ${describeInstance(inst)} has no Column/RowPositionInTotalImagePixelMatrix`,
          { sopInstanceUid: inst.sopInstanceUid, frameIndex },
        );
      }
      const z = position ? num(position, Tag.ZOffsetInSlideCoordinateSystem) : undefined;
      if (z !== undefined && !zOffsets.some((seen) => Math.abs(seen - z) <= Z_EPSILON_MM)) zOffsets.push(z);
      if (zOffsets.length > 1) {
        throw unsupported(
          `Several focal planes at one level: frames of ${describeInstance(inst)} lie at Z offsets ${zOffsets.join(', ')} mm; Z-stacks are not read`,
          { sopInstanceUid: inst.sopInstanceUid, zOffsetsMm: zOffsets },
        );
      }
      const x = colPos - 1;
      const y = rowPos - 1;
      if (x % inst.tileWidthPx !== 0 || y % inst.tileHeightPx !== 0) {
        throw unsupported(
          `Frame ${frameIndex + 1} of ${describeInstance(inst)} starts at pixel (${x}, ${y}), off the ${inst.tileWidthPx} x ${inst.tileHeightPx} tile grid; only grid-aligned tiles are read`,
          { sopInstanceUid: inst.sopInstanceUid, frameIndex, x, y },
        );
      }
      const col = x / inst.tileWidthPx;
      const row = y / inst.tileHeightPx;
      if (col < 0 || row < 0 || col >= tilesAcross || row >= tilesDown) {
        throw invalid(
          `Frame ${frameIndex + 1} of ${describeInstance(inst)} is positioned at pixel (${x}, ${y}), outside the total pixel matrix`,
          { sopInstanceUid: inst.sopInstanceUid, frameIndex, x, y },
        );
      }
      const slot = row * tilesAcross + col;
      const existing = tiles[slot];
      if (existing) {
        throw unsupported(
          `Two frames hold tile (${col}, ${row}) of the ${inst.widthPx} x ${inst.heightPx} px level: frame ${existing[1] + 1} of ${parts[existing[0]]!.sopInstanceUid} and frame ${frameIndex + 1} of ${inst.sopInstanceUid}; overlapping tiles are not read`,
          { col, row, sopInstanceUids: [parts[existing[0]]!.sopInstanceUid, inst.sopInstanceUid] },
        );
      }
      tiles[slot] = [ordinal, frameIndex];
      stored++;
    }
  });
  return { tiles, stored };
}

function checkSameImagePixels(reference: ParsedInstance, other: ParsedInstance): void {
  const a = reference.frame;
  const b = other.frame;
  if (
    a.rows !== b.rows ||
    a.columns !== b.columns ||
    a.samplesPerPixel !== b.samplesPerPixel ||
    a.photometricInterpretation !== b.photometricInterpretation
  ) {
    throw unsupported(
      `Instances ${reference.sopInstanceUid} and ${other.sopInstanceUid} of the ${reference.widthPx} x ${reference.heightPx} px level differ in tile size or colour model (${a.columns}x${a.rows} ${a.photometricInterpretation} vs ${b.columns}x${b.rows} ${b.photometricInterpretation})`,
      { sopInstanceUids: [reference.sopInstanceUid, other.sopInstanceUid] },
    );
  }
}

interface LevelDraft extends Omit<PyramidLevel, 'index' | 'pixelSpacingMm' | 'pixelSpacingSource'> {
  spacing?: { x: number; y: number; source: PixelSpacingSource };
}

/** One VOLUME level from all instances of its pixel-matrix size. */
function buildLevel(instances: readonly ParsedInstance[]): LevelDraft {
  instances.forEach(checkReadable);
  const units = storageUnits(instances);
  // A level is built from the instances of one size, so there is at least one unit with one part.
  const first = units[0]!.parts[0]!;
  for (const unit of units) for (const part of unit.parts) checkSameImagePixels(first, part);

  if (units.length > 1) {
    // Several instances of one size that are not one concatenation: channels, focal planes or copies.
    const pathIds = new Set(instances.flatMap((inst) => opticalPathIdentifiers(inst)));
    if (pathIds.size > 1) throw severalOpticalPaths(instances, pathIds.size);
    const zOffsets = new Set(
      instances.map((inst) => {
        const pos = planePosition(
          items(inst.ds, Tag.PerFrameFunctionalGroupsSequence)[0],
          sharedGroup(inst.ds),
        );
        return pos ? (num(pos, Tag.ZOffsetInSlideCoordinateSystem) ?? 0) : 0;
      }),
    );
    if (zOffsets.size > 1) {
      throw unsupported(
        `Several focal planes at one level (${first.widthPx} x ${first.heightPx} px): instances ${instances.map((i) => i.sopInstanceUid).join(', ')} lie at Z offsets ${[...zOffsets].join(', ')} mm; Z-stacks are not read`,
        { sopInstanceUids: instances.map((i) => i.sopInstanceUid), zOffsetsMm: [...zOffsets] },
      );
    }
    if (units.some((u) => tilingOf(u.parts[0]!) === 'TILED_FULL')) {
      throw unsupported(
        `The ${first.widthPx} x ${first.heightPx} px level is stored ${units.length} times (${units.map((u) => u.parts[0]!.sopInstanceUid).join(', ')}) in instances that are not one concatenation; duplicate levels are not read`,
        { sopInstanceUids: units.map((u) => u.parts[0]!.sopInstanceUid) },
      );
    }
  }

  instances.forEach(checkBrightfield);

  const parts = units.flatMap((u) => u.parts);
  const tilesAcross = Math.ceil(first.widthPx / first.tileWidthPx);
  const tilesDown = Math.ceil(first.heightPx / first.tileHeightPx);
  const frameCount = parts.reduce((sum, p) => sum + p.frameCount, 0);
  const tiling = tilingOf(first);
  const sopInstances: SlideInstance[] = parts.map((p) => ({
    sopInstanceUid: p.sopInstanceUid,
    frameCount: p.frameCount,
    ...(p.transferSyntaxUid ? { transferSyntaxUid: p.transferSyntaxUid } : {}),
    concatenationFrameOffset: p.concatenationFrameOffset,
  }));

  let layout: TileLayout;
  let storedTileCount: number;
  if (tiling === 'TILED_FULL') {
    if (frameCount !== tilesAcross * tilesDown) {
      throw new PathembedError(
        'DICOM_TILED_FULL_ERROR',
        `TILED_FULL level ${first.widthPx} x ${first.heightPx} px with ${first.tileWidthPx} x ${first.tileHeightPx} px tiles needs ${tilesAcross} x ${tilesDown} = ${tilesAcross * tilesDown} frames but ${parts.length > 1 ? `its ${parts.length} instances hold` : `instance ${first.sopInstanceUid} holds`} ${frameCount}`,
        {
          sopInstanceUids: parts.map((p) => p.sopInstanceUid),
          expectedFrames: tilesAcross * tilesDown,
          frameCount,
        },
      );
    }
    layout = { kind: 'full' };
    storedTileCount = frameCount;
  } else {
    const sparse = sparseTiles(parts, tilesAcross, tilesDown);
    layout = { kind: 'sparse', tiles: sparse.tiles };
    storedTileCount = sparse.stored;
  }

  const spacing = resolvePixelSpacing(first.ds, first.widthPx, first.heightPx);
  const concatenationUid = units.length === 1 ? units[0]!.concatenationUid : undefined;
  return {
    widthPx: first.widthPx,
    heightPx: first.heightPx,
    tileWidthPx: first.tileWidthPx,
    tileHeightPx: first.tileHeightPx,
    tilesAcross,
    tilesDown,
    frame: first.frame,
    instances: sopInstances,
    layout,
    tiling,
    frameCount,
    storedTileCount,
    imageType: first.imageType,
    ...(concatenationUid ? { concatenationUid } : {}),
    ...(spacing ? { spacing } : {}),
  };
}

function buildAssociated(inst: ParsedInstance, kind: AssociatedImageKind): AssociatedImage {
  const spacing = resolvePixelSpacing(inst.ds, inst.widthPx, inst.heightPx);
  return {
    kind,
    sopInstanceUid: inst.sopInstanceUid,
    widthPx: inst.widthPx,
    heightPx: inst.heightPx,
    tileWidthPx: inst.tileWidthPx,
    tileHeightPx: inst.tileHeightPx,
    frameCount: inst.frameCount,
    photometricInterpretation: inst.frame.photometricInterpretation,
    ...(inst.transferSyntaxUid ? { transferSyntaxUid: inst.transferSyntaxUid } : {}),
    ...(spacing ? { pixelSpacingMm: { x: spacing.x, y: spacing.y } } : {}),
  };
}

/**
 * The slide model of one series from its instances' DICOM JSON metadata. Instances of other SOP
 * classes (annotations, SRs, segmentations) are ignored.
 *
 * Throws NOT_A_WSI (no VOLUME WSI image), UNSUPPORTED_WSI (a feature the reader does not handle),
 * DICOM_TILED_FULL_ERROR (a TILED_FULL frame count that does not fill the tile grid) and
 * INVALID_DICOM (a required attribute missing or wrong).
 */
export function buildSlidePyramid(metadata: readonly DicomJsonDataset[]): SlidePyramid {
  const wsi = metadata.filter((ds) => str(ds, Tag.SOPClassUID) === SopClass.VLWholeSlideMicroscopyImage);
  if (wsi.length === 0) {
    const classes = [...new Set(metadata.map((ds) => str(ds, Tag.SOPClassUID) ?? 'none'))];
    throw new PathembedError(
      'NOT_A_WSI',
      `The series holds no VL Whole Slide Microscopy image (${metadata.length} instances, SOP classes: ${classes.join(', ') || 'none'})`,
      { instanceCount: metadata.length, sopClassUids: classes },
    );
  }
  const parsed = wsi.map(parseInstance);
  const volumes = parsed.filter((p) => p.flavor === 'VOLUME');
  if (volumes.length === 0) {
    const flavors = [...new Set(parsed.map((p) => p.flavor))];
    throw new PathembedError(
      'NOT_A_WSI',
      `The series holds ${parsed.length} whole-slide instances but no VOLUME image (only ${flavors.join(', ')})`,
      { flavors },
    );
  }

  const bySize = new Map<string, ParsedInstance[]>();
  for (const inst of volumes) {
    const key = `${inst.widthPx}x${inst.heightPx}`;
    const list = bySize.get(key) ?? [];
    list.push(inst);
    bySize.set(key, list);
  }
  const drafts = [...bySize.values()]
    .map(buildLevel)
    .sort((a, b) => b.widthPx * b.heightPx - a.widthPx * a.heightPx);

  const reference = drafts.find((d) => d.spacing);
  if (!reference?.spacing) {
    throw invalid(
      'No level states its pixel spacing: PixelSpacing (Pixel Measures functional group) and ImagedVolumeWidth/Height are both missing',
      { sopInstanceUids: volumes.map((v) => v.sopInstanceUid) },
    );
  }
  const levels: PyramidLevel[] = drafts.map(({ spacing, ...draft }, index) => {
    const resolved = spacing ?? {
      x: (reference.spacing!.x * reference.widthPx) / draft.widthPx,
      y: (reference.spacing!.y * reference.heightPx) / draft.heightPx,
      source: 'derived-from-level-0' as const,
    };
    return {
      index,
      ...draft,
      pixelSpacingMm: { x: resolved.x, y: resolved.y },
      pixelSpacingSource: resolved.source,
    };
  });

  const associatedImages = parsed
    .filter((p) => (ASSOCIATED_KINDS as readonly string[]).includes(p.flavor))
    .map((p) => buildAssociated(p, p.flavor as AssociatedImageKind))
    .sort(
      (a, b) =>
        ASSOCIATED_KINDS.indexOf(a.kind) - ASSOCIATED_KINDS.indexOf(b.kind) ||
        b.widthPx * b.heightPx - a.widthPx * a.heightPx,
    );

  const first = volumes[0]!.ds;
  return {
    format: SLIDE_PYRAMID_FORMAT,
    studyInstanceUid: requireStr(first, Tag.StudyInstanceUID, 'StudyInstanceUID'),
    seriesInstanceUid: requireStr(first, Tag.SeriesInstanceUID, 'SeriesInstanceUID'),
    levels,
    associatedImages,
  };
}

/** The first associated image of a kind (LABEL, OVERVIEW, THUMBNAIL), if the series has one. */
export function associatedImage(
  pyramid: SlidePyramid,
  kind: AssociatedImageKind,
): AssociatedImage | undefined {
  return pyramid.associatedImages.find((a) => a.kind === kind);
}
