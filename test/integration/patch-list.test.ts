/**
 * A caller's list of patches read at once (the /v1/predict path) against the same patches read one
 * by one: the same bytes, in the list's order, the frames fetched once in multi-frame requests, and
 * the first failing patch in list order named when several fail. Real slide over DICOMweb from the
 * test Orthanc, real decoders.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameDecoder } from '../../src/codecs/index.js';
import { loadConfig } from '../../src/config.js';
import { DicomWebClient } from '../../src/dicomweb/index.js';
import { retryPolicy } from '../../src/domain-options.js';
import { isPathembedError } from '../../src/errors.js';
import type { RectPx } from '../../src/geometry.js';
import { DicomWebFrameSource } from '../../src/wsi/dicomweb-frame-source.js';
import { FrameCache } from '../../src/wsi/frame-cache.js';
import { readPatchList } from '../../src/wsi/patch-list.js';
import { framesForPatches, PatchReader } from '../../src/wsi/patch-reader.js';
import { readResizedPatch } from '../../src/wsi/resized-level.js';
import { openSlide, type Slide } from '../../src/wsi/slide.js';
import { fixture } from '../helpers/services.js';

const config = loadConfig({});
const FRAMES_PER_REQUEST = 16;
let decoder: FrameDecoder;

beforeAll(() => {
  decoder = new FrameDecoder({ decodeThreads: 2 });
});
afterAll(async () => {
  await decoder.close();
});

async function open(): Promise<{ slide: Slide; source: DicomWebFrameSource; reader: PatchReader }> {
  const client = new DicomWebClient({
    allowedStores: config.PATHEMBED_ALLOWED_STORES,
    retry: retryPolicy(config),
    framesPerRequest: FRAMES_PER_REQUEST,
    storeConcurrency: config.PATHEMBED_STORE_CONCURRENCY,
  });
  const source = new DicomWebFrameSource(client, fixture('cmu-jpeg').seriesUrl);
  const slide = await openSlide(source);
  const cache = new FrameCache(source, decoder, { maxBytes: 256 * 1024 * 1024 });
  return {
    slide,
    source,
    reader: new PatchReader(cache, { levelTolerance: config.PATHEMBED_LEVEL_TOLERANCE }),
  };
}

/** 40 patches scattered over level 0 (2220 x 2967), some overlapping, two crossing its right edge. */
const PATCHES: RectPx[] = Array.from({ length: 40 }, (_, i) => ({
  x: (i * 613) % 2100,
  y: (i * 1237) % 2800,
  width: 224,
  height: 224,
}));

describe('readPatchList', () => {
  it('gives the bytes of the patches read one by one, in order, each frame fetched once in multi-frame requests', async () => {
    const one = await open();
    const list = await open();
    try {
      const level = one.slide.level(0);
      const expected: Uint8Array[] = [];
      for (const p of PATCHES)
        expected.push((await one.reader.readRegion(level, p.x, p.y, p.width, p.height)).data);
      const got = await readPatchList(list.reader, list.slide.level(0), PATCHES);
      expect(got).toHaveLength(PATCHES.length);
      for (const [i, data] of got.entries()) expect(Buffer.compare(data, expected[i]!), `patch ${i}`).toBe(0);
      const frames = framesForPatches({ level, scale: 1 }, PATCHES).length;
      expect(list.source.stats.frames).toBe(frames);
      // One by one, each patch asks for its own frames: about one request a patch.
      expect(one.source.stats.requests).toBeGreaterThanOrEqual(PATCHES.length / 2);
      expect(list.source.stats.requests).toBeLessThanOrEqual(Math.ceil(frames / FRAMES_PER_REQUEST) + 1);
    } finally {
      await one.slide.close();
      await list.slide.close();
    }
  });

  it('reads patches given in a resized image as readResizedPatch does', async () => {
    const { slide, reader } = await open();
    try {
      const level = slide.level(1);
      const size = { widthPx: 700, heightPx: 900 };
      const patches = PATCHES.slice(0, 12).map((p) => ({
        x: p.x % 480,
        y: p.y % 680,
        width: 224,
        height: 224,
      }));
      const got = await readPatchList(reader, level, patches, { size });
      for (const [i, p] of patches.entries()) {
        const alone = await readResizedPatch(reader, level, size, p);
        expect(Buffer.compare(got[i]!, alone.data), `patch ${i}`).toBe(0);
      }
    } finally {
      await slide.close();
    }
  });

  it('fails with the first patch outside the image in list order, as one by one would', async () => {
    const { slide, reader } = await open();
    try {
      const level = slide.level(0);
      const patches = [
        PATCHES[0]!,
        { x: 2100, y: 10, width: 224, height: 224 },
        PATCHES[1]!,
        { x: 5, y: 2900, width: 224, height: 224 },
      ];
      const err = await readPatchList(reader, level, patches, { requireInside: true }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isPathembedError(err, 'PATCH_OUTSIDE_IMAGE')).toBe(true);
      expect((err as { details: Record<string, unknown> }).details).toMatchObject({ x: 2100, y: 10 });
    } finally {
      await slide.close();
    }
  });
});
