/**
 * Job ids derived from what a job computes: the source, the options with their defaults filled in,
 * the outputs, the model's sha256 and the submitting API key. The same request gives the same id,
 * so a repeat returns the existing job instead of embedding the slide twice; a new model or other
 * options give a new id. The key is part of it so one tenant's job (perhaps run with a token the
 * other lacks) is never handed to another.
 */

import { createHash, randomBytes } from 'node:crypto';
import { canonicalJson } from '../canonical-json.js';
import type { Config } from '../config.js';
import { pipelineOptions } from '../domain-options.js';
import { type EmbedOptions, resolveOptions } from '../pipeline/index.js';
import type { DicomWebSourceSpec, OutputKind } from './queue-jobs.js';

/** Hex digits of sha256 kept in an id: 128 bits, far beyond any collision risk. */
const ID_HEX_DIGITS = 32;
const ID_PREFIX = 'j';
const FINGERPRINT_VERSION = 1;
const NONCE_BYTES = 8;

/**
 * The options a job computes with, defaults filled in once by the pipeline's `resolveOptions`, so
 * "default" and "0.5 given" are one job. Explicit patches make stride and minimum tissue moot, so
 * they are left out of such a job's identity.
 */
export function resolvedOptions(options: EmbedOptions, config: Config): EmbedOptions {
  const resolved = resolveOptions(options, pipelineOptions(config).defaults);
  return {
    pixelSpacingUm: resolved.pixelSpacingUm,
    ...(resolved.patches
      ? { patches: resolved.patches, requirePatchesInside: resolved.requirePatchesInside }
      : { stridePx: resolved.stridePx, minTissue: resolved.minTissue }),
    ...(resolved.iccProfile ? { iccProfile: resolved.iccProfile } : {}),
    // Always named, so the worker applies the API's default rather than its own.
    frameErrors: resolved.frameErrors,
  };
}

export interface FingerprintInput {
  readonly source: DicomWebSourceSpec;
  readonly options: EmbedOptions;
  readonly outputs: readonly OutputKind[];
  readonly srDestination?: string;
  readonly modelSha256: string;
  readonly keyId: string;
}

export function requestFingerprint(input: FingerprintInput): string {
  const canonical = canonicalJson({
    v: FINGERPRINT_VERSION,
    source: {
      baseUrl: input.source.baseUrl.replace(/\/+$/, ''),
      studyUid: input.source.studyUid,
      seriesUid: input.source.seriesUid,
      instanceUids: input.source.instanceUids ? [...input.source.instanceUids].sort() : undefined,
    },
    options: withoutDefaultFrameErrors(input.options),
    outputs: [...input.outputs].sort(),
    srDestination: input.srDestination?.replace(/\/+$/, ''),
    model: input.modelSha256,
    key: input.keyId,
  });
  return createHash('sha256').update(canonical).digest('hex');
}

/**
 * `fail` was the only behaviour before the option existed: leaving it out keeps the ids of such
 * jobs what they were, so a repeat after an upgrade still finds its finished job.
 */
function withoutDefaultFrameErrors(options: EmbedOptions): EmbedOptions {
  if (options.frameErrors !== 'fail') return options;
  const { frameErrors: _, ...rest } = options;
  return rest;
}

/** The job id of a fingerprint; `recompute` adds a nonce so a fresh job gets a fresh id. */
export function jobIdFor(fingerprint: string, recompute = false): string {
  const material = recompute ? `${fingerprint}:${randomBytes(NONCE_BYTES).toString('hex')}` : fingerprint;
  return ID_PREFIX + createHash('sha256').update(material).digest('hex').slice(0, ID_HEX_DIGITS);
}

export const JOB_ID_PATTERN = /^j[0-9a-f]{32}$/;
