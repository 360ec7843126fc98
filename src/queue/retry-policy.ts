/**
 * What happens when a job fails, as data: transient errors (the registry's `retryable`: store
 * overload, timeouts, inference hiccups) are retried with exponential backoff; permanent ones (bad
 * input, a slide we cannot read) fail at once through BullMQ's UnrecoverableError with their code;
 * a store answering 429 is paused instead (store-pause.ts: only that store's jobs wait), since retrying
 * every job against an overloaded store would only make the storm worse.
 */

import type { JobsOptions } from 'bullmq';
import { UnrecoverableError } from 'bullmq';
import { ERROR_CODES, type ErrorCode, type PathembedError } from '../errors.js';

export interface RetryOptions {
  /** Attempts of one BullMQ job, the first included. Default 5. */
  readonly attempts?: number;
  /** First backoff delay in ms; doubles each attempt. Default 2000. */
  readonly backoffMs?: number;
}

export const DEFAULT_ATTEMPTS = 5;
export const DEFAULT_BACKOFF_MS = 2000;

export function retryOptions(options: RetryOptions = {}): Pick<JobsOptions, 'attempts' | 'backoff'> {
  return {
    attempts: options.attempts ?? DEFAULT_ATTEMPTS,
    backoff: { type: 'exponential', delay: options.backoffMs ?? DEFAULT_BACKOFF_MS },
  };
}

/** The job retry options the config asks for (PATHEMBED_JOB_ATTEMPTS, PATHEMBED_JOB_BACKOFF_MS). */
export function jobRetryOptions(config: {
  readonly PATHEMBED_JOB_ATTEMPTS: number;
  readonly PATHEMBED_JOB_BACKOFF_MS: number;
}): Pick<JobsOptions, 'attempts' | 'backoff'> {
  return retryOptions({
    attempts: config.PATHEMBED_JOB_ATTEMPTS,
    backoffMs: config.PATHEMBED_JOB_BACKOFF_MS,
  });
}

/** Separates code and message in a failed job's reason, so the record can show both. */
const REASON_SEPARATOR = ': ';

/** Store errors whose request-level retries (PATHEMBED_RETRY_MAX_ATTEMPTS) already ran. */
const STORE_RETRIED_CODES: ReadonlySet<string> = new Set(['DICOMWEB_UNAVAILABLE', 'DICOMWEB_TIMEOUT']);

/**
 * Whether a job attempt may be retried. A store error that has used up its request's retry
 * budget is final: retrying the job would multiply that budget by the job's attempts (5 x 5
 * requests to a store that always fails). Job attempts are for what request retries cannot
 * absorb: a result write, an inference hiccup, a lost lock.
 */
export function retryableAtJobLevel(err: PathembedError): boolean {
  if (!err.retryable) return false;
  const attempts = (err.details as Record<string, unknown>).attempts;
  return !(STORE_RETRIED_CODES.has(err.code) && typeof attempts === 'number');
}

/** The error BullMQ should see: UnrecoverableError for permanent errors, the error itself otherwise. */
export function forBullmq(err: PathembedError): Error {
  if (retryableAtJobLevel(err)) return err;
  return new UnrecoverableError(`${err.code}${REASON_SEPARATOR}${err.message}`);
}

/** Code and message of a failed BullMQ job's reason ("CODE: message", or a bare message: INTERNAL). */
export function failureFromReason(reason: string): { code: ErrorCode; message: string } {
  const at = reason.indexOf(REASON_SEPARATOR);
  const head = at > 0 ? reason.slice(0, at) : '';
  if (head in ERROR_CODES) {
    return { code: head as ErrorCode, message: reason.slice(at + REASON_SEPARATOR.length) };
  }
  return { code: 'INTERNAL', message: reason };
}

/** True when this failure ends the job: permanent, or the last attempt. */
export function isFinalFailure(
  err: PathembedError,
  attemptsMade: number,
  attempts: number | undefined,
): boolean {
  return !retryableAtJobLevel(err) || attemptsMade + 1 >= (attempts ?? 1);
}

const HTTP_TOO_MANY_REQUESTS = 429;

/**
 * True when a store error was caused by HTTP 429 (too many requests). The DICOMweb client reports
 * the last status it saw in `details.status` (or `lastStatus`), and may set `rateLimited`.
 */
export function isRateLimitError(err: PathembedError): boolean {
  if (err.code !== 'DICOMWEB_UNAVAILABLE') return false;
  const d = err.details as Record<string, unknown>;
  return (
    d.rateLimited === true || d.status === HTTP_TOO_MANY_REQUESTS || d.lastStatus === HTTP_TOO_MANY_REQUESTS
  );
}

/** Retry-After the store asked for, in ms, when the error carries it. */
export function retryAfterMs(err: PathembedError): number | undefined {
  const d = err.details as Record<string, unknown>;
  const v = d.retryAfterMs;
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined;
}
