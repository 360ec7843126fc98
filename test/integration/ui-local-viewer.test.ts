/**
 * The web page in a real browser (Debian's chromium) against the local viewer (no Redis): a small
 * synthetic slide embedded with the real model, served as `pathembed demo --serve` serves it.
 * Checks the overlay in pixels where the viewport transform puts the patches, the tile endpoint
 * against the reader's own pixels, a click giving neighbours, k-means colours, the CSP, and that no
 * request leaves the origin.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDefaultModel } from '../../models/default-model.js';
import { type Listening, listen } from '../../src/api/server.js';
import { loadConfig } from '../../src/config.js';
import { engineOptions, pipelineDeps, searchBuildOptions, slideOpener } from '../../src/domain-options.js';
import { EmbeddingEngine } from '../../src/embed/index.js';
import { createLogger } from '../../src/log.js';
import { runEmbeddingJob } from '../../src/pipeline/index.js';
import type { PatchOverlay } from '../../src/results/patch-overlay.js';
import { writeSampleSlide } from '../../src/sample/sample-slide.js';
import { CLUSTER_PALETTE } from '../../src/ui/browser/kmeans.js';
import { PAGE_CSP } from '../../src/ui/content-security-policy.js';
import { createLocalViewer, LOCAL_JOB_ID, type LocalViewer } from '../../src/ui/local-viewer.js';
import type { OpenSlideReader } from '../../src/wsi/slide-opener.js';
import {
  launchBrowser,
  maxChannelDiff,
  overlayTransform,
  pixelAt,
  rgbPixels,
  type WatchedPage,
  watchedPage,
} from '../helpers/browser.js';

/** `npm run docs:screenshots` sets it: the views are saved to docs/ui/. */
const SCREENSHOTS = process.env.PATHEMBED_UI_SCREENSHOTS === '1';

let dir: string;
let viewer: LocalViewer;
let server: Listening;
let browser: Browser;
let watched: WatchedPage;
let overlay: PatchOverlay;
let reader: OpenSlideReader;

const config = loadConfig({
  PATHEMBED_INTRA_OP_THREADS: '2',
  PATHEMBED_EXECUTION_PROVIDER: 'cpu',
  PATHEMBED_BATCH_SIZE: '8',
  PATHEMBED_DECODE_THREADS: '1',
});

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-ui-local-'));
  const slideDir = path.join(dir, 'slide');
  await writeSampleSlide(slideDir, { widthPx: 2048, heightPx: 1536, seed: 'ui-local-viewer' });
  const logger = createLogger('silent');
  await ensureDefaultModel(engineOptions(config), logger);
  const engine = await EmbeddingEngine.open(engineOptions(config), logger);
  const jsonPath = path.join(dir, 'result.json');
  try {
    await runEmbeddingJob(
      { kind: 'local', folder: slideDir },
      {},
      { jsonPath },
      pipelineDeps(config, logger, engine),
    );
  } finally {
    await engine.close();
  }
  const opener = slideOpener(config, { logger });
  viewer = await createLocalViewer({
    resultPath: jsonPath,
    slide: { kind: 'local', folder: slideDir },
    opener,
    search: searchBuildOptions(config),
  });
  server = await listen(viewer.app, '127.0.0.1', 0);
  reader = await opener.openSlideReader({ kind: 'local', folder: slideDir });
  overlay = (await (await fetch(`${server.url}/v1/jobs/${LOCAL_JOB_ID}/overlay`)).json()) as PatchOverlay;
  browser = await launchBrowser();
  watched = await watchedPage(browser);
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await viewer?.close();
  await reader?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Element coordinates of a patch's centre under the overlay's transform. */
function centreOf(i: number, t: { scale: number; offsetX: number; offsetY: number }) {
  return {
    x: t.offsetX + (overlay.x[i]! + overlay.width[i]! / 2) * t.scale,
    y: t.offsetY + (overlay.y[i]! + overlay.height[i]! / 2) * t.scale,
  };
}

function insideAnyPatch(x: number, y: number): boolean {
  for (let i = 0; i < overlay.count; i++) {
    if (
      x >= overlay.x[i]! &&
      x < overlay.x[i]! + overlay.width[i]! &&
      y >= overlay.y[i]! &&
      y < overlay.y[i]! + overlay.height[i]!
    ) {
      return true;
    }
  }
  return false;
}

async function setOpacity(percent: number): Promise<void> {
  await watched.page.locator('#overlay-opacity').fill(String(percent));
  await watched.page.locator('#overlay-opacity').dispatchEvent('input');
}

async function shot(name: string): Promise<void> {
  const target = path.resolve('docs/ui');
  await mkdir(target, { recursive: true });
  // A 256-colour palette keeps a 1280 x 800 view near 200 KB instead of 700 KB.
  await sharp(await watched.page.screenshot())
    .png({ palette: true, colours: 256, compressionLevel: 9, effort: 10 })
    .toFile(path.join(target, `${name}.png`));
}

async function viewerPixels() {
  return rgbPixels(await watched.page.locator('#viewer').screenshot());
}

/** A GET with a Host header of our choosing (fetch does not let a caller set Host). */
function getWithHost(url: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

describe('local viewer: no sign-in, so loopback Host names only', () => {
  it('answers localhost, 127.0.0.1 and [::1], and refuses any other Host (a DNS name rebound to 127.0.0.1)', async () => {
    const port = new URL(server.url).port;
    const result = `${server.url}/v1/jobs/${LOCAL_JOB_ID}/result`;
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]) {
      expect((await getWithHost(result, host)).status, host).toBe(200);
    }
    for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1.evil.example:${port}`]) {
      const answer = await getWithHost(result, host);
      expect(answer.status, host).toBe(400);
      expect(JSON.parse(answer.body).error.code).toBe('INVALID_ARGUMENT');
      expect(answer.body).not.toContain('embedding');
    }
  });
});

describe('local viewer in chromium', () => {
  it('serves the page with a Content-Security-Policy that allows no inline script and no other origin', async () => {
    const res = await fetch(`${server.url}/ui/`);
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toBe(PAGE_CSP);
    expect(csp).toMatch(/default-src 'self'/);
    expect(csp).toMatch(/script-src 'self'(;|$)/);
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|https?:/);
  });

  it('serves tiles whose JPEG decodes to the reader pixels of the same region', async () => {
    const layout = (await (await fetch(`${server.url}/v1/jobs/${LOCAL_JOB_ID}/slide`)).json()) as {
      widthPx: number;
      heightPx: number;
      maxLevel: number;
      tileSizePx: number;
    };
    expect(layout).toMatchObject({ widthPx: 2048, heightPx: 1536, maxLevel: 11, tileSizePx: 256 });
    const res = await fetch(`${server.url}/v1/jobs/${LOCAL_JOB_ID}/tiles/11/3_2.jpg`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    const tile = await sharp(Buffer.from(await res.arrayBuffer()))
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect([tile.info.width, tile.info.height, tile.info.channels]).toEqual([256, 256, 3]);
    const truth = await reader.reader.readRegion(reader.slide.level(0), 768, 512, 256, 256);
    let sum = 0;
    for (let i = 0; i < truth.data.length; i++) sum += Math.abs(truth.data[i]! - tile.data[i]!);
    const meanAbs = sum / truth.data.length;
    // Quality-90 JPEG of H&E: a mean error of about 1 level; a shifted or wrong region is tens.
    expect(meanAbs).toBeLessThan(3);

    // A coarser zoom (4x down) is the level-0 region averaged: compare with the reader's own downsample.
    const coarse = await fetch(`${server.url}/v1/jobs/${LOCAL_JOB_ID}/tiles/9/1_1.jpg`);
    const coarseTile = await sharp(Buffer.from(await coarse.arrayBuffer()))
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect([coarseTile.info.width, coarseTile.info.height]).toEqual([256, 128]);
    const coarseTruth = await reader.reader.readScaled(
      { level: reader.slide.level(1), scale: 1 },
      { x: 256, y: 256, width: 256, height: 128 },
    );
    let coarseSum = 0;
    for (let i = 0; i < coarseTruth.data.length; i++)
      coarseSum += Math.abs(coarseTruth.data[i]! - coarseTile.data[i]!);
    expect(coarseSum / coarseTruth.data.length).toBeLessThan(3);
    expect((await fetch(`${server.url}/v1/jobs/${LOCAL_JOB_ID}/tiles/11/99_0.jpg`)).status).toBe(404);
  });

  it('draws each patch in its PCA colour where the viewport puts it, and nothing elsewhere', async () => {
    expect(overlay.count).toBeGreaterThan(10);
    const { page } = watched;
    await page.goto(`${server.url}/ui/`);
    await page.waitForSelector('body[data-viewer-ready="1"]', { timeout: 60_000 });
    expect(await page.locator('#patch-count').textContent()).toBe(`${overlay.count} patches`);
    await setOpacity(0);
    const bare = await viewerPixels();
    await setOpacity(100);
    const drawn = await viewerPixels();
    const t = await overlayTransform(page);
    expect(t.scale).toBeGreaterThan(0.2);
    let checked = 0;
    for (let i = 0; i < overlay.count; i++) {
      const c = centreOf(i, t);
      if (c.x < 0 || c.y < 0 || c.x >= drawn.width || c.y >= drawn.height) continue;
      const rgb = [overlay.rgb[3 * i]!, overlay.rgb[3 * i + 1]!, overlay.rgb[3 * i + 2]!];
      expect(maxChannelDiff(pixelAt(drawn, c.x, c.y), rgb), `patch ${i}`).toBeLessThanOrEqual(2);
      checked++;
    }
    expect(checked).toBe(overlay.count);
    // Glass and tissue outside every patch: the overlay leaves the slide's pixels as they are.
    let outside = 0;
    for (let y = 16; y < 1536; y += 64) {
      for (let x = 16; x < 2048; x += 64) {
        if (
          insideAnyPatch(x - 8, y - 8) ||
          insideAnyPatch(x + 8, y + 8) ||
          insideAnyPatch(x - 8, y + 8) ||
          insideAnyPatch(x + 8, y - 8)
        )
          continue;
        const sx = t.offsetX + x * t.scale;
        const sy = t.offsetY + y * t.scale;
        expect(
          maxChannelDiff(pixelAt(drawn, sx, sy), pixelAt(bare, sx, sy)),
          `(${x}, ${y})`,
        ).toBeLessThanOrEqual(1);
        outside++;
      }
    }
    expect(outside).toBeGreaterThan(50);
    await setOpacity(50);
    if (SCREENSHOTS) await shot('result');
  });

  it('colours by k-means clusters with the k the user picks', async () => {
    const { page } = watched;
    await setOpacity(100);
    await page.locator('#colour-mode').selectOption('kmeans');
    await page.locator('#cluster-k').fill('4');
    await page.locator('#cluster-k').dispatchEvent('change');
    await page.waitForSelector('body[data-clusters="4"]');
    const drawn = await viewerPixels();
    const t = await overlayTransform(page);
    const used = new Set<number>();
    for (let i = 0; i < overlay.count; i++) {
      const c = centreOf(i, t);
      const px = pixelAt(drawn, c.x, c.y);
      const k = CLUSTER_PALETTE.slice(0, 4).findIndex((p) => maxChannelDiff(px, p) <= 2);
      expect(k, `patch ${i} ${px}`).toBeGreaterThanOrEqual(0);
      used.add(k);
    }
    expect(used.size).toBe(4);
    await setOpacity(50);
    if (SCREENSHOTS) await shot('clusters');
    await page.locator('#colour-mode').selectOption('pca');
  });

  it('shows the k nearest patches of a clicked patch, itself first, distances ascending', async () => {
    const { page } = watched;
    const t = await overlayTransform(page);
    const box = (await page.locator('#viewer').boundingBox())!;
    const i = Math.floor(overlay.count / 2);
    const c = centreOf(i, t);
    await page.mouse.click(box.x + c.x, box.y + c.y);
    // waitForFunction polls with eval, which the page's CSP refuses: poll from outside instead.
    await expect.poll(() => page.locator('.neighbour').count(), { timeout: 30_000 }).toBe(8);
    const items = (await page.evaluate(
      "[...document.querySelectorAll('.neighbour')].map((e) => ({ ...e.dataset }))",
    )) as Array<Record<string, string>>;
    expect(items[0]!.patchIndex).toBe(String(overlay.patchIndex[i]));
    expect(Number(items[0]!.distance)).toBeLessThan(1e-5);
    const distances = items.map((n) => Number(n.distance));
    expect(distances).toEqual([...distances].sort((a, b) => a - b));
    expect(new Set(items.map((n) => n.patchIndex)).size).toBe(8);
    expect(await page.locator('body').getAttribute('data-selected-patch')).toBe(
      String(overlay.patchIndex[i]),
    );
    // The thumbnails are the patches' pixels: the first is the clicked patch's region.
    await expect
      .poll(
        () =>
          page.evaluate(
            "[...document.querySelectorAll('.neighbour img')].every((img) => img.complete && img.naturalWidth === 112)",
          ),
        { timeout: 30_000 },
      )
      .toBe(true);
    const src = (await page.locator('.neighbour img').first().getAttribute('src')) ?? '';
    const first = overlay.patchIndex.indexOf(Number(items[0]!.patchIndex));
    expect(src).toContain(`x=${overlay.x[first]}&y=${overlay.y[first]}`);
    const thumbRes = await fetch(new URL(src, server.url));
    expect(thumbRes.headers.get('content-type')).toBe('image/jpeg');
    if (SCREENSHOTS) await shot('neighbours');
    const thumb = await sharp(Buffer.from(await thumbRes.arrayBuffer()))
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect([thumb.info.width, thumb.info.height]).toEqual([112, 112]);
    const thumbTruth = await reader.reader.readScaled(
      { level: reader.slide.level(0), scale: 2 },
      { x: overlay.x[first]! / 2, y: overlay.y[first]! / 2, width: 112, height: 112 },
    );
    let thumbSum = 0;
    for (let j = 0; j < thumbTruth.data.length; j++)
      thumbSum += Math.abs(thumbTruth.data[j]! - thumb.data[j]!);
    const thumbError = thumbSum / thumbTruth.data.length;
    // Downsampled nuclei are sharper-edged than a tile: JPEG leaves a mean error of 3-4 levels.
    expect(thumbError).toBeLessThan(5);
    // The same comparison one thumbnail to the right fails by far: the check can tell regions apart.
    const shifted = await reader.reader.readScaled(
      { level: reader.slide.level(0), scale: 2 },
      { x: overlay.x[first]! / 2 + 112, y: overlay.y[first]! / 2, width: 112, height: 112 },
    );
    let shiftedSum = 0;
    for (let j = 0; j < shifted.data.length; j++) shiftedSum += Math.abs(shifted.data[j]! - thumb.data[j]!);
    expect(shiftedSum / shifted.data.length).toBeGreaterThan(2 * thumbError);
  });

  it('made no request outside its origin, and the browser reported no error or CSP violation', async () => {
    const origin = new URL(server.url).origin;
    expect(watched.requests.length).toBeGreaterThan(20);
    const foreign = watched.requests.filter(
      (u) => !u.startsWith('data:') && !u.startsWith('blob:') && new URL(u).origin !== origin,
    );
    expect(foreign).toEqual([]);
    expect(watched.problems).toEqual([]);
  });
});
