/**
 * The API's request and response schemas (zod). Routes parse with them and /openapi.json is
 * generated from them (z.toJSONSchema), so the documentation cannot drift from what is enforced.
 * Request objects are strict: an unknown field is refused rather than silently ignored, because a
 * misspelt option (`minTisue`) would otherwise run a different job than the caller meant.
 */
import { z } from 'zod';
import { JOB_STATES } from '../queue/job-record.js';
import {
  DEFAULT_REQUEST_PRIORITY,
  FRAME_ERROR_POLICIES,
  MAX_REQUEST_PRIORITY,
  MIN_REQUEST_PRIORITY,
  OUTPUT_KINDS,
} from '../queue/queue-jobs.js';
import { ICC_PROFILE_NAMES } from '../wsi/icc-transform.js';
import { MAGNIFICATIONS } from '../wsi/magnification.js';

/** Most sources one POST /v1/jobs may name. */
export const MAX_SOURCES_PER_REQUEST = 100;
/** Longest bearer token accepted (Google access tokens are ~2 kB; JWTs a few kB). */
export const MAX_TOKEN_CHARS = 16_384;
/** Longest series reference string accepted. */
const MAX_REFERENCE_CHARS = 2048;
const MAX_UID_CHARS = 64;
/** A magnification string as EZ-WSI writes it, any case ("20X", "2.5x"). */
const MAGNIFICATION_PATTERN = new RegExp(
  `^(${MAGNIFICATIONS.map((m) => m.replaceAll('.', '\\.')).join('|')})$`,
  'i',
);

/** Most explicit patches in one job's options (PATHEMBED_MAX_PATCHES_PER_JOB is checked too). */
const MAX_EXPLICIT_PATCHES = 1_000_000;

const uid = z
  .string()
  .max(MAX_UID_CHARS)
  .regex(/^[0-9]+(\.[0-9]+)*$/, 'not a DICOM UID (digits in dot-separated components)');

const httpUrl = z
  .string()
  .max(MAX_REFERENCE_CHARS)
  .regex(/^https?:\/\//i, 'must be an http(s) URL');

export const seriesObjectSchema = z
  .strictObject({
    baseUrl: httpUrl.describe('DICOMweb base URL of the store (without /studies/...)'),
    studyUid: uid,
    seriesUid: uid,
    instanceUids: z.array(uid).min(1).optional().describe('Read only these instances of the series'),
  })
  .describe('A series named by its parts');

/**
 * A series or a study named by its parts: one object schema (seriesUid optional) rather than two
 * in a union, so a wrong field is reported at its own path, not as a mismatch of every branch.
 */
export const partsSourceSchema = seriesObjectSchema
  .extend({
    seriesUid: uid.optional().describe('Omit it to name the whole study: every slide series in it'),
  })
  .refine((o) => o.seriesUid !== undefined || o.instanceUids === undefined, {
    message: 'instanceUids needs a seriesUid',
    path: ['instanceUids'],
  })
  .describe('A series (or, without seriesUid, a study) named by its parts');

/** Longest search filter value (QIDO matches are short). */
const MAX_FILTER_CHARS = 256;
/** Most filters in one search: the allow-list has fewer keys than this. */
const MAX_FILTERS = 32;

export const searchSourceSchema = z
  .strictObject({
    search: z.strictObject({
      store: httpUrl.describe('DICOMweb base URL of the store to search'),
      filters: z
        .record(z.string().max(64), z.string().max(MAX_FILTER_CHARS))
        .refine((f) => Object.keys(f).length <= MAX_FILTERS, `at most ${MAX_FILTERS} filters`)
        .default({})
        .describe(
          'QIDO-RS matches by keyword or tag (PatientID, StudyDate as YYYYMMDD-YYYYMMDD, ContainerIdentifier, …); Modality SM is always added',
        ),
      limit: z
        .number()
        .int()
        .min(1)
        .optional()
        .describe(
          'Most series to look at (default PATHEMBED_SEARCH_DEFAULT_LIMIT, at most PATHEMBED_MAX_BATCH_SLIDES)',
        ),
    }),
  })
  .describe('Every slide series a QIDO-RS search of a store matches');

export const sourceSchema = z
  .union([
    z
      .string()
      .min(1)
      .max(MAX_REFERENCE_CHARS)
      .describe(
        'A DICOMweb series URL (<base>/studies/<uid>/series/<uid>[/instances/<uid>]), a study URL (<base>/studies/<uid>: every slide series in it), the Google Healthcare URL or path forms of both (projects/P/locations/L/datasets/D/dicomStores/S/dicomWeb/studies/<uid>[/series/<uid>])',
      ),
    partsSourceSchema,
    searchSourceSchema,
  ])
  .describe('A slide (one WSI series), a study or a search');

export const embedOptionsSchema = z
  .strictObject({
    pixelSpacingUm: z
      .number()
      .positive()
      .max(1000)
      .optional()
      .describe('Target pixel spacing, µm/px (default 0.5)'),
    magnification: z
      .string()
      .regex(MAGNIFICATION_PATTERN, `one of ${MAGNIFICATIONS.join(', ')}`)
      .optional()
      .describe(
        'Target magnification as EZ-WSI names it ("20X" = 0.5 µm/px, "10X" = 1 µm/px); instead of pixelSpacingUm',
      ),
    iccProfile: z
      .enum(ICC_PROFILE_NAMES)
      .optional()
      .describe(
        "Transform patch pixels from the slide's ICC profile to this one before embedding (none: as stored)",
      ),
    stridePx: z.number().int().min(1).max(100_000).optional().describe('Grid stride at the target spacing'),
    minTissue: z.number().min(0).max(1).optional().describe('Least tissue fraction of a grid patch'),
    patches: z
      .array(z.strictObject({ x: z.number().int(), y: z.number().int() }))
      .min(1)
      .max(MAX_EXPLICIT_PATCHES)
      .optional()
      .describe(
        'Explicit 224x224 patches (top-left corners at the target spacing) instead of the tissue grid',
      ),
    requirePatchesInside: z
      .boolean()
      .optional()
      .describe(
        'Refuse explicit patches reaching outside the image (PATCH_OUTSIDE_IMAGE) instead of padding',
      ),
    frameErrors: z
      .enum(FRAME_ERROR_POLICIES)
      .optional()
      .describe(
        'A frame the decoder reports as corrupt: fail the job with FRAME_DECODE_ERROR (fail), or leave out the patches that need it and list them in the result summary (skip); default PATHEMBED_FRAME_ERRORS',
      ),
  })
  .refine((o) => o.magnification === undefined || o.pixelSpacingUm === undefined, {
    message: 'give pixelSpacingUm or magnification, not both',
    path: ['magnification'],
  })
  .describe('How the slide is cut into patches');

export const createJobsRequestSchema = z
  .strictObject({
    sources: z.array(sourceSchema).min(1).max(MAX_SOURCES_PER_REQUEST),
    options: embedOptionsSchema.default({}),
    outputs: z
      .array(z.enum(OUTPUT_KINDS))
      .min(1)
      .default(['json'])
      .describe(
        'json: the embeddings document; dicom-sr: a DICOM Comprehensive SR; dicom-ann: DICOM Microscopy Bulk Simple Annotations (docs/ann.md)',
      ),
    srDestination: httpUrl
      .optional()
      .describe(
        'DICOMweb base URL the SR and the bulk annotations are stored to over STOW-RS (must be on the allow-list)',
      ),
    annEmbedding: z
      .boolean()
      .default(false)
      .describe('The bulk annotations (dicom-ann) hold every embedding component of every patch too'),
    bearerToken: z
      .string()
      .min(1)
      .max(MAX_TOKEN_CHARS)
      .optional()
      .describe('Bearer token for the store(s); kept encrypted only while the job runs'),
    priority: z
      .number()
      .int()
      .min(MIN_REQUEST_PRIORITY)
      .max(MAX_REQUEST_PRIORITY)
      .default(DEFAULT_REQUEST_PRIORITY)
      .describe('1 runs first, 10 last'),
    recompute: z.boolean().default(false).describe('Run again even when the same job exists'),
  })
  .describe('Embed one or more slides');
export type CreateJobsRequest = z.output<typeof createJobsRequestSchema>;

/** Most sources one POST /v1/batches may name (a cohort as a list of series URLs). */
export const MAX_BATCH_SOURCES = 10_000;

export const createBatchRequestSchema = createJobsRequestSchema
  .extend({ sources: z.array(sourceSchema).min(1).max(MAX_BATCH_SOURCES) })
  .describe('Embed a cohort: any mix of series, instances, studies and searches, as one batch');
export type CreateBatchRequest = z.output<typeof createBatchRequestSchema>;

export const skippedSeriesSchema = z.object({
  seriesUrl: z.string(),
  reason: z.string(),
  imageTypes: z.array(z.string()),
  source: z.number().int().describe('Index of the source (study or search) that found it'),
});

export const batchFailureSchema = z.object({
  jobId: z.string(),
  seriesUrl: z.string(),
  code: z.string(),
  message: z.string(),
});

export const batchStatusSchema = z.object({
  id: z.string(),
  state: z.enum(['running', 'completed', 'failed', 'cancelled']),
  slides: z.number().int(),
  counts: z.record(z.enum(JOB_STATES), z.number().int()),
  progress: z.object({
    finished: z.number().int().describe('Slides in a final state; never decreases within a run'),
    patchesDone: z.number().int().describe('Patches embedded; never decreases within a run'),
    patchesPlanned: z.number().int().describe('Patches planned by the slides planned so far'),
    slidesPerMinute: z.number().nullable(),
    etaSeconds: z.number().nullable(),
  }),
  failed: z.array(batchFailureSchema),
  skipped: z.array(skippedSeriesSchema),
  createdAt: z.string(),
  runStartedAt: z.string(),
  runs: z.number().int(),
  cancelledAt: z.string().nullable(),
  links: z.object({ self: z.string(), jobs: z.string(), manifest: z.string() }),
});

export const createBatchResponseSchema = batchStatusSchema.extend({
  existing: z.boolean().describe('True when the same batch had been submitted before'),
  reusedJobs: z.number().int().describe('Slides answered by an existing live or completed job'),
});

export const batchJobsQuerySchema = z.strictObject({
  cursor: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export const manifestQuerySchema = z.strictObject({
  format: z.enum(['json', 'csv']).default('json'),
});

export const submittedJobSchema = z.object({
  id: z.string(),
  state: z.enum(JOB_STATES),
  statusUrl: z.string(),
  source: z.string().describe('The series URL'),
  existing: z.boolean().describe('True when an identical job already existed and is returned instead'),
});
export const createJobsResponseSchema = z.object({
  jobs: z.array(submittedJobSchema),
  skipped: z
    .array(skippedSeriesSchema)
    .describe('Series that studies and searches found but hold no VOLUME image'),
});

export const jobErrorSchema = z.object({ code: z.string(), message: z.string() });

export const jobStatusSchema = z.object({
  id: z.string(),
  state: z.enum(JOB_STATES),
  source: seriesObjectSchema.extend({ url: z.string() }).loose(),
  options: z.record(z.string(), z.unknown()),
  outputs: z.array(z.enum(OUTPUT_KINDS)),
  priority: z.number().int(),
  progress: z.object({
    planned: z.number().int().nullable(),
    done: z.number().int(),
    chunks: z.number().int().nullable(),
    patchesPerSecond: z.number().nullable(),
  }),
  timings: z.object({
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    plannedAt: z.string().nullable(),
    writingAt: z.string().nullable(),
    finishedAt: z.string().nullable(),
    queuedMs: z.number().nullable(),
    planningMs: z.number().nullable(),
    embeddingMs: z.number().nullable(),
    writingMs: z.number().nullable(),
    totalMs: z.number().nullable(),
  }),
  error: jobErrorSchema.nullable(),
  results: z.object({
    json: z.string().nullable().describe('URL of the JSON result'),
    sr: z
      .object({
        studyUid: z.string(),
        seriesUid: z.string(),
        sopInstanceUid: z.string(),
        storedTo: z.string().optional(),
        url: z.string().optional(),
      })
      .nullable(),
    ann: z
      .object({
        studyUid: z.string(),
        seriesUid: z.string(),
        sopInstanceUid: z.string(),
        annotationCount: z.number().int(),
        includesEmbedding: z.boolean(),
        storedTo: z.string().optional(),
        url: z.string().optional(),
      })
      .nullable()
      .describe('The DICOM bulk annotations (dicom-ann output)'),
    hdf5: z.string().nullable().describe('URL of the HDF5 result (features, level-0 coords)'),
    parquet: z.string().nullable().describe('URL of the Parquet result (one row per patch)'),
    failedPatches: z
      .number()
      .int()
      .nonnegative()
      .describe('Planned patches left out because their frames could not be decoded (frameErrors: skip)'),
  }),
  model: z.object({ sha256: z.string() }),
});

/** The formats GET /v1/jobs/:id/result serves; `sr` is the same value as GET /v1/jobs/:id/sr. */
export const RESULT_FORMATS = ['json', 'hdf5', 'parquet', 'sr'] as const;
export const resultQuerySchema = z.strictObject({
  format: z.enum(RESULT_FORMATS).default('json'),
});

export const listJobsQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  offset: z.coerce.number().int().min(0).default(0),
});
export const listJobsResponseSchema = z.object({
  jobs: z.array(jobStatusSchema),
  total: z.number().int(),
  limit: z.number().int(),
  offset: z.number().int(),
  next: z.string().nullable(),
});

export const errorResponseSchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()) }),
});

export const healthResponseSchema = z.object({ status: z.enum(['ok', 'unavailable']) }).loose();
