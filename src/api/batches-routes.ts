/**
 * /v1/batches: a cohort in one request. POST takes any mix of series, instance, study and search
 * sources with the job options of POST /v1/jobs, expands studies and searches into slide series
 * (source-expansion.ts), submits one job per slide under one per-key limit check and answers with
 * the batch; GET reports progress, DELETE cancels the unfinished jobs, /jobs pages through them and
 * /manifest lists every slide with its result files and their sha256, as JSON or CSV.
 */
import { Router } from 'express';
import type { Config } from '../config.js';
import type { AllowedStore } from '../dicomweb/index.js';
import { PathembedError } from '../errors.js';
import { BATCH_ID_PATTERN, batchIdFor } from '../queue/batch-record.js';
import type { BatchProgress, BatchService, ManifestRow } from '../queue/batch-service.js';
import type { JobSubmitter } from '../queue/job-submitter.js';
import type { QueueContext } from '../queue/queue-context.js';
import { jobPaths, jobStatus } from './job-view.js';
import { batchJobsQuerySchema, createBatchRequestSchema, manifestQuerySchema } from './schemas.js';
import { canonicalSource, expandSources, expansionClient, expansionLimits } from './source-expansion.js';
import { prepareSubmission } from './submission.js';
import { parseOrThrow } from './validation.js';

export interface BatchesRouteDeps {
  readonly config: Config;
  readonly ctx: QueueContext;
  readonly submitter: JobSubmitter;
  readonly batches: BatchService;
  readonly allowList: readonly AllowedStore[];
}

export const batchPaths = {
  status: (id: string) => `/v1/batches/${id}`,
  jobs: (id: string) => `/v1/batches/${id}/jobs`,
  manifest: (id: string) => `/v1/batches/${id}/manifest`,
};

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
const MS_PER_S = 1000;

function batchView(p: BatchProgress) {
  const r = p.record;
  return {
    id: r.id,
    state: p.state,
    slides: p.slides,
    counts: p.counts,
    progress: {
      finished: p.finished,
      patchesDone: p.patchesDone,
      patchesPlanned: p.patchesPlanned,
      slidesPerMinute: p.slidesPerMinute,
      etaSeconds: p.etaMs === null ? null : Math.round(p.etaMs / MS_PER_S),
    },
    failed: p.failed,
    skipped: r.skipped,
    createdAt: new Date(r.createdAt).toISOString(),
    runStartedAt: new Date(r.runStartedAt).toISOString(),
    runs: r.runs,
    cancelledAt: iso(r.cancelledAt),
    links: {
      self: batchPaths.status(r.id),
      jobs: batchPaths.jobs(r.id),
      manifest: batchPaths.manifest(r.id),
    },
  };
}

function checkId(id: string): string {
  if (!BATCH_ID_PATTERN.test(id)) throw new PathembedError('NOT_FOUND', `No batch ${id}`, { batchId: id });
  return id;
}

/** Columns of the CSV manifest, one row per slide; a completed slide's files fill the file columns. */
export const MANIFEST_CSV_COLUMNS = [
  'job_id',
  'state',
  'study_uid',
  'series_uid',
  'series_url',
  'patches',
  'error_code',
  'json_url',
  'json_bytes',
  'json_sha256',
  'sr_url',
  'sr_bytes',
  'sr_sha256',
  'ann_url',
  'ann_bytes',
  'ann_sha256',
  'hdf5_url',
  'hdf5_bytes',
  'hdf5_sha256',
  'parquet_url',
  'parquet_bytes',
  'parquet_sha256',
] as const;

/** The outputs whose files a manifest row lists, in column order (url, bytes, sha256 each). */
const MANIFEST_OUTPUTS = ['json', 'dicom-sr', 'dicom-ann', 'hdf5', 'parquet'] as const;

/** RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled. */
function csvField(value: string | number | null): string {
  if (value === null) return '';
  const s = String(value);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function fileUrl(output: string, jobId: string): string {
  switch (output) {
    case 'json':
      return jobPaths.result(jobId);
    case 'dicom-sr':
      return jobPaths.sr(jobId);
    case 'dicom-ann':
      return jobPaths.ann(jobId);
    case 'hdf5':
    case 'parquet':
      return jobPaths.file(jobId, output);
    default:
      throw new Error(`No URL for the output '${output}'`);
  }
}

export function manifestCsv(rows: readonly ManifestRow[]): string {
  const lines = [MANIFEST_CSV_COLUMNS.join(',')];
  for (const r of rows) {
    const fileColumns = MANIFEST_OUTPUTS.flatMap((output) => {
      const f = r.files.find((file) => file.output === output);
      return f ? [fileUrl(output, r.jobId), f.bytes, f.sha256] : [null, null, null];
    });
    lines.push(
      [r.jobId, r.state, r.studyUid, r.seriesUid, r.seriesUrl, r.patches, r.errorCode, ...fileColumns]
        .map(csvField)
        .join(','),
    );
  }
  return `${lines.join('\r\n')}\r\n`;
}

export function batchesRouter(deps: BatchesRouteDeps): Router {
  const { config, ctx, submitter, batches, allowList } = deps;
  const router = Router();

  router.post('/batches', async (req, res) => {
    const body = parseOrThrow(createBatchRequestSchema, req.body, 'request body');
    const keyId = res.locals.keyId as string;
    const prepared = prepareSubmission(body, { config, ctx, allowList }, keyId);
    // Same content and key, same batch: the options as jobs resolve them, sources in any order.
    const batchId = batchIdFor(
      {
        sources: prepared.sources
          .map(canonicalSource)
          .map((s) => JSON.stringify(s))
          .sort(),
        options: prepared.options,
        outputs: [...body.outputs].sort(),
        srDestination: prepared.srDestination,
        // Only when set, so the ids of batches without it stay as they were.
        ...(prepared.annEmbedding ? { annEmbedding: true } : {}),
      },
      keyId,
    );
    const abort = new AbortController();
    // A client that hangs up stops the expansion's QIDO requests; its retry starts over, safely.
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    const { slides, skipped } = await expandSources(
      prepared.sources,
      expansionClient(config, body.bearerToken),
      expansionLimits(config),
      abort.signal,
    );
    const modelSha256 = await submitter.modelSha256();
    const { created, reused } = await batches.submit(
      {
        id: batchId,
        keyId,
        sources: prepared.sources.map(canonicalSource),
        skipped,
        slides: slides.map((ref) => prepared.request(ref)),
      },
      modelSha256,
    );
    const progress = await batches.progress(batchId, keyId);
    res.location(batchPaths.status(batchId));
    res.status(202).json({ ...batchView(progress), existing: !created, reusedJobs: reused });
  });

  router.get('/batches/:id', async (req, res) => {
    res.json(batchView(await batches.progress(checkId(req.params.id), res.locals.keyId as string)));
  });

  router.delete('/batches/:id', async (req, res) => {
    const id = checkId(req.params.id);
    const keyId = res.locals.keyId as string;
    const cancelled = await batches.cancel(id, keyId);
    res.json({ ...batchView(await batches.progress(id, keyId)), cancelledJobs: cancelled });
  });

  router.get('/batches/:id/jobs', async (req, res) => {
    const id = checkId(req.params.id);
    const query = parseOrThrow(batchJobsQuerySchema, req.query, 'query');
    const page = await batches.page(id, res.locals.keyId as string, query.cursor, query.limit);
    const next = query.cursor + page.jobs.length;
    res.json({
      jobs: page.jobs.map(({ id: jobId, record }) =>
        record
          ? jobStatus(record)
          : { id: jobId, state: 'missing', error: { code: 'NOT_FOUND', message: 'The job record expired' } },
      ),
      total: page.total,
      cursor: query.cursor,
      next: next < page.total ? `${batchPaths.jobs(id)}?cursor=${next}&limit=${query.limit}` : null,
    });
  });

  router.get('/batches/:id/manifest', async (req, res) => {
    const id = checkId(req.params.id);
    const query = parseOrThrow(manifestQuerySchema, req.query, 'query');
    const rows = await batches.manifest(id, res.locals.keyId as string);
    if (query.format === 'csv') {
      res
        .status(200)
        .type('text/csv; charset=utf-8')
        .set('Content-Disposition', `attachment; filename="${id}-manifest.csv"`)
        .send(manifestCsv(rows));
      return;
    }
    res.json({
      batchId: id,
      generatedAt: new Date().toISOString(),
      slides: rows.map((r) => ({
        ...r,
        files: r.files.map((f) => ({ ...f, url: fileUrl(f.output, r.jobId) })),
      })),
    });
  });

  return router;
}
