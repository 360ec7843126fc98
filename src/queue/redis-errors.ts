/**
 * Recognising "Redis is not answering" among ioredis's errors, so that callers on request paths
 * can answer SERVICE_UNAVAILABLE (retry later) instead of INTERNAL. ioredis raises plain Errors;
 * its messages for these cases have been stable across major versions.
 */
import { PathembedError } from '../errors.js';

const UNAVAILABLE_MESSAGES = [
  // enableOfflineQueue false while disconnected or reconnecting
  "Stream isn't writeable",
  // commandTimeout
  'Command timed out',
  'Connection is closed',
  'Reached the max retries per request limit',
  'connect ECONNREFUSED',
  'read ECONNRESET',
];

export function isRedisUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'MaxRetriesPerRequestError') return true;
  return UNAVAILABLE_MESSAGES.some((m) => err.message.includes(m));
}

export function redisUnavailableError(err: unknown): PathembedError {
  return new PathembedError(
    'SERVICE_UNAVAILABLE',
    `Redis is unreachable, so the service cannot answer this now; retry later (${(err as Error).message})`,
    { redis: false },
    { cause: err },
  );
}
