/**
 * The result view's routes under /v1 (mounted behind the API keys): the slide's deep-zoom layout,
 * its JPEG tiles, a JPEG of any level-0 region (patch thumbnails) and the patch overlay. They read
 * through a ViewerBackend, so the service and the local viewer answer the same URLs.
 */
import { type Response, Router } from 'express';
import sharp from 'sharp';
import { z } from 'zod';
import type { RgbFrame } from '../codecs/index.js';
import { PathembedError } from '../errors.js';
import { MAX_REGION_SIDE_PX } from '../wsi/slide-tiles.js';
import type { ViewerBackend } from './viewer-backend.js';

/** JPEG quality of tiles and thumbnails: visually lossless for H&E at a third of PNG's bytes. */
export const TILE_JPEG_QUALITY = 90;
/** Tiles of a completed job never change; the browser may keep them (private: behind keys). */
const TILE_CACHE_CONTROL = 'private, max-age=3600';
const TILE_NAME = /^(\d{1,6})_(\d{1,6})\.jpg$/;

export const viewerPaths = {
  slide: (id: string) => `/v1/jobs/${id}/slide`,
  tiles: (id: string) => `/v1/jobs/${id}/tiles`,
  region: (id: string) => `/v1/jobs/${id}/region`,
  overlay: (id: string) => `/v1/jobs/${id}/overlay`,
};

const int = z.coerce.number().int();
const regionQuerySchema = z.strictObject({
  x: int,
  y: int,
  width: int.min(1).max(1_000_000),
  height: int.min(1).max(1_000_000),
  size: int.min(8).max(MAX_REGION_SIDE_PX).default(128),
});

function parseQuery<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => ({ path: i.path.join('.'), reason: i.message }));
  throw new PathembedError(
    'INVALID_ARGUMENT',
    `Invalid query: ${issues.map((i) => `${i.path}: ${i.reason}`).join('; ')}`,
    { issues },
  );
}

async function sendJpeg(res: Response, frame: RgbFrame): Promise<void> {
  const jpeg = await sharp(frame.data, { raw: { width: frame.width, height: frame.height, channels: 3 } })
    .jpeg({ quality: TILE_JPEG_QUALITY })
    .toBuffer();
  res.status(200).type('image/jpeg').set('Cache-Control', TILE_CACHE_CONTROL).send(jpeg);
}

function keyOf(res: Response): string {
  return res.locals.keyId as string;
}

export function viewerRouter(backend: ViewerBackend): Router {
  const router = Router();

  router.get('/jobs/:id/slide', async (req, res) => {
    const lease = await backend.openSlide(req.params.id, keyOf(res));
    try {
      res.json({
        jobId: req.params.id,
        ...lease.tiles.layout,
        tiles: `${viewerPaths.tiles(req.params.id)}/{z}/{x}_{y}.jpg`,
      });
    } finally {
      lease.release();
    }
  });

  router.get('/jobs/:id/tiles/:z/:tile', async (req, res) => {
    const name = TILE_NAME.exec(req.params.tile);
    const z = Number(req.params.z);
    if (!name || !Number.isInteger(z)) {
      throw new PathembedError('NOT_FOUND', `No tile ${req.params.z}/${req.params.tile}`);
    }
    const lease = await backend.openSlide(req.params.id, keyOf(res));
    try {
      await sendJpeg(res, await lease.tiles.tile(z, Number(name[1]), Number(name[2])));
    } finally {
      lease.release();
    }
  });

  router.get('/jobs/:id/region', async (req, res) => {
    const q = parseQuery(regionQuerySchema, req.query);
    const lease = await backend.openSlide(req.params.id, keyOf(res));
    try {
      await sendJpeg(
        res,
        await lease.tiles.region({ x: q.x, y: q.y, width: q.width, height: q.height }, q.size),
      );
    } finally {
      lease.release();
    }
  });

  router.get('/jobs/:id/overlay', async (req, res) => {
    res.set('Cache-Control', 'private, no-cache').json(await backend.overlay(req.params.id, keyOf(res)));
  });

  return router;
}
