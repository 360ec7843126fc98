/**
 * Browser sessions for the web page. A browser cannot send `Authorization` on a navigation or an
 * <img> request, so the login form posts an API key once and gets a session cookie instead:
 * `<keyId>.<expiry ms>.<HMAC-SHA256>`, signed with the service's session secret. The cookie holds
 * no key, only the key's id (the short hash job records already store); it is HttpOnly (no script
 * reads it), SameSite=Strict (no other site's page sends it, which is what stops cross-site
 * request forgery here) and Path=/. A session ends at its expiry, at logout (the browser drops
 * it), when its key is removed from PATHEMBED_API_KEYS, or when the secret changes (a random one
 * per process when PATHEMBED_UI_SESSION_SECRET is unset).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const SESSION_COOKIE = 'pathembed_session';
const SECRET_BYTES = 32;

export interface UiSessionOptions {
  /** HMAC key; default: random bytes, so sessions do not outlive the process. */
  readonly secret?: string;
  /** How long a session lasts, in milliseconds. */
  readonly ttlMs: number;
  /** Add `Secure` to the cookie (set when the API is served over HTTPS). */
  readonly secureCookie?: boolean;
}

export class UiSessions {
  readonly #secret: Buffer;
  readonly #ttlMs: number;
  readonly #secure: boolean;

  constructor(options: UiSessionOptions) {
    this.#secret = options.secret ? Buffer.from(options.secret, 'utf8') : randomBytes(SECRET_BYTES);
    this.#ttlMs = options.ttlMs;
    this.#secure = options.secureCookie ?? false;
  }

  #mac(payload: string): Buffer {
    return createHmac('sha256', this.#secret).update(payload, 'utf8').digest();
  }

  /** A cookie value for a signed-in key id. */
  issue(keyId: string, now = Date.now()): string {
    const payload = `${keyId}.${now + this.#ttlMs}`;
    return `${payload}.${this.#mac(payload).toString('base64url')}`;
  }

  /** The key id of a valid, unexpired cookie value, else undefined. */
  verify(value: string | undefined, now = Date.now()): string | undefined {
    if (!value) return undefined;
    const parts = value.split('.');
    if (parts.length !== 3) return undefined;
    const [keyId, expires, mac] = parts as [string, string, string];
    // The encodings are compared, not the decoded bytes: base64url's last character carries
    // spare bits, so several spellings decode to the same MAC, and only the one issued is the cookie.
    const presented = Buffer.from(mac, 'utf8');
    const expected = Buffer.from(this.#mac(`${keyId}.${expires}`).toString('base64url'), 'utf8');
    if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) return undefined;
    if (!(Number(expires) > now)) return undefined;
    return keyId;
  }

  /** The Set-Cookie header value that starts a session. */
  setCookie(keyId: string, now = Date.now()): string {
    return this.#cookie(this.issue(keyId, now), Math.floor(this.#ttlMs / 1000));
  }

  /** The Set-Cookie header value that ends one. */
  clearCookie(): string {
    return this.#cookie('', 0);
  }

  #cookie(value: string, maxAgeS: number): string {
    return [
      `${SESSION_COOKIE}=${value}`,
      'Path=/',
      'HttpOnly',
      'SameSite=Strict',
      `Max-Age=${maxAgeS}`,
      ...(this.#secure ? ['Secure'] : []),
    ].join('; ');
  }
}

/** One cookie's value from a Cookie header (no cookie-parser dependency for one name). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** How the page signs in against the service's API keys. */
export interface UiLogin {
  readonly sessions: UiSessions;
  /** The key id of a configured API key, else undefined (timing-safe). */
  verifyKey(key: string): string | undefined;
  /** Whether a key id still belongs to a configured key (a removed key's sessions end). */
  knowsKeyId(keyId: string): boolean;
}

/** The key id of a request's valid session cookie, else undefined. */
export function sessionKeyId(login: UiLogin, cookieHeader: string | undefined): string | undefined {
  const keyId = login.sessions.verify(readCookie(cookieHeader, SESSION_COOKIE));
  return keyId !== undefined && login.knowsKeyId(keyId) ? keyId : undefined;
}
