/**
 * The web page against the full service in a real browser: the API with API keys and an
 * in-process worker (test/helpers/service-harness.ts), a real job on a slide in Orthanc. Checks the
 * browser sign-in (401 without the session cookie, the cookie's flags, logout), the jobs list, the
 * result view's tiles from the job's DICOMweb store against the reader, the overlay in pixels, and
 * the operators' view (bull-board) reachable only after sign-in, with no request leaving the origin.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { slideOpener } from '../../src/domain-options.js';
import type { PatchOverlay } from '../../src/results/patch-overlay.js';
import { SESSION_COOKIE } from '../../src/ui/ui-session.js';
import {
  launchBrowser,
  maxChannelDiff,
  overlayTransform,
  pixelAt,
  rgbPixels,
  type WatchedPage,
  watchedPage,
} from '../helpers/browser.js';
import { type Harness, startHarness, until } from '../helpers/service-harness.js';
import { fixture, services } from '../helpers/services.js';

const KEY = 'ui-test-key-0123456789';
const AUTH = { authorization: `Bearer ${KEY}` };
/** `npm run docs:screenshots` sets it: the views are saved to docs/ui/. */
const SCREENSHOTS = process.env.PATHEMBED_UI_SCREENSHOTS === '1';

let h: Harness;
let browser: Browser;
let watched: WatchedPage;
let jobId: string;

beforeAll(async () => {
  h = await startHarness({ redisUrl: services().redisUrl, env: { PATHEMBED_API_KEYS: KEY } });
  const res = await fetch(`${h.url}/v1/jobs`, {
    method: 'POST',
    headers: { ...AUTH, 'content-type': 'application/json' },
    body: JSON.stringify({ sources: [fixture('synthetic-full').seriesUrl], options: { minTissue: 0 } }),
  });
  expect(res.status).toBe(202);
  jobId = ((await res.json()) as { jobs: Array<{ id: string }> }).jobs[0]!.id;
  await until('the job completes', async () => {
    const job = (await (await fetch(`${h.url}/v1/jobs/${jobId}`, { headers: AUTH })).json()) as {
      state: string;
    };
    return ['completed', 'failed', 'cancelled'].includes(job.state) ? job : undefined;
  });
  browser = await launchBrowser();
  watched = await watchedPage(browser);
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await h?.close();
});

describe('the web page of the service', () => {
  it('needs a session: 401 from /v1 and the board without one, the page redirects to the login form', async () => {
    for (const p of [
      `/v1/jobs/${jobId}/slide`,
      `/v1/jobs/${jobId}/tiles/10/0_0.jpg`,
      '/ui/queues/',
      '/v1/jobs',
    ]) {
      expect((await fetch(`${h.url}${p}`)).status, p).toBe(401);
    }
    const page = await fetch(`${h.url}/ui/`, { redirect: 'manual' });
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toBe('/ui/login');
    expect(page.headers.get('content-security-policy')).toMatch(/^default-src 'self'; script-src 'self';/);
    const bad = await fetch(`${h.url}/ui/login`, {
      method: 'POST',
      body: new URLSearchParams({ key: 'not-the-key' }),
      redirect: 'manual',
    });
    expect(bad.status).toBe(401);
    expect(bad.headers.get('set-cookie')).toBeNull();
    // A real session cookie works; the same cookie with its signature or its expiry changed does not.
    const good = await fetch(`${h.url}/ui/login`, {
      method: 'POST',
      body: new URLSearchParams({ key: KEY }),
      redirect: 'manual',
    });
    const cookie = good.headers.get('set-cookie')?.split(';')[0] ?? '';
    const [keyId, expiry, mac] = cookie.slice(SESSION_COOKIE.length + 1).split('.');
    expect(mac?.length).toBeGreaterThan(8);
    expect((await fetch(`${h.url}/v1/jobs`, { headers: { cookie } })).status).toBe(200);
    const flipped = `${mac!.slice(0, -1)}${mac!.endsWith('A') ? 'B' : 'A'}`;
    for (const forged of [
      `${SESSION_COOKIE}=${keyId}.${expiry}.${flipped}`,
      `${SESSION_COOKIE}=${keyId}.${Number(expiry) + 3_600_000}.${mac}`,
    ]) {
      expect((await fetch(`${h.url}/v1/jobs`, { headers: { cookie: forged } })).status, forged).toBe(401);
    }
  });

  it('signs in with the API key into an HttpOnly SameSite=Strict cookie and lists the job', async () => {
    const { page } = watched;
    await page.goto(`${h.url}/ui/`);
    expect(new URL(page.url()).pathname).toBe('/ui/login');
    if (SCREENSHOTS) await shot('login');
    await page.locator('input[name="key"]').fill(KEY);
    await page.locator('#login-form button').click();
    await page.waitForSelector(`#jobs-table tr[data-job-id="${jobId}"][data-state="completed"]`);
    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === SESSION_COOKIE)!;
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });
    expect(session.value).not.toContain(KEY);
    expect(page.url()).not.toContain(KEY);
    const row = page.locator(`#jobs-table tr[data-job-id="${jobId}"]`);
    expect(await row.locator('td.source').textContent()).toBe(fixture('synthetic-full').seriesUrl);
    expect(await row.locator('progress').getAttribute('value')).toBe('12');
    if (SCREENSHOTS) await shot('jobs');
  });

  it("serves the job's tiles from its DICOMweb store: the JPEG decodes to the reader's pixels", async () => {
    const cookie = await sessionCookie();
    const res = await fetch(`${h.url}/v1/jobs/${jobId}/tiles/10/1_1.jpg`, { headers: { cookie } });
    expect(res.status).toBe(200);
    const tile = await sharp(Buffer.from(await res.arrayBuffer()))
      .raw()
      .toBuffer({ resolveWithObject: true });
    // 1000 x 700 px: tile (1, 1) of level 0 is 256 x 256 at (256, 256).
    expect([tile.info.width, tile.info.height]).toEqual([256, 256]);
    const f = fixture('synthetic-full');
    const opened = await slideOpener(h.config).openSlideReader({
      kind: 'dicomweb',
      baseUrl: services().dicomWebUrl,
      studyUid: f.studyUid,
      seriesUid: f.seriesUid,
    });
    try {
      const truth = await opened.reader.readRegion(opened.slide.level(0), 256, 256, 256, 256);
      let sum = 0;
      for (let i = 0; i < truth.data.length; i++) sum += Math.abs(truth.data[i]! - tile.data[i]!);
      expect(sum / truth.data.length).toBeLessThan(3);
    } finally {
      await opened.close();
    }
  });

  it('draws the overlay of the completed job where its patches are', async () => {
    const { page } = watched;
    await page.locator(`#jobs-table tr[data-job-id="${jobId}"] a`).click();
    await page.waitForSelector('body[data-viewer-ready="1"]', { timeout: 60_000 });
    const overlay = (await page.evaluate(
      `fetch('/v1/jobs/${jobId}/overlay').then((r) => r.json())`,
    )) as PatchOverlay;
    expect(overlay.count).toBe(12);
    await page.locator('#overlay-opacity').fill('100');
    await page.locator('#overlay-opacity').dispatchEvent('input');
    const drawn = await rgbPixels(await page.locator('#viewer').screenshot());
    const t = await overlayTransform(page);
    for (let i = 0; i < overlay.count; i++) {
      const x = t.offsetX + (overlay.x[i]! + overlay.width[i]! / 2) * t.scale;
      const y = t.offsetY + (overlay.y[i]! + overlay.height[i]! / 2) * t.scale;
      const rgb = [overlay.rgb[3 * i]!, overlay.rgb[3 * i + 1]!, overlay.rgb[3 * i + 2]!];
      expect(maxChannelDiff(pixelAt(drawn, x, y), rgb), `patch ${i}`).toBeLessThanOrEqual(2);
    }
    // Where no patch is (right of the last column, inside the 1000 px slide), the overlay draws
    // nothing: the pixel is the same with the overlay fully opaque and fully transparent.
    const [ox, oy] = [t.offsetX + 960 * t.scale, t.offsetY + 350 * t.scale];
    expect(overlay.x.every((x, i) => x + overlay.width[i]! <= 960)).toBe(true);
    expect(ox).toBeLessThan(drawn.width);
    await page.locator('#overlay-opacity').fill('0');
    await page.locator('#overlay-opacity').dispatchEvent('input');
    const bare = await rgbPixels(await page.locator('#viewer').screenshot());
    expect(maxChannelDiff(pixelAt(drawn, ox, oy), pixelAt(bare, ox, oy))).toBeLessThanOrEqual(2);
    await page.locator('#overlay-opacity').fill('100');
    await page.locator('#overlay-opacity').dispatchEvent('input');
  });

  it('answers a click on a patch with its nearest patches from POST /v1/search, itself first', async () => {
    const { page } = watched;
    const overlay = (await page.evaluate(
      `fetch('/v1/jobs/${jobId}/overlay').then((r) => r.json())`,
    )) as PatchOverlay;
    const t = await overlayTransform(page);
    const box = (await page.locator('#viewer').boundingBox())!;
    const i = 5;
    await page.mouse.click(
      box.x + t.offsetX + (overlay.x[i]! + overlay.width[i]! / 2) * t.scale,
      box.y + t.offsetY + (overlay.y[i]! + overlay.height[i]! / 2) * t.scale,
    );
    // waitForFunction polls with eval, which the page's CSP refuses: poll from outside instead.
    await expect.poll(() => page.locator('.neighbour').count(), { timeout: 30_000 }).toBe(8);
    const items = (await page.evaluate(
      "[...document.querySelectorAll('.neighbour')].map((e) => ({ ...e.dataset }))",
    )) as Array<Record<string, string>>;
    expect(items[0]).toMatchObject({ jobId, patchIndex: String(overlay.patchIndex[i]) });
    expect(Number(items[0]!.distance)).toBeLessThan(1e-5);
    const distances = items.map((n) => Number(n.distance));
    expect(distances).toEqual([...distances].sort((a, b) => a - b));
    // The same answer as the API gives a client with the key.
    const api = (await (
      await fetch(`${h.url}/v1/search`, {
        method: 'POST',
        headers: { ...AUTH, 'content-type': 'application/json' },
        body: JSON.stringify({ jobId, patch: { x: overlay.x[i], y: overlay.y[i] }, k: 8 }),
      })
    ).json()) as { neighbours: Array<{ patchIndex: number }> };
    expect(items.map((n) => Number(n.patchIndex))).toEqual(api.neighbours.map((n) => n.patchIndex));
    await expect
      .poll(
        () =>
          page.evaluate(
            "[...document.querySelectorAll('.neighbour img')].every((img) => img.complete && img.naturalWidth === 112)",
          ),
        { timeout: 30_000 },
      )
      .toBe(true);
  });

  it('follows a batch and searches the nearest patches across its slides', async () => {
    const { page } = watched;
    const created = await fetch(`${h.url}/v1/batches`, {
      method: 'POST',
      headers: { ...AUTH, 'content-type': 'application/json' },
      body: JSON.stringify({
        sources: [fixture('synthetic-full').seriesUrl, fixture('synthetic-sparse').seriesUrl],
        options: { minTissue: 0 },
      }),
    });
    expect(created.status).toBe(202);
    const batchId = ((await created.json()) as { id: string }).id;
    await until('the batch completes', async () => {
      const b = (await (await fetch(`${h.url}/v1/batches/${batchId}`, { headers: AUTH })).json()) as {
        state: string;
      };
      return b.state === 'running' ? undefined : b;
    });
    await page.goto(`${h.url}/ui/#/jobs`);
    await page.locator('#open-batch-form input[name="batchId"]').fill(batchId);
    await page.locator('#open-batch-form button').click();
    const box = page.locator(`#batches details[data-batch-id="${batchId}"]`);
    await box.locator('tr[data-state="completed"]').nth(1).waitFor();
    // The batch reused the first job (same slide, options and model) and added the sparse slide's.
    await expect.poll(() => box.locator(`tr[data-job-id="${jobId}"] a`).count()).toBe(1);
    await box.locator(`tr[data-job-id="${jobId}"] a`).click();
    await page.waitForURL(new RegExp(`#/jobs/${jobId}\\?batch=${batchId}$`));
    await page.waitForSelector('body[data-viewer-ready="1"]', { timeout: 60_000 });
    await page.locator('#search-scope').selectOption('batch');
    const overlay = (await page.evaluate(
      `fetch('/v1/jobs/${jobId}/overlay').then((r) => r.json())`,
    )) as PatchOverlay;
    const t = await overlayTransform(page);
    const viewerBox = (await page.locator('#viewer').boundingBox())!;
    const i = 2;
    await page.mouse.click(
      viewerBox.x + t.offsetX + (overlay.x[i]! + overlay.width[i]! / 2) * t.scale,
      viewerBox.y + t.offsetY + (overlay.y[i]! + overlay.height[i]! / 2) * t.scale,
    );
    const api = (await (
      await fetch(`${h.url}/v1/search`, {
        method: 'POST',
        headers: { ...AUTH, 'content-type': 'application/json' },
        body: JSON.stringify({ batchId, patch: { jobId, x: overlay.x[i], y: overlay.y[i] }, k: 8 }),
      })
    ).json()) as { index: { jobs: number }; neighbours: Array<{ jobId: string; patchIndex: number }> };
    expect(api.index.jobs).toBe(2);
    const expected = api.neighbours.map((n) => `${n.jobId}/${n.patchIndex}`);
    await expect
      .poll(async () =>
        page.evaluate(
          "[...document.querySelectorAll('.neighbour')].map((e) => e.dataset.jobId + '/' + e.dataset.patchIndex)",
        ),
      )
      .toEqual(expected);
    expect(expected[0]).toBe(`${jobId}/${overlay.patchIndex[i]}`);
  });

  it("shows the operators' view (bull-board) after sign-in, with the service's queue", async () => {
    const { page } = watched;
    const res = await page.goto(`${h.url}/ui/queues/`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()['content-security-policy']).toMatch(/default-src 'self'/);
    // The overview reads the queue from Redis through the board's API: the 'embed' queue and its jobs.
    await page
      .getByText(/^\d+ Jobs?$/)
      .first()
      .waitFor({ timeout: 30_000 });
    const text = (await page.locator('body').textContent()) ?? '';
    expect(text).toContain('embed');
    expect(text).toMatch(/COMPLETED\s*\d+/i);
    if (SCREENSHOTS) await shot('queues');
    // Read-only: it shows every key's jobs, so no signed-in key may clean or pause the shared queue.
    // (Sent with the page's session cookie but outside the page, so the page logs no failed fetch.)
    const attempts = await Promise.all(
      ['clean/completed', 'pause'].map(async (action) =>
        (await page.request.put(`${h.url}/ui/queues/api/queues/embed/${action}`)).status(),
      ),
    );
    expect(attempts).toEqual([405, 405]);
    expect(await h.api.ctx.queue.isPaused()).toBe(false);
    expect(await h.api.ctx.queue.getJobCountByTypes('completed')).toBeGreaterThan(0);
  });

  it('made no request outside its origin and the browser reported no error or CSP violation', async () => {
    const origin = new URL(h.url).origin;
    const foreign = watched.requests.filter(
      (u) => !u.startsWith('data:') && !u.startsWith('blob:') && new URL(u).origin !== origin,
    );
    expect(watched.requests.length).toBeGreaterThan(10);
    expect(foreign).toEqual([]);
    // The login page's 401 for a wrong key is not among these: the browser signed in once.
    expect(watched.problems).toEqual([]);
  });

  it('signs out: the cookie is dropped and /v1 answers 401 again', async () => {
    const { page } = watched;
    await page.goto(`${h.url}/ui/`);
    await page.waitForSelector('#logout:not([hidden]) button');
    await page.locator('#logout button').click();
    await page.waitForURL(`${h.url}/ui/login`);
    expect((await page.context().cookies()).find((c) => c.name === SESSION_COOKIE)).toBeUndefined();
    const status = await page.evaluate("fetch('/v1/jobs').then((r) => r.status)");
    expect(status).toBe(401);
  });
});

async function sessionCookie(): Promise<string> {
  const c = (await watched.page.context().cookies()).find((x) => x.name === SESSION_COOKIE)!;
  return `${c.name}=${c.value}`;
}

async function shot(name: string): Promise<void> {
  const dir = path.resolve('docs/ui');
  await mkdir(dir, { recursive: true });
  // A 256-colour palette keeps a 1280 x 800 view near 200 KB instead of 700 KB.
  await sharp(await watched.page.screenshot())
    .png({ palette: true, colours: 256, compressionLevel: 9, effort: 10 })
    .toFile(path.join(dir, `${name}.png`));
}
