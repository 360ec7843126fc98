/**
 * "The same store": two DICOMweb base URLs that name one store once normalised (scheme, host and
 * port as the URL parser canonicalises them, the path without a trailing slash, and no user
 * information, query or fragment). Credentials for one store must never reach another, so the rule
 * is strict: a lookalike host, another port, another scheme or a path that merely starts the same
 * is another store.
 */
import { normaliseBaseUrl } from './series-reference.js';

function storeKey(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    parsed.search = '';
    parsed.hash = '';
    return normaliseBaseUrl(parsed.toString());
  } catch {
    return undefined;
  }
}

/** True when both URLs are valid store base URLs naming the same store. */
export function isSameStore(a: string, b: string): boolean {
  const ka = storeKey(a);
  return ka !== undefined && ka === storeKey(b);
}
