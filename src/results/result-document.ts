/**
 * The JSON result of an embedding job, version 1.0: what was read (source, never a credential),
 * with which model and parameters, at which level and pixel spacing, every patch with its
 * embedding, and a summary (counts, slide-level mean embedding, timings). The zod schema here is
 * the single definition: the reader validates with it and docs/result-schema.json is generated
 * from it (a test keeps the two equal).
 *
 * Layout on disk is streaming-friendly: the header fields first, then `patches` one per line, then
 * `summary`, so a writer never holds the patches and a reader can stream them (result-writer.ts).
 */
import { z } from 'zod';
import { EMBEDDING_ENCODINGS } from './embedding-codec.js';

export const RESULT_SCHEMA_VERSION = '1.0';
export const RESULT_SCHEMA_ID = 'urn:pathembed:result-schema:1.0';

/** How patch rectangles are expressed; stated in every document so a reader need not guess. */
export const TARGET_GRID_COORDINATES =
  'x, y, width and height are pixels of the target grid: a grid of pixels of grid.pixelSpacingUm ' +
  'whose origin (0, 0) is the top-left corner of the slide (the total pixel matrix of every level); ' +
  'x counts columns to the right, y rows down. A grid pixel spans level.scaleFromGrid pixels of the ' +
  'level that was read, and grid.pixelSpacingUm / baseLevel.pixelSpacingUm pixels of level 0.';

const uid = z.string().regex(/^[0-9]+(\.[0-9]+)*$/, 'a DICOM UID');
const nonNegInt = z.number().int().nonnegative();
const posNum = z.number().positive();
const spacingXY = z
  .object({ x: posNum.describe('along columns'), y: posNum.describe('along rows') })
  .describe('Pixel spacing in micrometres per pixel.');

export const resultSourceSchema = z
  .discriminatedUnion('kind', [
    z.object({
      kind: z.literal('dicomweb'),
      baseUrl: z
        .string()
        .describe('DICOMweb base URL of the store, without user information or query (never a token).'),
      studyInstanceUid: uid,
      seriesInstanceUid: uid,
      instanceUids: z.array(uid).describe('SOP Instance UIDs of the images the patches were read from.'),
    }),
    z.object({
      kind: z.literal('local'),
      folder: z.string().describe('Folder of DICOM Part 10 files the slide was read from.'),
      studyInstanceUid: uid.optional(),
      seriesInstanceUid: uid.optional(),
      instanceUids: z.array(uid).describe('SOP Instance UIDs of the images the patches were read from.'),
    }),
  ])
  .describe('Where the slide was read from.');

export const resultModelSchema = z
  .object({
    name: z.string().min(1),
    version: z.string().min(1),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'lower-case hex sha256'),
  })
  .describe('The model, from its manifest; sha256 is of the ONNX file bytes.');

export const resultParametersSchema = z
  .object({
    pixelSpacingUm: posNum.describe('Target pixel spacing of the patches, micrometres per pixel.'),
    stridePx: z.number().int().positive().describe('Grid stride in target-grid pixels.'),
    minTissue: z.number().min(0).max(1).describe('Least tissue fraction of a grid patch.'),
    patchSizePx: z.number().int().positive().describe('Patch width and height in target-grid pixels.'),
    patchSelection: z
      .enum(['tissue-grid', 'explicit'])
      .describe('Tissue-filtered stride grid, or patches given by the caller.'),
    requirePatchesInside: z.boolean(),
    batchSize: z.number().int().positive().describe('Patches per inference batch.'),
  })
  .describe('The parameters the job ran with (defaults resolved).');

export const resultLevelSchema = z
  .object({
    index: nonNegInt.describe('0 is the finest stored level.'),
    widthPx: z.number().int().positive(),
    heightPx: z.number().int().positive(),
    pixelSpacingUm: spacingXY,
    scaleFromGrid: posNum.describe('Pixels of this level per target-grid pixel (1 when the level matches).'),
  })
  .describe('The stored level the patches were read (and resampled) from.');

export const resultBaseLevelSchema = z
  .object({
    widthPx: z.number().int().positive(),
    heightPx: z.number().int().positive(),
    pixelSpacingUm: spacingXY,
  })
  .describe('Level 0 of the slide, to map target-grid coordinates to full-resolution pixels.');

export const resultGridSchema = z
  .object({
    coordinates: z.literal('target-grid'),
    description: z.string(),
    pixelSpacingUm: posNum,
    widthPx: z.number().int().positive().describe('Width of the slide in target-grid pixels.'),
    heightPx: z.number().int().positive().describe('Height of the slide in target-grid pixels.'),
  })
  .describe('The pixel grid patch rectangles are given in.');

export const resultTissueSchema = z
  .object({
    method: z.string(),
    spacingUm: posNum.describe('Pixel spacing the tissue mask was computed at.'),
    fraction: z.number().min(0).max(1).describe('Fraction of the slide that is tissue.'),
  })
  .nullable()
  .describe('The tissue mask, or null when none was computed (explicit patches).');

const embeddingSchema = z
  .union([z.array(z.number()), z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/)])
  .describe('Number array, or base64 of little-endian float32 values, as embeddingEncoding says.');

export const resultPatchSchema = z.object({
  index: nonNegInt.describe('Position in the planned patch list; patches appear in this order.'),
  x: z.number().int(),
  y: z.number().int(),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  tissueFraction: z.number().min(0).max(1),
  embedding: embeddingSchema,
});

export const resultTimingsSchema = z
  .object({
    planMs: z.number().nonnegative(),
    fetchMs: z.number().nonnegative().describe('Summed time waiting for encoded frames.'),
    decodeMs: z.number().nonnegative().describe('Summed time decoding frames and cutting patches.'),
    inferMs: z.number().nonnegative().describe('Time the model ran.'),
    writeMs: z.number().nonnegative().describe('Time writing this document.'),
    totalMs: z.number().nonnegative().describe('Wall time of the job, planning included.'),
  })
  .describe(
    'Stage timings in milliseconds; fetch and decode overlap inference, so they need not add up. In a result assembled by the queue, fetchMs, decodeMs and inferMs are sums of busy time over the chunk jobs, which may run on several workers at once, so they can exceed totalMs.',
  );

export const resultFailedPatchSchema = z
  .object({
    index: nonNegInt,
    x: z.number().int(),
    y: z.number().int(),
    width: z.number().int().positive(),
    height: z.number().int().positive(),
    code: z.string().describe('Error code of the failure, e.g. FRAME_DECODE_ERROR.'),
    message: z.string().describe('What failed: names the frame and the instance.'),
  })
  .describe(
    'A planned patch with no embedding: under frameErrors "skip", one whose frame could not be decoded.',
  );

export const resultSummarySchema = z.object({
  plannedPatchCount: nonNegInt.describe('Patches the plan holds (all chunks).'),
  patchCount: nonNegInt.describe('Patches in this document (with an embedding).'),
  failedPatchCount: nonNegInt
    .optional()
    .describe(
      'Planned patches left out because their frames could not be decoded (frameErrors "skip"); 0 or absent otherwise.',
    ),
  failedPatches: z
    .array(resultFailedPatchSchema)
    .optional()
    .describe('The patches counted in failedPatchCount, in patch order.'),
  meanEmbedding: embeddingSchema
    .nullable()
    .describe('Mean of the embeddings in this document; null when none.'),
  timings: resultTimingsSchema,
  patchesPerSecond: z.number().nonnegative(),
  completedAt: z.string().describe('ISO 8601 time the document was finished.'),
});

export const resultRangeSchema = z
  .object({ start: nonNegInt, end: nonNegInt })
  .nullable()
  .describe(
    'The patch index range [start, end) of a chunk result; null when the document covers the whole plan.',
  );

export const resultHeaderSchema = z.object({
  schemaVersion: z.literal(RESULT_SCHEMA_VERSION),
  generator: z.object({ name: z.literal('pathembed'), version: z.string() }),
  jobKey: z
    .string()
    .describe('Deterministic key of the job (source, options, model): the same job always has the same key.'),
  createdAt: z.string().describe('ISO 8601 time writing began.'),
  source: resultSourceSchema,
  model: resultModelSchema,
  parameters: resultParametersSchema,
  range: resultRangeSchema,
  level: resultLevelSchema,
  baseLevel: resultBaseLevelSchema,
  grid: resultGridSchema,
  tissue: resultTissueSchema,
  embeddingDimension: z.number().int().positive(),
  embeddingEncoding: z.enum(EMBEDDING_ENCODINGS),
});

export const resultDocumentSchema = resultHeaderSchema
  .extend({
    patches: z.array(resultPatchSchema),
    summary: resultSummarySchema,
  })
  .meta({
    $id: RESULT_SCHEMA_ID,
    title: 'pathembed slide embedding result',
    description: `Embeddings of the patches of one whole-slide image. ${TARGET_GRID_COORDINATES}`,
  });

export type ResultHeader = z.infer<typeof resultHeaderSchema>;
export type ResultSource = z.infer<typeof resultSourceSchema>;
export type ResultModel = z.infer<typeof resultModelSchema>;
export type ResultParameters = z.infer<typeof resultParametersSchema>;
export type ResultTimings = z.infer<typeof resultTimingsSchema>;
export type StoredResultPatch = z.infer<typeof resultPatchSchema>;
export type StoredResultSummary = z.infer<typeof resultSummarySchema>;
export type StoredFailedPatch = z.infer<typeof resultFailedPatchSchema>;
export type StoredResultDocument = z.infer<typeof resultDocumentSchema>;

/** The JSON Schema committed as docs/result-schema.json. */
export function resultJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(resultDocumentSchema, { target: 'draft-2020-12' }) as Record<string, unknown>;
}
