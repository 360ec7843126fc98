/**
 * The one error handler of the API: every error becomes `{ error: { code, message, details } }`
 * with the HTTP status from the error registry. Express's own errors (a body over the limit, bad
 * JSON) are translated to registry codes first; anything unexpected is INTERNAL, logged with its
 * stack, and answered without internals.
 */
import type { ErrorRequestHandler } from 'express';
import { ERROR_CODES, isPathembedError, PathembedError } from '../errors.js';
import type { Logger } from '../log.js';
import { isRedisUnavailable, redisUnavailableError } from '../queue/redis-errors.js';
import type { ApiMetrics } from './api-metrics.js';

/** Shape of the errors body-parser raises (http-errors). */
interface HttpLikeError {
  status?: number;
  statusCode?: number;
  type?: string;
  expose?: boolean;
  message: string;
}

function fromExpress(err: HttpLikeError): PathembedError | undefined {
  switch (err.type) {
    case 'entity.too.large':
      return new PathembedError(
        'PAYLOAD_TOO_LARGE',
        `The request body is larger than the limit: ${err.message}`,
      );
    case 'entity.parse.failed':
      return new PathembedError('INVALID_ARGUMENT', `The request body is not valid JSON: ${err.message}`, {
        issues: [{ path: '', reason: 'invalid JSON' }],
      });
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new PathembedError('INVALID_ARGUMENT', err.message);
    default:
      return undefined;
  }
}

/** Seconds a client is asked to wait (Retry-After) after SERVICE_UNAVAILABLE. */
const RETRY_AFTER_S = 5;

export function toApiError(err: unknown): PathembedError {
  if (isPathembedError(err)) return err;
  if (isRedisUnavailable(err)) return redisUnavailableError(err);
  const translated = err && typeof err === 'object' ? fromExpress(err as HttpLikeError) : undefined;
  if (translated) return translated;
  return new PathembedError('INTERNAL', 'Internal error', {}, { cause: err });
}

export function errorMiddleware(logger: Logger, metrics?: ApiMetrics): ErrorRequestHandler {
  return (err, req, res, next) => {
    if (res.headersSent) {
      // A streamed response failed midway: the status is gone, so only the connection can say it.
      logger.warn({ err: (err as Error).message, path: req.path }, 'error after the response started');
      req.socket.destroy();
      next();
      return;
    }
    const apiError = toApiError(err);
    const status = ERROR_CODES[apiError.code].httpStatus;
    metrics?.apiErrors.inc({ code: apiError.code });
    if (apiError.code === 'INTERNAL') {
      logger.error({ err, method: req.method, path: req.path }, 'request failed');
    } else {
      logger.debug({ code: apiError.code, method: req.method, path: req.path }, apiError.message);
    }
    if (apiError.code === 'SERVICE_UNAVAILABLE') res.set('Retry-After', String(RETRY_AFTER_S));
    res.status(status).json({ error: apiError.toJSON() });
  };
}
