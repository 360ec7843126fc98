/**
 * /openapi.json: an OpenAPI 3.1 document generated from the same zod schemas the routes enforce
 * (z.toJSONSchema), so the documented request is exactly the accepted one.
 */
import { z } from 'zod';
import { predictRequestSchema, predictResponseSchema } from './predict-schema.js';
import {
  batchStatusSchema,
  createBatchRequestSchema,
  createBatchResponseSchema,
  createJobsRequestSchema,
  createJobsResponseSchema,
  errorResponseSchema,
  healthResponseSchema,
  jobStatusSchema,
  listJobsResponseSchema,
} from './schemas.js';
import { searchRequestSchema, searchResponseSchema } from './search-schema.js';

const API_VERSION = '0.1.0';

/** OpenAPI 3.1 uses JSON Schema 2020-12, which is what z.toJSONSchema writes. */
function schema(s: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  return rest;
}

const json = (ref: string) => ({ 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } });
const errorResponse = (description: string) => ({ description, content: json('Error') });
const jobIdParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };

export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'pathembed',
      version: API_VERSION,
      description:
        'Path Foundation embeddings of DICOM whole-slide images: queued slide jobs and a Path Foundation-compatible /v1/predict.',
    },
    components: {
      securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'PATHEMBED_API_KEYS' } },
      schemas: {
        CreateJobsRequest: schema(createJobsRequestSchema, 'input'),
        CreateJobsResponse: schema(createJobsResponseSchema, 'output'),
        JobStatus: schema(jobStatusSchema, 'output'),
        JobList: schema(listJobsResponseSchema, 'output'),
        CreateBatchRequest: schema(createBatchRequestSchema, 'input'),
        CreateBatchResponse: schema(createBatchResponseSchema, 'output'),
        BatchStatus: schema(batchStatusSchema, 'output'),
        SearchRequest: schema(searchRequestSchema, 'input'),
        SearchResponse: schema(searchResponseSchema, 'output'),
        PredictRequest: schema(predictRequestSchema, 'input'),
        PredictResponse: schema(predictResponseSchema, 'output'),
        Health: schema(healthResponseSchema, 'output'),
        Error: schema(errorResponseSchema, 'output'),
      },
    },
    security: [{ apiKey: [] }],
    paths: {
      '/v1/jobs': {
        post: {
          summary: 'Embed slides: one job per source',
          requestBody: { required: true, content: json('CreateJobsRequest') },
          responses: {
            202: {
              description: 'Queued (or the identical existing jobs)',
              content: json('CreateJobsResponse'),
            },
            400: errorResponse(
              'Invalid request (INVALID_ARGUMENT with the field paths, INVALID_SERIES_REFERENCE)',
            ),
            401: errorResponse('Missing or wrong API key'),
            403: errorResponse('UNAPPROVED_DICOM_STORE'),
            413: errorResponse('PAYLOAD_TOO_LARGE'),
            429: errorResponse('TOO_MANY_JOBS for this API key'),
          },
        },
        get: {
          summary: 'Recent jobs of this API key, newest first',
          parameters: [
            {
              name: 'limit',
              in: 'query',
              schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
            },
            { name: 'offset', in: 'query', schema: { type: 'integer', minimum: 0, default: 0 } },
          ],
          responses: { 200: { description: 'A page of jobs', content: json('JobList') } },
        },
      },
      '/v1/jobs/{id}': {
        get: {
          summary: 'State, progress, timings, error and result links of a job',
          parameters: [jobIdParam],
          responses: {
            200: { description: 'The job', content: json('JobStatus') },
            404: errorResponse('No such job'),
          },
        },
        delete: {
          summary: 'Cancel a job (workers stop within one batch)',
          parameters: [jobIdParam],
          responses: {
            200: { description: 'The cancelled job', content: json('JobStatus') },
            404: errorResponse('No such job'),
          },
        },
      },
      '/v1/jobs/{id}/result': {
        get: {
          summary: 'A result of a completed job (streamed): JSON (default), HDF5, Parquet or the SR',
          parameters: [
            jobIdParam,
            {
              name: 'format',
              in: 'query',
              required: false,
              schema: { type: 'string', enum: ['json', 'hdf5', 'parquet', 'sr'], default: 'json' },
              description:
                'json: docs/result-schema.json; hdf5 and parquet: docs/outputs.md; sr: DICOM Part 10',
            },
          ],
          responses: {
            200: {
              description: 'The result in the format asked for',
              content: {
                'application/json': {},
                'application/x-hdf5': {},
                'application/vnd.apache.parquet': {},
                'application/dicom': {},
              },
            },
            404: errorResponse('No such job, not completed, or that output was not asked for'),
          },
        },
      },
      '/v1/jobs/{id}/sr': {
        get: {
          summary: 'The DICOM SR of a completed job',
          parameters: [jobIdParam],
          responses: {
            200: { description: 'DICOM Part 10', content: { 'application/dicom': {} } },
            404: errorResponse('No such job, or no SR'),
          },
        },
      },
      '/v1/jobs/{id}/ann': {
        get: {
          summary: 'The DICOM Microscopy Bulk Simple Annotations of a completed job (streamed)',
          parameters: [jobIdParam],
          responses: {
            200: { description: 'DICOM Part 10 (docs/ann.md)', content: { 'application/dicom': {} } },
            404: errorResponse('No such job, or no bulk annotations'),
          },
        },
      },
      '/v1/jobs/{id}/slide': {
        get: {
          summary:
            "The deep-zoom layout of a job's slide for the web page's viewer (OpenSeadragon): level-0 size, tile size, zoom levels, tile URL template (docs/ui.md)",
          parameters: [jobIdParam],
          responses: {
            200: { description: '{jobId, widthPx, heightPx, tileSizePx, maxLevel, tiles}' },
            404: errorResponse('No such job (of this API key)'),
          },
        },
      },
      '/v1/jobs/{id}/tiles/{z}/{tile}': {
        get: {
          summary:
            "A 256 px JPEG tile of a job's slide at deep-zoom level z (maxLevel is level 0), `{col}_{row}.jpg`, read from the job's store through the frame cache",
          parameters: [
            jobIdParam,
            { name: 'z', in: 'path', required: true, schema: { type: 'integer', minimum: 0 } },
            {
              name: 'tile',
              in: 'path',
              required: true,
              schema: { type: 'string', pattern: '^\\d+_\\d+\\.jpg$' },
            },
          ],
          responses: {
            200: { description: 'JPEG', content: { 'image/jpeg': {} } },
            404: errorResponse('No such job, or a tile outside the slide'),
          },
        },
      },
      '/v1/jobs/{id}/region': {
        get: {
          summary:
            "A level-0 rectangle of a job's slide as a JPEG whose longer side is at most `size` px (patch thumbnails)",
          parameters: [
            jobIdParam,
            ...['x', 'y', 'width', 'height', 'size'].map((name) => ({
              name,
              in: 'query',
              required: name !== 'size',
              schema: { type: 'integer' },
            })),
          ],
          responses: {
            200: { description: 'JPEG', content: { 'image/jpeg': {} } },
            400: errorResponse('INVALID_ARGUMENT: a missing or bad query field'),
            404: errorResponse('No such job (of this API key)'),
          },
        },
      },
      '/v1/jobs/{id}/overlay': {
        get: {
          summary:
            "The patches of a completed job for the viewer's overlay: level-0 rectangles, PCA colours and the first 8 principal component scores, as columns",
          parameters: [jobIdParam],
          responses: {
            200: {
              description:
                '{count, components, patchIndex, x, y, width, height, tissueFraction, rgb, scores}',
            },
            404: errorResponse('No such job, or no JSON result yet'),
          },
        },
      },
      '/v1/search': {
        post: {
          summary:
            'The k patches nearest (cosine distance) to a patch of a completed job, or to an embedding, in the job or across the completed jobs of a batch',
          requestBody: { required: true, content: json('SearchRequest') },
          responses: {
            200: {
              description: 'Neighbours nearest first; the query patch itself is among them at distance ~0',
              content: json('SearchResponse'),
            },
            400: errorResponse(
              'INVALID_ARGUMENT: a bad field, k over PATHEMBED_SIMILARITY_MAX_K, a point in no patch of the job, an embedding of the wrong length',
            ),
            404: errorResponse('NOT_FOUND: no such job or batch (of this API key)'),
            409: errorResponse('JOB_NOT_COMPLETED: the job (or every job of the batch) has not completed'),
          },
        },
      },
      '/v1/batches': {
        post: {
          summary:
            'Embed a cohort: series, instances, studies and searches expanded into one job per slide series',
          requestBody: { required: true, content: json('CreateBatchRequest') },
          responses: {
            202: {
              description: 'The batch (the same one when submitted again)',
              content: json('CreateBatchResponse'),
            },
            400: errorResponse('INVALID_ARGUMENT, INVALID_SERIES_REFERENCE, INVALID_SEARCH_FILTER'),
            403: errorResponse('UNAPPROVED_DICOM_STORE'),
            413: errorResponse('PAYLOAD_TOO_LARGE (PATHEMBED_MAX_BATCH_SLIDES)'),
            422: errorResponse('NO_SLIDE_SERIES: nothing left to embed'),
            429: errorResponse('TOO_MANY_JOBS: the batch does not fit PATHEMBED_MAX_JOBS_PER_KEY'),
          },
        },
      },
      '/v1/batches/{id}': {
        get: {
          summary: 'Counts by state, monotone progress, slides per minute, ETA, failed and skipped slides',
          parameters: [jobIdParam],
          responses: {
            200: { description: 'The batch', content: json('BatchStatus') },
            404: errorResponse('No such batch'),
          },
        },
        delete: {
          summary: 'Cancel every unfinished job of the batch',
          parameters: [jobIdParam],
          responses: {
            200: { description: 'The cancelled batch', content: json('BatchStatus') },
            404: errorResponse('No such batch'),
          },
        },
      },
      '/v1/batches/{id}/jobs': {
        get: {
          summary: 'A page of the batch jobs, in slide order',
          parameters: [
            jobIdParam,
            { name: 'cursor', in: 'query', schema: { type: 'integer', minimum: 0, default: 0 } },
            {
              name: 'limit',
              in: 'query',
              schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
            },
          ],
          responses: { 200: { description: 'Jobs (JobStatus each), total and the next page' } },
        },
      },
      '/v1/batches/{id}/manifest': {
        get: {
          summary: 'One row per slide: state, patch count, result files with bytes and sha256',
          parameters: [
            jobIdParam,
            {
              name: 'format',
              in: 'query',
              schema: { type: 'string', enum: ['json', 'csv'], default: 'json' },
            },
          ],
          responses: {
            200: { description: 'The manifest', content: { 'application/json': {}, 'text/csv': {} } },
          },
        },
      },
      '/v1/predict': {
        post: {
          summary: 'Google Path Foundation serving API format: embeddings of given patches',
          requestBody: { required: true, content: json('PredictRequest') },
          responses: {
            200: { description: 'One prediction per instance, in order', content: json('PredictResponse') },
            400: { description: 'Malformed request (Path Foundation error body)' },
            413: { description: 'TOO_MANY_PATCHES_ERROR' },
          },
        },
      },
      '/healthz': {
        get: {
          summary: 'Liveness',
          security: [],
          responses: { 200: { description: 'Alive', content: json('Health') } },
        },
      },
      '/readyz': {
        get: {
          summary: 'Readiness: Redis reachable and a worker model known',
          security: [],
          responses: {
            200: { description: 'Ready', content: json('Health') },
            503: { description: 'Not ready', content: json('Health') },
          },
        },
      },
      '/metrics': {
        get: {
          summary: 'Prometheus metrics',
          security: [],
          responses: { 200: { description: 'Prometheus text format' } },
        },
      },
    },
  };
}
