/**
 * Content-Security-Policy of the page: scripts, styles, images and requests from this origin only
 * (no CDN, no inline script, no eval); images also from blob: and data: (OpenSeadragon draws tiles
 * through them); no framing. bull-board's page gets its own policy: its bundle sets inline styles
 * (its link to a Google web font is taken out of its HTML, src/api/queues-board.ts, so nothing
 * leaves the origin).
 */

/**
 * The one inline style the page allows, by hash: OpenSeadragon injects a <style> that hides the
 * viewer's focus outline on touch screens. Any other inline style is still refused.
 */
export const OPENSEADRAGON_STYLE_HASH = "'sha256-9xTiqzfwFaL2SGb1rmr8gysEwVVjIvqWAgmZgqFqpEE='";

import type { RequestHandler } from 'express';

export const PAGE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  `style-src 'self' ${OPENSEADRAGON_STYLE_HASH}`,
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export const QUEUES_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export function contentSecurityPolicy(policy: string): RequestHandler {
  return (_req, res, next) => {
    res.set('Content-Security-Policy', policy);
    res.set('X-Content-Type-Options', 'nosniff');
    res.set('Referrer-Policy', 'no-referrer');
    next();
  };
}
