/**
 * API key authentication: `Authorization: Bearer <key>` against PATHEMBED_API_KEYS. Keys are
 * compared as SHA-256 digests with timingSafeEqual, so neither the key's content nor its length
 * leaks through response timing. A request is identified by a short hash of its key (`keyId`),
 * which is what job records and per-key limits store; the key itself is never stored or logged.
 * The web page's browsers present a session cookie instead (src/ui/ui-session.ts), which names the
 * key id of the key they signed in with.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { PathembedError } from '../errors.js';
import { sessionKeyId, type UiLogin } from '../ui/ui-session.js';

/** keyId of requests when no keys are configured. */
export const ANONYMOUS_KEY_ID = 'anonymous';
/** Hex digits of the key's SHA-256 kept as its id: enough to tell keys apart, useless to guess one. */
const KEY_ID_HEX_DIGITS = 16;
const BEARER = /^Bearer\s+(.+)$/i;

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

export function keyIdOf(key: string): string {
  return digest(key).toString('hex').slice(0, KEY_ID_HEX_DIGITS);
}

export class ApiKeyVerifier {
  readonly #digests: Buffer[];
  readonly #keyIds: ReadonlySet<string>;

  constructor(keys: readonly string[] | undefined) {
    this.#digests = (keys ?? []).map(digest);
    this.#keyIds = new Set((keys ?? []).map(keyIdOf));
  }

  /** Whether a key id belongs to a configured key (sessions of a removed key end). */
  knowsKeyId(keyId: string): boolean {
    return this.#keyIds.has(keyId);
  }

  get enabled(): boolean {
    return this.#digests.length > 0;
  }

  /** The keyId of a valid key, or undefined. Every configured key is compared (no early exit). */
  verify(presented: string): string | undefined {
    const candidate = digest(presented);
    let match = false;
    for (const d of this.#digests) match = timingSafeEqual(candidate, d) || match;
    return match ? keyIdOf(presented) : undefined;
  }
}

declare module 'express-serve-static-core' {
  interface Locals {
    /** Who is calling: a key id, or 'anonymous' when no keys are configured. */
    keyId?: string;
  }
}

/**
 * Middleware: 401 UNAUTHORIZED unless the request carries a configured key (when any are), or,
 * with `login`, a valid session cookie of the web page and no Authorization header.
 */
export function requireApiKey(verifier: ApiKeyVerifier, login?: UiLogin): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    if (!verifier.enabled) {
      res.locals.keyId = ANONYMOUS_KEY_ID;
      next();
      return;
    }
    const header = req.get('authorization');
    if (!header && login) {
      const sessionKey = sessionKeyId(login, req.get('cookie'));
      if (sessionKey) {
        res.locals.keyId = sessionKey;
        next();
        return;
      }
    }
    const match = header ? BEARER.exec(header) : null;
    // BEARER's one group is not optional, so a match always has it.
    const keyId = match ? verifier.verify(match[1]!.trim()) : undefined;
    if (!keyId) {
      res.set('WWW-Authenticate', 'Bearer realm="pathembed"');
      next(
        new PathembedError(
          'UNAUTHORIZED',
          match
            ? 'The API key is not valid'
            : 'This service needs an API key: send Authorization: Bearer <key>',
        ),
      );
      return;
    }
    res.locals.keyId = keyId;
    next();
  };
}
