/**
 * docs/ui/demo.png: the demo's own result in the web page, as `pathembed demo --serve` shows it
 * (the 6144 x 4096 px demo slide, its 214 patches coloured by PCA, one patch's nearest patches).
 * Reads demo-output/ (run `npm run demo` first); part of `npm run docs:screenshots`.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import sharp from 'sharp';
import { listen } from '../src/api/server.js';
import { loadConfig } from '../src/config.js';
import { searchBuildOptions, slideOpener } from '../src/domain-options.js';
import { createLocalViewer } from '../src/ui/local-viewer.js';

const out = path.resolve('demo-output');
const resultPath = path.join(out, 'result.json');
if (!existsSync(resultPath)) {
  process.stderr.write(`${resultPath} is missing: run \`npm run demo\` first\n`);
  process.exit(1);
}
const config = loadConfig();
const viewer = await createLocalViewer({
  resultPath,
  slide: { kind: 'local', folder: path.join(out, 'slide') },
  opener: slideOpener(config),
  search: searchBuildOptions(config),
});
const server = await listen(viewer.app, '127.0.0.1', 0);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
  await page.goto(`${server.url}/ui/#/jobs/local`);
  await page.waitForSelector('body[data-viewer-ready="1"]', { timeout: 60_000 });
  const t = (await page.evaluate("({ ...document.getElementById('overlay').dataset })")) as Record<
    string,
    string
  >;
  const overlay = (await (await fetch(`${server.url}/v1/jobs/local/overlay`)).json()) as {
    x: number[];
    y: number[];
    width: number[];
    height: number[];
  };
  const box = (await page.locator('#viewer').boundingBox())!;
  const i = 40;
  const scale = Number(t.scale);
  await page.mouse.click(
    box.x + Number(t.offsetX) + (overlay.x[i]! + overlay.width[i]! / 2) * scale,
    box.y + Number(t.offsetY) + (overlay.y[i]! + overlay.height[i]! / 2) * scale,
  );
  await page.locator('.neighbour').nth(7).waitFor();
  await page.waitForLoadState('networkidle');
  const target = path.resolve('docs/ui/demo.png');
  await sharp(await page.screenshot())
    .png({ palette: true, colours: 256, compressionLevel: 9, effort: 10 })
    .toFile(target);
  process.stdout.write(`wrote ${target}\n`);
} finally {
  await browser.close();
  await server.close();
  await viewer.close();
}
