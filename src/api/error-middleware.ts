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
  /** body-parser: the byte limit and the body's length (entity.too.large), the raw body (entity.parse.failed). */
  limit?: number;
  length?: number;
  body?: string;
  /** zlib's errno when a compressed body does not inflate. */
  errno?: number;
}

const HTTP_BAD_REQUEST = 400;

/** A JSON text that is valid but not an object or array (body-parser's strict mode refuses those). */
function jsonPrimitive(body: string | undefined): string | undefined {
  if (body === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(body);
    if (value === null) return 'null';
    return typeof value === 'object' ? undefined : `a JSON ${typeof value}`;
  } catch {
    return undefined;
  }
}

function fromExpress(err: HttpLikeError): PathembedError | undefined {
  switch (err.type) {
    case 'entity.too.large':
      return new PathembedError(
        'PAYLOAD_TOO_LARGE',
        err.limit !== undefined
          ? `The request body${err.length !== undefined ? ` (${err.length} bytes)` : ''} is larger than the ${err.limit}-byte limit (PATHEMBED_BODY_LIMIT); send fewer sources a request, or a batch (POST /v1/batches) for many slides.`
          : `The request body is larger than the limit (PATHEMBED_BODY_LIMIT): ${err.message}`,
        { ...(err.limit !== undefined ? { limitBytes: err.limit } : {}) },
      );
    case 'entity.parse.failed': {
      const primitive = jsonPrimitive(err.body);
      if (primitive !== undefined) {
        return new PathembedError(
          'INVALID_ARGUMENT',
          `The request body must be a JSON object; it is ${primitive}.`,
          { issues: [{ path: '', reason: 'not a JSON object' }] },
        );
      }
      return new PathembedError('INVALID_ARGUMENT', `The request body is not valid JSON: ${err.message}`, {
        issues: [{ path: '', reason: 'invalid JSON' }],
      });
    }
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new PathembedError('INVALID_ARGUMENT', err.message);
    default:
      break;
  }
  if ((err.status ?? err.statusCode) !== HTTP_BAD_REQUEST) return undefined;
  // Express's router: a path segment that is not valid percent-encoding (a URIError marked 400).
  if (err instanceof URIError) {
    return new PathembedError(
      'INVALID_ARGUMENT',
      `A path segment is not valid percent-encoding (${err.message}); encode ids with encodeURIComponent.`,
    );
  }
  // body-parser: a body whose Content-Encoding does not match its bytes. zlib's errors (Z_DATA_ERROR,
  // brotli's ERR__ERROR_FORMAT_...) carry an errno and come through untyped, marked 400.
  if (typeof err.errno === 'number' && err.type === undefined) {
    return new PathembedError(
      'INVALID_ARGUMENT',
      `The request body does not decode as its Content-Encoding says (${err.message}); send it uncompressed or fix the header.`,
    );
  }
  return undefined;
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
