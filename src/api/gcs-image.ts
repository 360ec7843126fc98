/**
 * Reads a Path Foundation `image_file_uri` (gs://bucket/object) from Cloud Storage through
 * @google-cloud/storage: with the request's bearer token when it sent one, else the service's
 * Application Default Credentials. Only objects under an approved prefix (PATHEMBED_ALLOWED_GCS)
 * are read, since the service's own credentials would otherwise read any bucket they can for
 * whoever asks; Google's server has the same list (its default allows all).
 */
import { createRequire } from 'node:module';
import { Storage, type StorageOptions } from '@google-cloud/storage';
import { PathembedError } from '../errors.js';

/**
 * The OAuth2Client of the google-auth-library @google-cloud/storage itself depends on: the
 * service's own (newer) one returns its headers in a shape the storage library's does not read,
 * so a token given through it would silently not be sent.
 */
const storageAuth = createRequire(createRequire(import.meta.url).resolve('@google-cloud/storage'))(
  'google-auth-library',
) as { OAuth2Client: new () => { setCredentials(c: { access_token: string }): void } };

/** gs://bucket/object, as Google's server accepts it. */
const GCS_URI = /^gs:\/\/([^/]+)\/(.+)$/;
/** Largest object read (a 10000 x 10000 PNG is at most ~300 MB raw; real ones are far smaller). */
const MAX_OBJECT_BYTES = 256 * 1024 * 1024;
const STATUS_UNAUTHORIZED = 401;
const TOKEN_ONLY_PROJECT = 'pathembed-token-only';
const STATUS_FORBIDDEN = 403;

export interface GcsLocation {
  readonly bucket: string;
  readonly object: string;
}

export function parseGcsUri(uri: string): GcsLocation | undefined {
  const m = GCS_URI.exec(uri);
  // Both groups of GCS_URI always match when it does.
  return m ? { bucket: m[1]!, object: m[2]! } : undefined;
}

export interface GcsReadOptions {
  /** gs:// prefixes that may be read; none: nothing may. */
  readonly allowed: readonly string[];
  /** JSON API endpoint (PATHEMBED_GCS_ENDPOINT); default Google's. */
  readonly apiEndpoint?: string;
  /** The request's bearer_token; undefined: ADC. */
  readonly token?: string;
}

/** Throws UNAPPROVED_GCS_BUCKET unless `uri` starts with an approved prefix (case-insensitive, as Google). */
export function assertApprovedGcs(uri: string, allowed: readonly string[]): void {
  const lower = uri.toLowerCase();
  if (allowed.some((prefix) => lower.startsWith(prefix.toLowerCase()))) return;
  throw new PathembedError(
    'UNAPPROVED_GCS_BUCKET',
    `GCS source ${uri} is not in the allowed list; add its gs:// prefix to PATHEMBED_ALLOWED_GCS to read it.`,
    { uri },
  );
}

function storageFor(options: GcsReadOptions): Storage {
  const settings: StorageOptions = {};
  if (options.apiEndpoint) {
    settings.apiEndpoint = options.apiEndpoint;
    // A custom endpoint gets no credentials unless told to; a caller's token must still go.
    settings.useAuthWithCustomEndpoint = options.token !== undefined;
  }
  if (options.token !== undefined) {
    const auth = new storageAuth.OAuth2Client();
    auth.setCredentials({ access_token: options.token });
    settings.authClient = auth as unknown as StorageOptions['authClient'];
    // A bare token names no project, and the library would then fall back to an unauthenticated
    // request; an object download needs none, so any id will do.
    settings.projectId = TOKEN_ONLY_PROJECT;
  }
  return new Storage(settings);
}

/** The object's bytes; GCS_UNAUTHORIZED for 401/403, GCS_READ_FAILED for anything else. */
export async function readGcsObject(uri: string, options: GcsReadOptions): Promise<Buffer> {
  const where = parseGcsUri(uri);
  if (!where)
    throw new PathembedError('INVALID_ARGUMENT', `Invalid GCS URI: ${uri}; expecting gs://bucket/object`);
  assertApprovedGcs(uri, options.allowed);
  const file = storageFor(options).bucket(where.bucket).file(where.object);
  try {
    const [bytes] = await file.download({ validation: false });
    if (bytes.length > MAX_OBJECT_BYTES) {
      throw new PathembedError(
        'GCS_READ_FAILED',
        `${uri} is ${bytes.length} bytes, more than ${MAX_OBJECT_BYTES}`,
        {
          uri,
        },
      );
    }
    return bytes;
  } catch (err) {
    if (err instanceof PathembedError) throw err;
    const status = (err as { code?: unknown }).code;
    if (status === STATUS_UNAUTHORIZED || status === STATUS_FORBIDDEN) {
      throw new PathembedError(
        'GCS_UNAUTHORIZED',
        `Invalid Google Cloud Storage credentials reading ${uri}; HTTP status code: ${status}. Send a valid bearer_token or give the service's account read access.`,
        { uri, status },
      );
    }
    throw new PathembedError(
      'GCS_READ_FAILED',
      `HTTP error occurred while retrieving ${uri} from Google Cloud Storage${typeof status === 'number' ? `; HTTP status code: ${status}` : ''}: ${(err as Error).message}`,
      { uri, ...(typeof status === 'number' ? { status } : {}) },
      { cause: err },
    );
  }
}
