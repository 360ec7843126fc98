/**
 * What POST /v1/jobs and POST /v1/batches share before anything is queued: the request's options
 * resolved (a magnification becomes its spacing), the SR destination and every source validated
 * against the allow-list, and a factory for one slide's submit request. A request is accepted
 * whole or not at all, so every check here runs before the first job exists.
 */
import type { Config } from '../config.js';
import {
  type AllowedStore,
  assertApprovedStore,
  normaliseBaseUrl,
  type SeriesReference,
} from '../dicomweb/index.js';
import { PathembedError } from '../errors.js';
import type { SubmitRequest } from '../queue/job-submitter.js';
import type { QueueContext } from '../queue/queue-context.js';
import { magnificationSpacingUm } from '../wsi/magnification.js';
import type { CreateJobsRequest } from './schemas.js';
import { atField, type ParsedSource, parseSource, type SourceInput } from './source-expansion.js';

export interface PreparedSubmission {
  readonly sources: ParsedSource[];
  /** Options as jobs take them (magnification already turned into its spacing). */
  readonly options: SubmitRequest['options'];
  readonly srDestination: string | undefined;
  /** The submit request of one slide series. */
  request(ref: SeriesReference): SubmitRequest;
}

export function prepareSubmission(
  body: CreateJobsRequest,
  deps: { readonly config: Config; readonly ctx: QueueContext; readonly allowList: readonly AllowedStore[] },
  keyId: string,
): PreparedSubmission {
  const { config, ctx, allowList } = deps;
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
  const sources = body.sources.map((input, i) => parseSource(input as SourceInput, i, allowList, config));
  const destination = wantsSr ? (srDestination ?? config.PATHEMBED_SR_DESTINATION) : undefined;
  return {
    sources,
    options,
    srDestination: destination,
    request: (ref) => ({
      source: { kind: 'dicomweb', ...ref },
      options,
      outputs: body.outputs,
      srDestination: destination,
      token: body.bearerToken,
      priority: body.priority,
      recompute: body.recompute,
      keyId,
    }),
  };
}
