/**
 * /v1/jobs: submit slides (one job per slide series; a study or search source expands into its
 * slide series, source-expansion.ts), read a job's state, stream its results (JSON, HDF5,
 * Parquet, SR: `/result?format=`),
 * cancel it, list recent jobs. Every source and the SR destination are checked against the store
 * allow-list here, before anything is queued, so an unapproved store is refused with
 * UNAPPROVED_DICOM_STORE without a single request leaving the service.
 */

import { pipeline } from 'node:stream/promises';
import { Router } from 'express';
import type { Config } from '../config.js';
import { type AllowedStore, formatSeriesUrl } from '../dicomweb/index.js';
import { PathembedError } from '../errors.js';
import type { JobSubmitter } from '../queue/job-submitter.js';
import type { QueueContext } from '../queue/queue-context.js';
import type { OutputKind } from '../queue/queue-jobs.js';
import { resultKeys } from '../queue/result-store.js';
import { jobPaths, jobStatus } from './job-view.js';
import {
  createJobsRequestSchema,
  listJobsQuerySchema,
  type RESULT_FORMATS,
  resultQuerySchema,
} from './schemas.js';
import { expandSources, expansionClient, expansionLimits } from './source-expansion.js';
import { prepareSubmission } from './submission.js';
import { parseOrThrow } from './validation.js';

export interface JobsRouteDeps {
  readonly config: Config;
  readonly ctx: QueueContext;
  readonly submitter: JobSubmitter;
  readonly allowList: readonly AllowedStore[];
}

export function jobsRouter(deps: JobsRouteDeps): Router {
  const { config, ctx, submitter, allowList } = deps;
  const router = Router();

  router.post('/jobs', async (req, res) => {
    const body = parseOrThrow(createJobsRequestSchema, req.body, 'request body');
    const prepared = prepareSubmission(body, { config, ctx, allowList }, res.locals.keyId as string);
    const client = expansionClient(config, body.bearerToken);
    const { slides, skipped } = await expandSources(prepared.sources, client, expansionLimits(config));
    const modelSha256 = await submitter.modelSha256();
    const submitted = await submitter.submitMany(
      slides.map((ref) => prepared.request(ref)),
      modelSha256,
    );
    const jobs = submitted.map((s, i) => ({
      id: s.jobId,
      state: s.state,
      statusUrl: jobPaths.status(s.jobId),
      source: formatSeriesUrl(slides[i]!),
      existing: s.existing,
    }));
    if (jobs.length === 1) res.location(jobs[0]!.statusUrl);
    res.status(202).json({ jobs, skipped });
  });

  router.get('/jobs', async (req, res) => {
    const query = parseOrThrow(listJobsQuerySchema, req.query, 'query');
    const page = await ctx.records.list({
      keyId: res.locals.keyId,
      offset: query.offset,
      limit: query.limit,
    });
    const nextOffset = query.offset + page.jobs.length;
    res.json({
      jobs: page.jobs.map((r) => jobStatus(r)),
      total: page.total,
      limit: query.limit,
      offset: query.offset,
      next: nextOffset < page.total ? `/v1/jobs?limit=${query.limit}&offset=${nextOffset}` : null,
    });
  });

  router.get('/jobs/:id', async (req, res) => {
    res.json(jobStatus(await submitter.get(req.params.id, res.locals.keyId as string)));
  });

  router.delete('/jobs/:id', async (req, res) => {
    res.json(jobStatus(await submitter.cancel(req.params.id, res.locals.keyId as string)));
  });

  router.get('/jobs/:id/result', async (req, res) => {
    const { format } = parseOrThrow(resultQuerySchema, req.query, 'query');
    const record = await submitter.get(req.params.id, res.locals.keyId as string);
    const served = RESULT_FILES[format];
    const written =
      format === 'json'
        ? record.result?.json
        : format === 'sr'
          ? !!record.result?.sr
          : record.result?.[format];
    if (record.state !== 'completed' || !written) {
      const notAsked = !record.outputs.includes(served.output);
      throw new PathembedError(
        'NOT_FOUND',
        `Job ${record.id} has no ${served.name} result (state ${record.state}${notAsked ? `; the ${served.output} output was not asked for: submit the job with "outputs": [..., "${served.output}"]` : ''})`,
        { jobId: record.id, state: record.state, format },
      );
    }
    await streamValue(ctx, served.key(record.id), served.contentType, res);
  });

  router.get('/jobs/:id/sr', async (req, res) => {
    const record = await submitter.get(req.params.id, res.locals.keyId as string);
    if (record.state !== 'completed' || !record.result?.sr) {
      throw new PathembedError('NOT_FOUND', `Job ${record.id} has no DICOM SR (state ${record.state})`, {
        jobId: record.id,
        state: record.state,
      });
    }
    await streamValue(ctx, resultKeys.sr(record.id), 'application/dicom', res);
  });

  router.get('/jobs/:id/ann', async (req, res) => {
    const record = await submitter.get(req.params.id, res.locals.keyId as string);
    if (record.state !== 'completed' || !record.result?.ann) {
      throw new PathembedError(
        'NOT_FOUND',
        `Job ${record.id} has no DICOM bulk annotations (state ${record.state}${record.outputs.includes('dicom-ann') ? '' : '; the dicom-ann output was not asked for'})`,
        { jobId: record.id, state: record.state },
      );
    }
    await streamValue(ctx, resultKeys.ann(record.id), 'application/dicom', res);
  });

  return router;
}

/** What each `format` of GET /v1/jobs/:id/result serves: its output kind, store key, content type. */
const RESULT_FILES: Record<
  (typeof RESULT_FORMATS)[number],
  { name: string; output: OutputKind; key: (id: string) => string; contentType: string }
> = {
  json: { name: 'JSON', output: 'json', key: resultKeys.json, contentType: 'application/json' },
  hdf5: { name: 'HDF5', output: 'hdf5', key: resultKeys.hdf5, contentType: 'application/x-hdf5' },
  parquet: {
    name: 'Parquet',
    output: 'parquet',
    key: resultKeys.parquet,
    contentType: 'application/vnd.apache.parquet',
  },
  sr: { name: 'DICOM SR', output: 'dicom-sr', key: resultKeys.sr, contentType: 'application/dicom' },
};

/** Streams a stored value: results can be hundreds of megabytes, never held in memory. */
async function streamValue(
  ctx: QueueContext,
  key: string,
  contentType: string,
  res: import('express').Response,
): Promise<void> {
  const size = await ctx.results.size(key);
  const stream = await ctx.results.openRead(key);
  if (size === undefined || !stream) {
    throw new PathembedError(
      'NOT_FOUND',
      `The stored result ${key} is missing from ${ctx.results.description}`,
    );
  }
  res.status(200).type(contentType).set('Content-Length', String(size));
  await pipeline(stream, res);
}
