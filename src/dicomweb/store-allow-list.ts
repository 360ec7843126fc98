/**
 * The store allow-list: the guard that keeps user-supplied series references (and redirects) from
 * making the service fetch from hosts nobody approved, such as cloud metadata endpoints or other
 * internal services. Entries are URL prefixes (PATHEMBED_ALLOWED_STORES). URLs are compared as
 * parsed parts (scheme, host, port, path segments), never as strings, so `http://127.0.0.1.evil.com`
 * or `http://127.0.0.1@evil.com` do not pass as `http://127.0.0.1`.
 */
import { PathembedError } from '../errors.js';

/** One parsed allow-list entry. `port` undefined: every port of the host is allowed. */
export interface AllowedStore {
  readonly protocol: string;
  readonly hostname: string;
  readonly port: string | undefined;
  /** Path prefix without trailing slash ('' for the whole host); matched at segment boundaries. */
  readonly pathPrefix: string;
  /** The entry as configured, for messages. */
  readonly entry: string;
}

const DEFAULT_PORTS: Readonly<Record<string, string>> = { 'http:': '80', 'https:': '443' };

/** Finds an explicit port in the authority even when it is the default one (URL drops `:80`). */
function explicitPort(entry: string, url: URL): string | undefined {
  if (url.port !== '') return url.port;
  const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(entry)?.[1] ?? '';
  const hostPort = authority.slice(authority.lastIndexOf('@') + 1);
  return /:\d+$/.test(hostPort) ? DEFAULT_PORTS[url.protocol] : undefined;
}

/** Parses PATHEMBED_ALLOWED_STORES entries; throws CONFIG_INVALID naming a bad one. */
export function parseAllowList(entries: readonly string[]): AllowedStore[] {
  return entries.map((entry) => {
    const bad = (why: string) =>
      new PathembedError(
        'CONFIG_INVALID',
        `PATHEMBED_ALLOWED_STORES entry ${JSON.stringify(entry)} ${why}; write scheme://host[:port][/path], e.g. https://healthcare.googleapis.com/v1/projects/my-project`,
        { entry },
      );
    let url: URL;
    try {
      url = new URL(entry);
    } catch {
      throw bad('is not an absolute URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad('is not http or https');
    if (url.username !== '' || url.password !== '') throw bad('must not carry credentials');
    if (url.search !== '' || url.hash !== '') throw bad('must not have a query or fragment');
    return {
      protocol: url.protocol,
      hostname: url.hostname,
      port: explicitPort(entry, url),
      pathPrefix: url.pathname.replace(/\/+$/, ''),
      entry,
    };
  });
}

function effectivePort(url: URL): string {
  return url.port !== '' ? url.port : (DEFAULT_PORTS[url.protocol] ?? '');
}

function matches(store: AllowedStore, url: URL): boolean {
  if (url.protocol !== store.protocol || url.hostname !== store.hostname) return false;
  if (store.port !== undefined && effectivePort(url) !== store.port) return false;
  // WHATWG URL parsing has already resolved '.', '..' and their %2e spellings, so a prefix test at
  // a segment boundary cannot be escaped with /dicom-web/../admin.
  const path = url.pathname;
  return store.pathPrefix === '' || path === store.pathPrefix || path.startsWith(`${store.pathPrefix}/`);
}

/** The URL as it may appear in a message: origin and path only (no credentials, no query). */
export function safeUrlForMessage(url: string | URL): string {
  try {
    const u = typeof url === 'string' ? new URL(url) : url;
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(not a URL)';
  }
}

/** True when `url` lies under an allow-list entry and carries no credentials. */
export function isApprovedStore(url: string | URL, allowList: readonly AllowedStore[]): boolean {
  let parsed: URL;
  try {
    parsed = typeof url === 'string' ? new URL(url) : url;
  } catch {
    return false;
  }
  if (parsed.username !== '' || parsed.password !== '') return false;
  return allowList.some((store) => matches(store, parsed));
}

/**
 * Throws UNAPPROVED_DICOM_STORE unless `url` lies under an allow-list entry. `allowList` may be the
 * raw configured strings or entries already parsed with `parseAllowList` (cheaper per request).
 */
export function assertApprovedStore(
  url: string | URL,
  allowList: readonly string[] | readonly AllowedStore[],
  what = 'DICOMweb store',
): void {
  const stores = allowList.every((e) => typeof e === 'string')
    ? parseAllowList(allowList as readonly string[])
    : (allowList as readonly AllowedStore[]);
  if (isApprovedStore(url, stores)) return;
  const shown = safeUrlForMessage(url);
  const list = stores.map((s) => s.entry).join(',');
  throw new PathembedError(
    'UNAPPROVED_DICOM_STORE',
    `${what} ${shown} is not on the allow-list (PATHEMBED_ALLOWED_STORES=${list || '(empty)'}). ` +
      'If the store is trusted, add its base URL prefix (scheme://host[:port][/path]) to PATHEMBED_ALLOWED_STORES; URLs with credentials are never allowed.',
    { url: shown, allowList: stores.map((s) => s.entry) },
  );
}
