/**
 * Cancellation: a job's AbortSignal stops it, and whatever the abort interrupted (a fetch, a
 * decode, a batch) surfaces as one error, JOB_CANCELLED, rather than as an AbortError or a
 * network error from deep in the stack.
 */
import { isPathembedError, PathembedError } from '../errors.js';

export function cancelledError(reason?: unknown): PathembedError {
  if (isPathembedError(reason, 'JOB_CANCELLED')) return reason;
  return new PathembedError('JOB_CANCELLED', 'The job was cancelled');
}

/** Throws JOB_CANCELLED when the signal has aborted. */
export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw cancelledError(signal.reason);
}

/** Runs `work`; any failure once the signal has aborted becomes JOB_CANCELLED. */
export async function cancelledIfAborted<T>(
  signal: AbortSignal | undefined,
  work: () => Promise<T>,
): Promise<T> {
  throwIfCancelled(signal);
  try {
    return await work();
  } catch (err) {
    if (signal?.aborted) throw cancelledError(signal.reason);
    throw err;
  }
}
