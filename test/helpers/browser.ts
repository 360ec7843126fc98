/**
 * A real browser for the web page's tests: Debian's chromium (apt `chromium`, in .ci/run's list)
 * driven by playwright-core. One browser per test file; pages are reused. Every request a page
 * makes is recorded, so a test can check that none leaves the origin, and console errors and
 * Content-Security-Policy violations are collected, so a test can check there are none.
 */
import { existsSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';
import sharp from 'sharp';

export const CHROMIUM = '/usr/bin/chromium';
export const VIEWPORT = { width: 1280, height: 800 } as const;

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium`);
  }
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}

export interface WatchedPage {
  readonly page: Page;
  /** Every URL the page requested, in order. */
  readonly requests: string[];
  /** Console errors, page errors and CSP violations. */
  readonly problems: string[];
}

export async function watchedPage(browser: Browser): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const requests: string[] = [];
  const problems: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // DOM code runs in the page, so it is given as source text (the tests are compiled without DOM types).
  await page.addInitScript(
    "document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));",
  );
  return { page, requests, problems };
}

/** Raw RGB pixels of a PNG screenshot. */
export async function rgbPixels(png: Buffer): Promise<{ width: number; height: number; data: Buffer }> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data };
}

export function pixelAt(
  img: { width: number; data: Buffer },
  x: number,
  y: number,
): [number, number, number] {
  const i = (Math.round(y) * img.width + Math.round(x)) * 3;
  return [img.data[i]!, img.data[i + 1]!, img.data[i + 2]!];
}

export function maxChannelDiff(a: readonly number[], b: readonly number[]): number {
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
}

/** The overlay canvas's image-to-element transform, as the page states it. */
export async function overlayTransform(
  page: Page,
): Promise<{ scale: number; offsetX: number; offsetY: number }> {
  const d = (await page.evaluate("({ ...document.getElementById('overlay').dataset })")) as Record<
    string,
    string
  >;
  return { scale: Number(d.scale), offsetX: Number(d.offsetX), offsetY: Number(d.offsetY) };
}
