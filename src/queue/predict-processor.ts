/**
 * The predict job behind /v1/predict: each item (one request instance) is read and embedded on its
 * own, and an item that fails carries its error while the others still succeed. DICOM items read
 * their patches at the native spacing of the level their instance UIDs name; image items decode a
 * PNG or JPEG, optionally resize it, and cut the patches, padding with black outside the image
 * unless the request requires patches fully inside.
 */
import type { Job } from 'bullmq';
import sharp from 'sharp';
import { PathembedError, toPathembedError } from '../errors.js';
import type { RectPx } from '../geometry.js';
import { encodeChunk } from './chunk-file.js';
import {
  type ImagePredictItem,
  type PredictItem,
  type PredictItemResult,
  type PredictJobData,
  type PredictJobResult,
  predictEmbeddingsKey,
  predictTokenOwner,
} from './predict-jobs.js';
import { jobToken, type WorkerContext } from './worker-context.js';

const CHANNELS = 3;
/** Largest decoded image accepted (pixels), against decompression bombs: 10000 x 10000. */
const MAX_IMAGE_PIXELS = 10_000 * 10_000;

function outsideError(p: RectPx, width: number, height: number): PathembedError {
  return new PathembedError(
    'PATCH_OUTSIDE_IMAGE',
    `Patch at (${p.x}, ${p.y}) size ${p.width}x${p.height} is not fully inside the ${width}x${height} image (require_patches_fully_in_source_image)`,
    { x: p.x, y: p.y, width, height },
  );
}

/** Cuts `p` from an RGB raster; pixels outside are black (Path Foundation pads with zeros). */
export function cutPatch(rgb: Uint8Array, width: number, height: number, p: RectPx): Uint8Array {
  const out = new Uint8Array(p.width * p.height * CHANNELS);
  const x0 = Math.max(0, p.x);
  const x1 = Math.min(width, p.x + p.width);
  if (x1 <= x0) return out;
  for (let row = 0; row < p.height; row++) {
    const y = p.y + row;
    if (y < 0 || y >= height) continue;
    const src = (y * width + x0) * CHANNELS;
    out.set(rgb.subarray(src, src + (x1 - x0) * CHANNELS), (row * p.width + (x0 - p.x)) * CHANNELS);
  }
  return out;
}

async function imagePatches(item: ImagePredictItem): Promise<Uint8Array[]> {
  const bytes = Buffer.from(item.imageBase64, 'base64');
  let image = sharp(bytes, { limitInputPixels: MAX_IMAGE_PIXELS, failOn: 'error' });
  let meta: Awaited<ReturnType<typeof image.metadata>>;
  try {
    meta = await image.metadata();
  } catch (err) {
    throw new PathembedError(
      'FRAME_DECODE_ERROR',
      `raw_image_bytes is not a readable image: ${(err as Error).message}`,
    );
  }
  if (meta.format !== 'png' && meta.format !== 'jpeg') {
    throw new PathembedError(
      'FRAME_DECODE_ERROR',
      `raw_image_bytes is ${meta.format ?? 'unknown'}; send a PNG or JPEG`,
    );
  }
  if (item.resize) image = image.resize(item.resize.width, item.resize.height, { fit: 'fill' });
  let decoded: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    decoded = await image.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new PathembedError(
      'FRAME_DECODE_ERROR',
      `raw_image_bytes could not be decoded: ${(err as Error).message}`,
    );
  }
  let { data, info } = decoded;
  if (info.channels !== CHANNELS) {
    // Greyscale: broadcast to three channels as the model expects RGB.
    const rgb = Buffer.alloc(info.width * info.height * CHANNELS);
    for (let i = 0; i < info.width * info.height; i++)
      rgb.fill(data[i * info.channels]!, i * CHANNELS, i * CHANNELS + CHANNELS);
    data = rgb;
  }
  return item.patches.map((p) => {
    const inside = p.x >= 0 && p.y >= 0 && p.x + p.width <= info.width && p.y + p.height <= info.height;
    if (!inside && item.requireInside) throw outsideError(p, info.width, info.height);
    return cutPatch(data, info.width, info.height, p);
  });
}

async function itemPatches(
  w: WorkerContext,
  requestId: string,
  item: PredictItem,
  signal: AbortSignal,
): Promise<Uint8Array[]> {
  if (item.kind === 'image') return imagePatches(item);
  const token = await jobToken(w, predictTokenOwner(requestId, item.position), item.hasToken);
  return w.pipeline.readDicomPatches(item.source, item.patches, item.requireInside, { token, signal });
}

export async function processPredict(
  w: WorkerContext,
  job: Job<PredictJobData>,
  signal?: AbortSignal,
): Promise<PredictJobResult> {
  const { requestId, items } = job.data;
  const watch = await w.cancels.watch(requestId, signal);
  const results: PredictItemResult[] = [];
  try {
    for (const item of items) {
      try {
        const pixels = await itemPatches(w, requestId, item, watch.signal);
        const vectors = await w.pipeline.embedPixels(pixels);
        const key = predictEmbeddingsKey(requestId, item.position);
        await w.ctx.results.put(
          key,
          encodeChunk(
            0,
            vectors.map((embedding, index) => ({ index, embedding })),
          ),
        );
        results.push({ position: item.position, embeddingsKey: key });
      } catch (err) {
        if (watch.signal.aborted) throw watch.signal.reason;
        const e = toPathembedError(err, 'predict');
        // A transient failure (an overloaded store) is retried as a whole job while attempts
        // remain, through the queue's retry and rate limiting; after that it is the item's error.
        if (e.retryable && job.attemptsMade + 1 < (job.opts.attempts ?? 1)) throw e;
        results.push({ position: item.position, error: { code: e.code, message: e.message } });
      }
    }
  } finally {
    watch.release();
  }
  await w.frames.flush(w.ctx.redis, w.ctx.keys);
  return { items: results };
}
