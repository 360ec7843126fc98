/**
 * How requests to a store are authenticated: no credentials, a static bearer token (also the
 * per-job tokens the queue decrypts), or Google Application Default Credentials. The client asks
 * for headers before each request and calls `refresh()` once when the store answers 401/403.
 * Tokens live only in closures, never in properties, so logging or inspecting a provider (or an
 * object holding one) cannot print them; `description` names the method, never the secret.
 */
import { GoogleAuth } from 'google-auth-library';
import { PathembedError } from '../errors.js';

export interface AuthProvider {
  /** The method, for messages ("no credentials", "a static bearer token", ...). Never a secret. */
  readonly description: string;
  /** Headers to add to the next request (e.g. Authorization). */
  headers(): Promise<Record<string, string>>;
  /** Drops cached credentials so the next `headers()` obtains fresh ones; no-op where impossible. */
  refresh(): Promise<void>;
}

/** OAuth scope of the Cloud Healthcare API (DICOMweb reads and STOW-RS writes). */
export const GOOGLE_HEALTHCARE_SCOPE = 'https://www.googleapis.com/auth/cloud-healthcare';

export function noAuth(): AuthProvider {
  return {
    description: 'no credentials (PATHEMBED_AUTH=none)',
    headers: async () => ({}),
    refresh: async () => {},
  };
}

/** A fixed token. A 401 cannot be cured by refreshing it, so `refresh()` does nothing. */
export function bearerAuth(token: string): AuthProvider {
  if (token.trim() === '' || /[\r\n]/.test(token)) {
    throw new PathembedError(
      'CONFIG_INVALID',
      'The bearer token is empty or contains a line break; set PATHEMBED_BEARER_TOKEN (or --token) to the raw token, without "Bearer ".',
    );
  }
  const header = `Bearer ${token.trim()}`;
  return {
    description: 'a static bearer token',
    headers: async () => ({ authorization: header }),
    refresh: async () => {},
  };
}

export interface GoogleAuthOptions {
  /**
   * Builds the google-auth-library client. Default: `new GoogleAuth({ scopes: cloud-healthcare })`,
   * i.e. Application Default Credentials. Tests pass one whose token endpoint is local.
   */
  readonly createAuth?: () => GoogleAuth;
}

/**
 * Google Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud user credentials,
 * or the metadata server). google-auth-library caches the token and renews it before expiry;
 * `refresh()` discards the whole client so the next request runs credential discovery and a token
 * fetch afresh, which works the same for every credential kind (user, service account, metadata
 * server, workload identity) without reaching into each client's private cache.
 */
export function googleAuth(options: GoogleAuthOptions = {}): AuthProvider {
  const create = options.createAuth ?? (() => new GoogleAuth({ scopes: [GOOGLE_HEALTHCARE_SCOPE] }));
  let auth: GoogleAuth | undefined;
  return {
    description: 'Google Application Default Credentials',
    async headers() {
      auth ??= create();
      try {
        const headers = await auth.getRequestHeaders();
        const out: Record<string, string> = {};
        headers.forEach((value, name) => {
          out[name.toLowerCase()] = value;
        });
        return out;
      } catch (err) {
        // The library's message can quote a credentials file path but not a token; keep it as the cause only.
        throw new PathembedError(
          'AUTH_FAILED',
          'Could not obtain Google Application Default Credentials for the Cloud Healthcare API: ' +
            `${err instanceof Error ? err.message : String(err)}. Run \`gcloud auth application-default login\`, ` +
            'set GOOGLE_APPLICATION_CREDENTIALS to a service account key, or run where a metadata server provides them.',
          { scope: GOOGLE_HEALTHCARE_SCOPE },
          { cause: err },
        );
      }
    },
    async refresh() {
      auth = undefined;
    },
  };
}
