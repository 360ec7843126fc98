/**
 * /v1/jobs: submit slides (one job per source), read a job's state, stream its results (JSON,
 * HDF5, Parquet, SR: `/result?format=`),
 * cancel it, list recent jobs. Every source and the SR destination are checked against the store
 * allow-list here, before anything is queued, so an unapproved store is refused with
 * UNAPPROVED_DICOM_STORE without a single request leaving the service.
 */

import { pipeline } from 'node:stream/promises';
import { Router } from 'express';
import type { Config } from '../config.js';
import {
  type AllowedStore,
  assertApprovedStore,
  normaliseBaseUrl,
  parseSeriesReference,
} from '../dicomweb/index.js';
import { isPathembedError, PathembedError } from '../errors.js';
import type { JobSubmitter } from '../queue/job-submitter.js';
import type { QueueContext } from '../queue/queue-context.js';
import type { DicomWebSourceSpec, OutputKind } from '../queue/queue-jobs.js';
import { resultKeys } from '../queue/result-store.js';
import { magnificationSpacingUm } from '../wsi/magnification.js';
import { jobPaths, jobStatus } from './job-view.js';
import {
  createJobsRequestSchema,
  listJobsQuerySchema,
  type RESULT_FORMATS,
  resultQuerySchema,
} from './schemas.js';
import { parseOrThrow } from './validation.js';

export interface JobsRouteDeps {
  readonly config: Config;
  readonly ctx: QueueContext;
  readonly submitter: JobSubmitter;
  readonly allowList: readonly AllowedStore[];
}

/** Prefixes an input error with the field it came from, so the client sees which source is wrong. */
function atField(err: unknown, field: string): unknown {
  if (!isPathembedError(err)) return err;
  return new PathembedError(err.code, `${field}: ${err.message}`, { ...err.details, field }, { cause: err });
}

export function jobsRouter(deps: JobsRouteDeps): Router {
  const { config, ctx, submitter, allowList } = deps;
  const router = Router();

  router.post('/jobs', async (req, res) => {
    const body = parseOrThrow(createJobsRequestSchema, req.body, 'request body');
    if (body.bearerToken !== undefined) ctx.vault.assertEnabled('bearerToken');
    const wantsSr = body.outputs.includes('dicom-sr');
    let srDestination: string | undefined;
    if (body.srDestination !== undefined) {
      if (!wantsSr) {
        throw new PathembedError(
          'INVALID_ARGUMENT',
          'srDestination: given, but outputs does not include dicom-sr',
          {
            issues: [{ path: 'srDestination', reason: 'needs the dicom-sr output' }],
          },
        );
      }
      try {
        srDestination = normaliseBaseUrl(body.srDestination);
        assertApprovedStore(srDestination, allowList, 'SR destination store');
      } catch (err) {
        throw atField(err, 'srDestination');
      }
    }
    // A magnification is its nominal spacing: one level-choice rule, one job key for both spellings.
    const { magnification, ...rest } = body.options;
    const options = magnification ? { ...rest, pixelSpacingUm: magnificationSpacingUm(magnification) } : rest;
    const explicit = body.options.patches?.length ?? 0;
    if (explicit > config.PATHEMBED_MAX_PATCHES_PER_JOB) {
      throw new PathembedError(
        'PAYLOAD_TOO_LARGE',
        `options.patches: ${explicit} patches; a job may have at most ${config.PATHEMBED_MAX_PATCHES_PER_JOB} (PATHEMBED_MAX_PATCHES_PER_JOB)`,
        { field: 'options.patches', count: explicit, limit: config.PATHEMBED_MAX_PATCHES_PER_JOB },
      );
    }
    // Every source is validated before any job is queued: a request is accepted whole or not at all.
    const sources: DicomWebSourceSpec[] = body.sources.map((input, i) => {
      try {
        const ref = parseSeriesReference(input);
        assertApprovedStore(ref.baseUrl, allowList);
        return { kind: 'dicomweb', ...ref };
      } catch (err) {
        throw atField(err, `sources.${i}`);
      }
    });
    const modelSha256 = await submitter.modelSha256();
    const jobs = [];
    for (const source of sources) {
      const submitted = await submitter.submit(
        {
          source,
          options,
          outputs: body.outputs,
          srDestination: wantsSr ? (srDestination ?? config.PATHEMBED_SR_DESTINATION) : undefined,
          token: body.bearerToken,
          priority: body.priority,
          recompute: body.recompute,
          keyId: res.locals.keyId as string,
        },
        modelSha256,
      );
      jobs.push({
        id: submitted.jobId,
        state: submitted.state,
        statusUrl: jobPaths.status(submitted.jobId),
        source: `${source.baseUrl}/studies/${source.studyUid}/series/${source.seriesUid}`,
        existing: submitted.existing,
      });
    }
    if (jobs.length === 1) res.location(jobs[0]!.statusUrl);
    res.status(202).json({ jobs });
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
