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
import { resizeLikeGoogle } from '../wsi/opencv-resize.js';
import { encodeChunk } from './chunk-file.js';
import {
  type ImagePredictItem,
  type PatchImagesPredictItem,
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

interface DecodedRgb {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  /** The image's embedded ICC profile, if any. */
  readonly icc?: Uint8Array;
}

/** Decodes a base64 PNG or JPEG to RGB (greyscale broadcast, alpha dropped), optionally resized. */
async function decodeRgb(
  base64: string,
  what: string,
  resize?: { readonly width: number; readonly height: number },
): Promise<DecodedRgb> {
  const bytes = Buffer.from(base64, 'base64');
  // Node's base64 decoding skips what is not base64: text such as "@@@###" decodes to no bytes.
  if (bytes.length === 0) {
    throw new PathembedError(
      'FRAME_DECODE_ERROR',
      `${what} decodes to no bytes; send the PNG or JPEG file in base64`,
    );
  }
  const image = sharp(bytes, { limitInputPixels: MAX_IMAGE_PIXELS, failOn: 'error' });
  let meta: Awaited<ReturnType<typeof image.metadata>>;
  try {
    meta = await image.metadata();
  } catch (err) {
    throw new PathembedError(
      'FRAME_DECODE_ERROR',
      `${what} is not a readable image: ${(err as Error).message}`,
    );
  }
  if (meta.format !== 'png' && meta.format !== 'jpeg') {
    throw new PathembedError(
      'FRAME_DECODE_ERROR',
      `${what} is ${meta.format ?? 'unknown'}; send a PNG or JPEG`,
    );
  }
  let decoded: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    // The stored values, not converted through an embedded profile: Google's server (Pillow) reads
    // them so, and transforms only when transform_imaging_to_icc_profile asks for it.
    decoded = await image.removeAlpha().keepIccProfile().raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new PathembedError('FRAME_DECODE_ERROR', `${what} could not be decoded: ${(err as Error).message}`);
  }
  let { data, info } = decoded;
  if (info.channels !== CHANNELS) {
    // Greyscale: broadcast to three channels as the model expects RGB.
    const rgb = Buffer.alloc(info.width * info.height * CHANNELS);
    for (let i = 0; i < info.width * info.height; i++)
      rgb.fill(data[i * info.channels]!, i * CHANNELS, i * CHANNELS + CHANNELS);
    data = rgb;
  }
  const icc = meta.icc ? { icc: new Uint8Array(meta.icc) } : {};
  if (resize && (resize.width !== info.width || resize.height !== info.height)) {
    // Resized after decoding by OpenCV itself, as Google's server resizes (src/wsi/opencv-resize.ts).
    const resized = await resizeLikeGoogle(
      { width: info.width, height: info.height, data },
      resize.width,
      resize.height,
    );
    return { data: resized.data, width: resized.width, height: resized.height, ...icc };
  }
  return { data, width: info.width, height: info.height, ...icc };
}

async function imagePatches(w: WorkerContext, item: ImagePredictItem): Promise<Uint8Array[]> {
  const { data, width, height, icc } = await decodeRgb(item.imageBase64, 'raw_image_bytes', item.resize);
  let transform: ((rgb: Uint8Array) => Uint8Array) | undefined;
  if (item.icc && icc) {
    if (item.clientTransformed) {
      throw new PathembedError(
        'EZ_WSI_STATE_INVALID',
        `Duplicate ICC profile transformations: the client transformed the image to ${item.icc} and it still carries an ICC profile`,
      );
    }
    transform = await w.pipeline.iccTransform(icc, item.icc);
  }
  return item.patches.map((p) => {
    const inside = p.x >= 0 && p.y >= 0 && p.x + p.width <= width && p.y + p.height <= height;
    if (!inside && item.requireInside) throw outsideError(p, width, height);
    const patch = cutPatch(data, width, height, p);
    return transform ? transform(patch) : patch;
  });
}

/** Patches the client cut and encoded itself, each checked to be the size its coordinate says. */
async function patchImages(item: PatchImagesPredictItem): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (const [i, p] of item.patches.entries()) {
    const image = item.patchImagesBase64[i];
    if (image === undefined)
      throw new PathembedError('EZ_WSI_STATE_INVALID', `ez_wsi_state.patches has no image for patch ${i}`);
    const rgb = await decodeRgb(image, `ez_wsi_state.patches[${i}]`);
    if (rgb.width !== p.width || rgb.height !== p.height) {
      throw new PathembedError(
        'FRAME_DECODE_ERROR',
        `ez_wsi_state.patches[${i}] is ${rgb.width}x${rgb.height}; its patch coordinate says ${p.width}x${p.height}`,
      );
    }
    // As Google checks it: the patch's size against the source image's, its position unknown.
    const src = item.sourceSize;
    if (item.requireInside && src && (p.width > src.width || p.height > src.height)) {
      throw outsideError(p, src.width, src.height);
    }
    out.push(rgb.data);
  }
  return out;
}

async function itemPatches(
  w: WorkerContext,
  requestId: string,
  item: PredictItem,
  signal: AbortSignal,
): Promise<Uint8Array[]> {
  if (item.kind === 'image') return imagePatches(w, item);
  if (item.kind === 'patch-images') return patchImages(item);
  const token = await jobToken(w.ctx, predictTokenOwner(requestId, item.position), item.hasToken);
  return w.pipeline.readDicomPatches(
    item.source,
    item.patches,
    item.requireInside,
    { token, signal },
    { ...(item.resize ? { resize: item.resize } : {}), ...(item.icc ? { icc: item.icc } : {}) },
  );
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
