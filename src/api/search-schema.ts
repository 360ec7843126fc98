/**
 * POST /v1/search request and response (zod): routes parse with them and /openapi.json is
 * generated from them. The response shape is a contract the web UI codes against; fields may be
 * added, none renamed or removed.
 */
import { z } from 'zod';

/** The ceiling of PATHEMBED_SIMILARITY_MAX_K; the configured value is checked by the route. */
export const SEARCH_K_CEILING = 10_000;
export const DEFAULT_SEARCH_K = 20;
/** Longest embedding accepted (the model's width, 384, is checked against the index). */
const MAX_EMBEDDING_VALUES = 4096;

const id = z.string().min(1).max(128);
const px = z.number().int().nonnegative().describe('Level-0 pixels (column x, row y) from the slide origin.');

export const searchRequestSchema = z
  .strictObject({
    jobId: id.optional().describe('Search the patches of this completed job.'),
    batchId: id.optional().describe('Search the patches of every completed job of this batch.'),
    patch: z
      .strictObject({
        jobId: id.optional().describe('The job the point is in; required with batchId.'),
        x: px,
        y: px,
      })
      .optional()
      .describe('The query is the patch containing this level-0 point.'),
    embedding: z
      .array(z.number().refine(Number.isFinite, 'a finite number'))
      .min(1)
      .max(MAX_EMBEDDING_VALUES)
      .optional()
      .describe("The query is this embedding (the model's width: 384 for Path Foundation)."),
    k: z
      .number()
      .int()
      .min(1)
      .max(SEARCH_K_CEILING)
      .default(DEFAULT_SEARCH_K)
      .describe(
        'Neighbours to answer, at most PATHEMBED_SIMILARITY_MAX_K (default 100); the query patch counts.',
      ),
  })
  .superRefine((body, ctx) => {
    if ((body.jobId === undefined) === (body.batchId === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['jobId'], message: 'give exactly one of jobId and batchId' });
    }
    if ((body.patch === undefined) === (body.embedding === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['patch'], message: 'give exactly one of patch and embedding' });
    }
    if (body.patch && body.batchId !== undefined && body.patch.jobId === undefined) {
      ctx.addIssue({ code: 'custom', path: ['patch', 'jobId'], message: 'required with batchId' });
    }
    if (body.patch?.jobId !== undefined && body.jobId !== undefined && body.patch.jobId !== body.jobId) {
      ctx.addIssue({ code: 'custom', path: ['patch', 'jobId'], message: 'must equal jobId' });
    }
  });

export type SearchRequestBody = z.output<typeof searchRequestSchema>;

const level0Patch = {
  patchIndex: z
    .number()
    .int()
    .describe("Position in the job's patch list (the JSON result's patches[].index)."),
  x: z.number().int().describe('Level-0 column of the top-left corner.'),
  y: z.number().int().describe('Level-0 row of the top-left corner.'),
  width: z.number().int().describe('Level-0 pixels.'),
  height: z.number().int().describe('Level-0 pixels.'),
};

const slideSchema = z
  .object({
    kind: z.enum(['dicomweb', 'local']),
    baseUrl: z.string().optional(),
    folder: z.string().optional(),
    studyInstanceUid: z.string().optional(),
    seriesInstanceUid: z.string().optional(),
  })
  .describe("The slide: the job result's source block, without its instance list.");

export const searchResponseSchema = z.object({
  index: z.object({
    kind: z.enum(['exact', 'hnsw']).describe('hnsw when any searched job was searched by its HNSW graph.'),
    size: z.number().int().describe('Patches searched.'),
    jobs: z.number().int().describe('Jobs searched (the completed jobs of a batch).'),
  }),
  query: z.object({
    jobId: z.string().optional(),
    batchId: z.string().optional(),
    k: z.number().int(),
    patch: z
      .object({ jobId: z.string(), ...level0Patch })
      .optional()
      .describe('The patch found at the query point.'),
    embedding: z.object({ dimension: z.number().int() }).optional(),
  }),
  neighbours: z
    .array(
      z.object({
        jobId: z.string(),
        ...level0Patch,
        distance: z.number().describe('Cosine distance 1 − cos, 0..2; the query patch itself is at ~0.'),
        source: slideSchema,
      }),
    )
    .describe('Nearest first.'),
});
