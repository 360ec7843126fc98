/**
 * What happens when a job fails, as data: transient errors (the registry's `retryable`: store
 * overload, timeouts, inference hiccups) are retried with exponential backoff; permanent ones (bad
 * input, a slide we cannot read) fail at once through BullMQ's UnrecoverableError with their code;
 * a store answering 429 pauses the whole queue instead (BullMQ's rate limiter), since retrying
 * every job against an overloaded store would only make the storm worse.
 */

import type { JobsOptions } from 'bullmq';
import { UnrecoverableError } from 'bullmq';
import type { PathembedError } from '../errors.js';

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

/** Separates code and message in a failed job's reason, so the record can show both. */
const REASON_SEPARATOR = ': ';

/** The error BullMQ should see: UnrecoverableError for permanent errors, the error itself otherwise. */
export function forBullmq(err: PathembedError): Error {
  if (err.retryable) return err;
  return new UnrecoverableError(`${err.code}${REASON_SEPARATOR}${err.message}`);
}

/** True when this failure ends the job: permanent, or the last attempt. */
export function isFinalFailure(
  err: PathembedError,
  attemptsMade: number,
  attempts: number | undefined,
): boolean {
  return !err.retryable || attemptsMade + 1 >= (attempts ?? 1);
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
