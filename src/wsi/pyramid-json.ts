/**
 * The slide model as JSON: written by the process that plans a job, read by the worker that embeds
 * it. `SlidePyramid` is plain data, so writing is JSON.stringify; reading validates the shape (a
 * message or queue payload is untrusted input) and the format version.
 */
import { z } from 'zod';
import { PathembedError } from '../errors.js';
import { SLIDE_PYRAMID_FORMAT, type SlidePyramid } from './slide-level.js';

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const spacing = z.object({ x: z.number().positive(), y: z.number().positive() });

const frameSchema = z.object({
  rows: positiveInt,
  columns: positiveInt,
  samplesPerPixel: positiveInt,
  photometricInterpretation: z.string().min(1),
  bitsAllocated: positiveInt,
  bitsStored: positiveInt.optional(),
  pixelRepresentation: nonNegativeInt.optional(),
  planarConfiguration: nonNegativeInt.optional(),
});

const instanceSchema = z.object({
  sopInstanceUid: z.string().min(1),
  frameCount: positiveInt,
  transferSyntaxUid: z.string().min(1).optional(),
  concatenationFrameOffset: nonNegativeInt,
});

const layoutSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('full') }),
  z.object({
    kind: z.literal('sparse'),
    tiles: z.array(z.tuple([nonNegativeInt, nonNegativeInt]).nullable()),
  }),
]);

const levelSchema = z.object({
  index: nonNegativeInt,
  widthPx: positiveInt,
  heightPx: positiveInt,
  tileWidthPx: positiveInt,
  tileHeightPx: positiveInt,
  tilesAcross: positiveInt,
  tilesDown: positiveInt,
  pixelSpacingMm: spacing,
  frame: frameSchema,
  instances: z.array(instanceSchema).min(1),
  layout: layoutSchema,
  tiling: z.enum(['TILED_FULL', 'TILED_SPARSE', 'UNSPECIFIED']),
  frameCount: positiveInt,
  storedTileCount: nonNegativeInt,
  pixelSpacingSource: z.enum(['pixel-spacing', 'imaged-volume', 'derived-from-level-0']),
  imageType: z.array(z.string()),
  concatenationUid: z.string().min(1).optional(),
});

const associatedSchema = z.object({
  kind: z.enum(['LABEL', 'OVERVIEW', 'THUMBNAIL']),
  sopInstanceUid: z.string().min(1),
  widthPx: positiveInt,
  heightPx: positiveInt,
  tileWidthPx: positiveInt,
  tileHeightPx: positiveInt,
  frameCount: positiveInt,
  photometricInterpretation: z.string().min(1),
  transferSyntaxUid: z.string().min(1).optional(),
  pixelSpacingMm: spacing.optional(),
});

const pyramidSchema = z.object({
  format: z.literal(SLIDE_PYRAMID_FORMAT),
  studyInstanceUid: z.string().min(1),
  seriesInstanceUid: z.string().min(1),
  levels: z.array(levelSchema).min(1),
  associatedImages: z.array(associatedSchema),
});

export function pyramidToJson(pyramid: SlidePyramid): string {
  return JSON.stringify(pyramid);
}

/** Parses and checks a pyramid written by `pyramidToJson` (or any JSON of the same shape). */
export function pyramidFromJson(json: string | unknown): SlidePyramid {
  let data: unknown = json;
  if (typeof json === 'string') {
    try {
      data = JSON.parse(json);
    } catch (err) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `Slide pyramid JSON does not parse: ${(err as Error).message}`,
      );
    }
  }
  const parsed = pyramidSchema.safeParse(data);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `Not a slide pyramid (format ${SLIDE_PYRAMID_FORMAT}): ${problems.slice(0, 5).join('; ')}`,
      {
        problems,
      },
    );
  }
  const pyramid = parsed.data as SlidePyramid;
  pyramid.levels.forEach((level, i) => {
    const expectedTiles = level.tilesAcross * level.tilesDown;
    if (
      level.index !== i ||
      (level.layout.kind === 'sparse' && level.layout.tiles.length !== expectedTiles)
    ) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `Slide pyramid level ${i} is inconsistent (index or tile table size)`,
        {
          level: i,
        },
      );
    }
  });
  return pyramid;
}
