/**
 * /v1/predict as a drop-in for Google's Path Foundation endpoint, end to end: a real Express app,
 * real Redis (a random queue prefix), an in-process worker with the real model, slides in the test
 * Orthanc. The request bodies are shaped as EZ-WSI's PathFoundationsEmbeddingEndpoint builds them
 * (DICOM patches of a resized level; LocalImage as gs:///placeholder.png with the image or the cut
 * patches in ez_wsi_state), and the answers are checked against Google's documented behaviour:
 * codes, request-level `{"error": "CODE"}` with HTTP 200, `{"predictions": []}`, HTTP 400 only for
 * a body that is not JSON.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDefaultModel } from '../../models/default-model.js';
import { type Api, createApi } from '../../src/api/app.js';
import { type Listening, listen } from '../../src/api/server.js';
import { type Config, loadConfig } from '../../src/config.js';
import { engineOptions } from '../../src/domain-options.js';
import { EmbeddingEngine } from '../../src/embed/index.js';
import { createPipelinePort } from '../../src/queue/pipeline-adapter.js';
import { FrameFetchRecorder } from '../../src/queue/service-metrics.js';
import { WorkerRuntime } from '../../src/queue/worker-runtime.js';
import { encodeCoordinatePixel } from '../../src/sample/pixel-patterns.js';
import { syntheticSlideIccProfile } from '../../src/sample/synthetic-wsi-writer.js';
import { startGcsFakeServer } from '../helpers/gcs-fake-server.js';
import { pythonEnv } from '../helpers/python-env.js';
import { scanKeys } from '../helpers/redis.js';
import { fixture, services } from '../helpers/services.js';

const API_KEY = `key-${randomBytes(8).toString('hex')}`;
const PREFIX = `pe-test-compat-${randomBytes(4).toString('hex')}`;
const MAX_PREDICT_PATCHES = 40;
const logger = pino({ level: 'silent' });

let config: Config;
let api: Api;
let server: Listening;
let runtime: WorkerRuntime;
let resultsDir: string;
let redis: Redis;

beforeAll(async () => {
  const { redisUrl, dicomWebUrl } = services();
  resultsDir = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-compat-'));
  config = loadConfig({
    REDIS_URL: redisUrl,
    PATHEMBED_QUEUE_PREFIX: PREFIX,
    PATHEMBED_RESULTS_DIR: resultsDir,
    PATHEMBED_API_KEYS: API_KEY,
    PATHEMBED_TOKEN_KEY: randomBytes(32).toString('hex'),
    PATHEMBED_ALLOWED_STORES: new URL(dicomWebUrl).origin,
    PATHEMBED_EXECUTION_PROVIDER: 'cpu',
    PATHEMBED_INTRA_OP_THREADS: '2',
    PATHEMBED_BATCH_SIZE: '8',
    PATHEMBED_MAX_PREDICT_PATCHES: String(MAX_PREDICT_PATCHES),
    PATHEMBED_PREDICT_TIMEOUT_MS: '120000',
    PATHEMBED_LOCK_DURATION_MS: '30000',
  });
  redis = new Redis(redisUrl);
  await ensureDefaultModel(engineOptions(config), logger);
  const engine = await EmbeddingEngine.open(engineOptions(config), logger);
  const frames = new FrameFetchRecorder();
  runtime = await WorkerRuntime.start(
    { config, logger, pipeline: createPipelinePort(config, logger, engine, { frames }), frames },
    { workerId: 'compat-test-worker' },
  );
  api = await createApi(config, logger);
  server = await listen(api.app, '127.0.0.1', 0);
});

afterAll(async () => {
  await server?.close();
  await api?.close();
  await runtime?.close();
  const keys = redis ? await scanKeys(redis, PREFIX) : [];
  if (keys.length > 0) await redis.del(...keys);
  redis?.disconnect();
  if (resultsDir) await fs.rm(resultsDir, { recursive: true, force: true });
});

async function predict(
  body: unknown,
  contentType = 'application/json',
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server.url}/v1/predict`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': contentType },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) };
}

const coord = (x: number, y: number) => ({ x_origin: x, y_origin: y, width: 224, height: 224 });

/** The VOLUME instances of the fixture's series by level width, from Orthanc's WADO-RS metadata. */
async function levelInstances(seriesUrl: string): Promise<Map<number, string[]>> {
  const res = await fetch(`${seriesUrl}/metadata`, { headers: { accept: 'application/dicom+json' } });
  const datasets = (await res.json()) as Array<Record<string, { Value?: unknown[] }>>;
  const byWidth = new Map<number, string[]>();
  for (const ds of datasets) {
    const imageType = (ds['00080008']?.Value ?? []) as string[];
    if (!imageType.includes('VOLUME')) continue;
    const width = ds['00480006']?.Value?.[0] as number;
    const uid = ds['00080018']?.Value?.[0] as string;
    byWidth.set(width, [...(byWidth.get(width) ?? []), uid]);
  }
  return byWidth;
}

function vector(prediction: { result: { patch_embeddings: Array<{ embedding_vector: number[] }> } }, i = 0) {
  return prediction.result.patch_embeddings[i].embedding_vector;
}

function maxAbsDiff(a: number[], b: number[]): number {
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

async function pngOf(rgb: Uint8Array, width: number, height: number): Promise<string> {
  return (
    await sharp(Buffer.from(rgb), { raw: { width, height, channels: 3 } })
      .png()
      .toBuffer()
  ).toString('base64');
}

/** pathembed's built-in SRGB and ROMMRGB targets (src/wsi/icc-profiles), the files Google's client ships. */
const SRGB_V4 = path.resolve('src/wsi/icc-profiles/sRGB_v4_ICC_preference.icc');
const ROMM = path.resolve('src/wsi/icc-profiles/ISO22028-2_ROMM-RGB.icc');
const COLORD_ADOBE = '/usr/share/color/icc/colord/AdobeRGB1998.icc';

/**
 * 224 x 224 RGB pixels transformed from `source` (ICC bytes) to the profile file `target` the way
 * Google's server does it: Pillow's ImageCms, perceptual intent. An implementation of its own
 * (Pillow's LittleCMS binding, in Python) beside pathembed's lcms-wasm.
 */
async function pillowTransform(rgb: Uint8Array, source: Uint8Array, target: string): Promise<Uint8Array> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-icc-'));
  try {
    await fs.writeFile(path.join(dir, 'in.rgb'), rgb);
    await fs.writeFile(path.join(dir, 'src.icc'), source);
    const py = await pythonEnv();
    await py.run(
      [
        'import io, sys',
        'from PIL import Image, ImageCms',
        'd, target = sys.argv[1], sys.argv[2]',
        "img = Image.frombytes('RGB', (224, 224), open(d + '/in.rgb', 'rb').read())",
        "src = ImageCms.getOpenProfile(io.BytesIO(open(d + '/src.icc', 'rb').read()))",
        'dst = ImageCms.getOpenProfile(target)',
        "t = ImageCms.buildTransform(src, dst, 'RGB', 'RGB', ImageCms.Intent.PERCEPTUAL)",
        "open(d + '/out.rgb', 'wb').write(ImageCms.applyTransform(img, t).tobytes())",
      ].join('\n'),
      [dir, target],
    );
    return new Uint8Array(await fs.readFile(path.join(dir, 'out.rgb')));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** The profile the synthetic slides carry (libvips' sRGB), as bytes. */
async function libvipsSrgb(): Promise<Uint8Array> {
  return new Uint8Array(await syntheticSlideIccProfile());
}

/**
 * The 224 x 224 patch (x, y) of synthetic-full's 1000 x 700 level 0 resized to `w` x `h`, computed
 * here from the coordinate pattern: the level block Google reads (Python rounding), area-averaged.
 */
function resizedPatchReference(x: number, y: number, w: number, h: number): Uint8Array {
  const W = 1000;
  const H = 700;
  const pyRound = (v: number) => {
    const lo = Math.floor(v);
    if (v - lo !== 0.5) return Math.round(v);
    return lo % 2 === 0 ? lo : lo + 1;
  };
  const bx0 = pyRound((x * W) / w);
  const by0 = pyRound((y * H) / h);
  const sx = (pyRound(((x + 224) * W) / w) - bx0) / 224;
  const sy = (pyRound(((y + 224) * H) / h) - by0) / 224;
  const out = new Uint8Array(224 * 224 * 3);
  for (let j = 0; j < 224; j++) {
    for (let i = 0; i < 224; i++) {
      const x0 = bx0 + i * sx;
      const x1 = x0 + sx;
      const y0 = by0 + j * sy;
      const y1 = y0 + sy;
      const sum = [0, 0, 0];
      let area = 0;
      for (let v = Math.floor(y0); v < Math.ceil(y1); v++) {
        for (let u = Math.floor(x0); u < Math.ceil(x1); u++) {
          const a = (Math.min(u + 1, x1) - Math.max(u, x0)) * (Math.min(v + 1, y1) - Math.max(v, y0));
          if (a <= 0) continue;
          const px = u < W && v < H ? encodeCoordinatePixel(u, v) : [0, 0, 0];
          for (let c = 0; c < 3; c++) sum[c] += a * px[c];
          area += a;
        }
      }
      for (let c = 0; c < 3; c++) out[(j * 224 + i) * 3 + c] = Math.round(sum[c] / area);
    }
  }
  return out;
}

describe("request-level answers shaped like Google's", () => {
  it('answers HTTP 200 {"error": "CODE"} for a request refused as a whole', async () => {
    const series = fixture('synthetic-full').seriesUrl;
    const cases: Array<[unknown, string]> = [
      [{}, 'INVALID_REQUEST_FIELD_ERROR'],
      [{ instances: 'x' }, 'INVALID_REQUEST_FIELD_ERROR'],
      [{ instances: [{ dicom_path: { series_path: series } }] }, 'INVALID_REQUEST_FIELD_ERROR'],
      [
        { instances: [{ dicom_path: { series_path: series }, patch_coordinates: [] }] },
        'INVALID_REQUEST_FIELD_ERROR',
      ],
      [
        {
          instances: [
            { dicom_path: { series_path: series }, patch_coordinates: [{ x_origin: 'a', y_origin: 0 }] },
          ],
        },
        'INVALID_REQUEST_FIELD_ERROR',
      ],
      [
        {
          instances: [
            { dicom_path: { series_path: series }, patch_coordinates: [coord(0, 0)] },
            { dicom_path: { series_path: series }, patch_coordinates: [{ ...coord(0, 0), width: 256 }] },
          ],
        },
        'PATCH_DIMENSIONS_DO_NOT_MATCH_ENDPOINT_INPUT_DIMENSIONS_ERROR',
      ],
      [
        {
          instances: [
            {
              dicom_path: { series_path: series },
              patch_coordinates: Array.from({ length: MAX_PREDICT_PATCHES + 1 }, () => coord(0, 0)),
            },
          ],
        },
        'TOO_MANY_PATCHES_ERROR',
      ],
    ];
    for (const [body, code] of cases) {
      const res = await predict(body);
      expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { error: code } });
    }
    expect(await predict({ instances: [] })).toEqual({ status: 200, body: { predictions: [] } });
    expect((await predict('{"instances": [', 'application/json')).status).toBe(400);
    expect((await predict('instances', 'text/plain')).status).toBe(400);
  });
});

describe('DICOM instances as EZ-WSI sends them', () => {
  it('resizes the named level to image_dimensions by area averaging, coordinates in the resized image', async () => {
    const f = fixture('synthetic-full');
    const levels = await levelInstances(f.seriesUrl);
    const level0 = levels.get(1000) as string[];
    expect(level0).toHaveLength(1);
    const [w, h] = [450, 300];
    const reference = await pngOf(resizedPatchReference(13, 29, w, h), 224, 224);
    // As EZ-WSI's client builds it for level.resize(ImageDimensions(450, 300)).get_patch(13, 29, ...).
    const ezWsi = {
      dicom_path: { series_path: f.seriesUrl, instance_uids: level0 },
      extensions: {
        require_patches_fully_in_source_image: 'True',
        image_dimensions: { width_px: w, height_px: h },
        transform_imaging_to_icc_profile: 'NONE',
        ez_wsi_state: { sop_class_uid: '1.2.840.10008.5.1.4.1.1.77.1.6', slide_path: {}, level_map: {} },
      },
      patch_coordinates: [coord(13, 29)],
    };
    const res = await predict({
      instances: [
        ezWsi,
        { ...ezWsi, extensions: { ...ezWsi.extensions, image_dimensions: undefined } },
        { raw_image_bytes: reference, patch_coordinates: [coord(0, 0)] },
      ],
    });
    expect(res.status).toBe(200);
    const [resized, unresized, fromReference] = res.body.predictions.map((p: never) => vector(p));
    // The same pixels as the independent area average: the same vector.
    expect(maxAbsDiff(resized, fromReference)).toBeLessThan(1e-4);
    // And not the level-0 patch pathembed used to return.
    expect(maxAbsDiff(resized, unresized)).toBeGreaterThan(0.05);
  });

  it("answers Google's codes for paths, levels, downsampling, ez_wsi_state, and ignores unknown keys", async () => {
    const f = fixture('synthetic-full');
    const levels = await levelInstances(f.seriesUrl);
    const [l0, l1] = [levels.get(1000) as string[], levels.get(500) as string[]];
    const base = (extra: Record<string, unknown> = {}, uids: string[] = l0) => ({
      dicom_path: { series_path: f.seriesUrl, instance_uids: uids },
      patch_coordinates: [coord(10, 20)],
      ...extra,
    });
    const missingSeries = f.seriesUrl.replace(/series\/[0-9.]+$/, 'series/1.2.3.999');
    const res = await predict({
      instances: [
        { ...base(), dicom_path: { series_path: missingSeries, instance_uids: l0 } },
        base({}, ['1.2.3.4.5.999']),
        base({}, [...l0, ...l1]),
        base({ extensions: { image_dimensions: { width_px: 100, height_px: 80 } } }),
        base({ extensions: { ez_wsi_state: 'not a dict' } }),
        base({ extensions: { EGF: 'QRS' }, bearer_token: '', unknown: { a: 1 } }),
        base({ extensions: { transform_imaging_to_icc_profile: 'PROPHOTO' } }),
        base({ extensions: { image_dimensions: { width_px: 200, height_px: 140 } } }),
      ],
    });
    expect(res.status).toBe(200);
    const codes = res.body.predictions.map((p: { error?: { code: string } }) => p.error?.code ?? 'OK');
    expect(codes).toEqual([
      'DICOM_PATH_ERROR',
      'DICOM_PATH_ERROR',
      'INSTANCES_NOT_CONCATENATED_ERROR',
      'DICOM_IMAGE_DOWNSAMPLING_TOO_LARGE_ERROR',
      'EZ_WSI_STATE_ERROR',
      'OK',
      'INVALID_ICC_PROFILE_TRANSFORM_ERROR',
      // 200 x 140 of 1000 x 700 is 5x: allowed, but (10, 20) + 224 is outside the resized image.
      'PATCH_OUTSIDE_OF_IMAGE_DIMENSIONS_ERROR',
    ]);
  });
});

describe('in-memory images as EZ-WSI sends them', () => {
  it('reads raw_image_bytes as a base64 string and LocalImage as gs:///placeholder.png with ez_wsi_state', async () => {
    const width = 300;
    const height = 260;
    const rgb = new Uint8Array(width * height * 3);
    for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 37 + (i >> 7)) % 251;
    const png = await pngOf(rgb, width, height);
    const cut = new Uint8Array(224 * 224 * 3);
    for (let y = 0; y < 224; y++)
      cut.set(rgb.subarray(((y + 20) * width + 40) * 3, ((y + 20) * width + 264) * 3), y * 224 * 3);
    const cutPng = await pngOf(cut, 224, 224);
    const ext = { require_patches_fully_in_source_image: 'True', transform_imaging_to_icc_profile: 'NONE' };
    const res = await predict({
      instances: [
        { raw_image_bytes: png, patch_coordinates: [coord(40, 20)], extensions: ext },
        {
          image_file_uri: 'gs:///placeholder.png',
          extensions: { ...ext, ez_wsi_state: { image: png, icc_profile_metadata_normalization: 'NONE' } },
          patch_coordinates: [coord(40, 20)],
        },
        {
          image_file_uri: 'gs:///placeholder.png',
          extensions: {
            ...ext,
            ez_wsi_state: {
              source_image_width_px: width,
              source_image_height_px: height,
              icc_profile_metadata_normalization: 'NONE',
              patches: [cutPng],
            },
          },
          patch_coordinates: [coord(40, 20)],
        },
        {
          image_file_uri: 'gs:///placeholder.png',
          extensions: { ez_wsi_state: { patches: [cutPng, cutPng] } },
          patch_coordinates: [coord(40, 20)],
        },
        {
          image_file_uri: 'gs:///placeholder.png',
          extensions: { ez_wsi_state: { image: 'not base64!' } },
          patch_coordinates: [coord(40, 20)],
        },
        {
          raw_image_bytes: png,
          patch_coordinates: [coord(0, 0)],
          extensions: { image_dimensions: { width_px: 10_001, height_px: 10 } },
        },
        { image_file_uri: 'https://example.com/x.png', patch_coordinates: [coord(0, 0)] },
      ],
    });
    expect(res.status).toBe(200);
    const p = res.body.predictions;
    const direct = vector(p[0]);
    expect(direct).toHaveLength(384);
    expect(vector(p[1])).toEqual(direct);
    expect(vector(p[2])).toEqual(direct);
    expect(p.slice(3).map((x: { error: { code: string } }) => x.error.code)).toEqual([
      'EZ_WSI_STATE_ERROR',
      'IMAGE_ERROR',
      'IMAGE_DIMENSION_ERROR',
      'GCS_IMAGE_PATH_FORMAT_ERROR',
    ]);
  });
});

describe('bearer_token', () => {
  it('is no token when empty, and is refused with a clear message where PATHEMBED_TOKEN_KEY is unset', async () => {
    // A second API on the same queue, without the key: tokens cannot be sealed, so none is taken.
    const keyless = await createApi(Object.freeze({ ...config, PATHEMBED_TOKEN_KEY: undefined }), logger);
    const l = await listen(keyless.app, '127.0.0.1', 0);
    try {
      const instance = (token: string) => ({
        dicom_path: { series_path: fixture('synthetic-full').seriesUrl },
        patch_coordinates: [coord(10, 20)],
        bearer_token: token,
      });
      const res = await fetch(`${l.url}/v1/predict`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ instances: [instance(''), instance('ya29.secret')] }),
      });
      expect(res.status).toBe(200);
      const { predictions } = (await res.json()) as {
        predictions: Array<{
          result?: { patch_embeddings: unknown[] };
          error?: { code: string; description: string };
        }>;
      };
      expect(predictions[0].result?.patch_embeddings).toHaveLength(1);
      expect(predictions[1].error?.code).toBe('INVALID_REQUEST_FIELD_ERROR');
      expect(predictions[1].error?.description).toMatch(/bearer_token.*PATHEMBED_TOKEN_KEY is not set/);
      expect(predictions[1].error?.description).not.toMatch(/ya29/);
    } finally {
      await l.close();
      await keyless.close();
    }
  });
});

describe('transform_imaging_to_icc_profile', () => {
  /** synthetic-full's level-0 patch at (x, y), from the coordinate pattern it was written with. */
  function level0Patch(x: number, y: number): Uint8Array {
    const out = new Uint8Array(224 * 224 * 3);
    for (let j = 0; j < 224; j++)
      for (let i = 0; i < 224; i++) out.set(encodeCoordinatePixel(x + i, y + j), (j * 224 + i) * 3);
    return out;
  }

  it('transforms DICOM patches from the slide profile (fetched as bulk data) and leaves profile-less slides alone', async () => {
    const synthetic = fixture('synthetic-full').seriesUrl;
    const camelyon = fixture('camelyon').seriesUrl;
    const dicom = (series: string, icc: string, x = 10, y = 20) => ({
      dicom_path: { series_path: series },
      patch_coordinates: [coord(x, y)],
      extensions: { transform_imaging_to_icc_profile: icc },
    });
    const stored = level0Patch(10, 20);
    const slideProfile = await libvipsSrgb();
    const [toSrgb, toAdobe, toRomm] = await Promise.all(
      [SRGB_V4, COLORD_ADOBE, ROMM].map((target) => pillowTransform(stored, slideProfile, target)),
    );
    const res = await predict({
      instances: [
        dicom(synthetic, 'NONE'),
        dicom(synthetic, 'SRGB'),
        dicom(synthetic, 'ADOBERGB'),
        { raw_image_bytes: await pngOf(toAdobe, 224, 224), patch_coordinates: [coord(0, 0)] },
        dicom(camelyon, 'NONE', 100, 100),
        dicom(camelyon, 'ADOBERGB', 100, 100),
        dicom(synthetic, 'ROMMRGB'),
        dicom(synthetic, 'DISPLAYP3'),
        { raw_image_bytes: await pngOf(toSrgb, 224, 224), patch_coordinates: [coord(0, 0)] },
        { raw_image_bytes: await pngOf(toRomm, 224, 224), patch_coordinates: [coord(0, 0)] },
      ],
    });
    expect(res.status).toBe(200);
    const [none, srgb, adobe, adobeReference, camNone, camAdobe, romm, p3, srgbReference, rommReference] =
      res.body.predictions.map((p: never) => vector(p));
    // Each target equals Pillow's transform (Google's method) of the same tile pixels to the same
    // profile file. SRGB is the ICC's v4 preference profile, as Google's: a LUT profile whose
    // perceptual rendering moves even sRGB pixels, so it is not the identity on this sRGB slide.
    expect(maxAbsDiff(srgb, srgbReference)).toBeLessThan(1e-4);
    expect(maxAbsDiff(adobe, adobeReference)).toBeLessThan(1e-4);
    expect(maxAbsDiff(romm, rommReference)).toBeLessThan(1e-4);
    expect(maxAbsDiff(srgb, none)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(adobe, none)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(romm, none)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(p3, none)).toBeGreaterThan(1e-3);
    // Camelyon has no ICC profile: embedded as stored, whatever the request asks.
    expect(camAdobe).toEqual(camNone);
  });

  it('transforms images from their embedded profile, and refuses what Google refuses in ez_wsi_state', async () => {
    const stored = level0Patch(300, 100);
    const plain = await pngOf(stored, 224, 224);
    const taggedPng = await sharp(Buffer.from(stored), { raw: { width: 224, height: 224, channels: 3 } })
      .withIccProfile('/usr/share/color/icc/colord/AdobeRGB1998.icc')
      .png()
      .toBuffer();
    const storedInTagged = new Uint8Array(await sharp(taggedPng).keepIccProfile().raw().toBuffer());
    // Pillow's transform of those Adobe RGB values into the sRGB v4 profile: what SRGB must embed.
    const toSrgb = await pillowTransform(
      storedInTagged,
      new Uint8Array(await fs.readFile(COLORD_ADOBE)),
      SRGB_V4,
    );
    const res = await predict({
      instances: [
        { raw_image_bytes: taggedPng.toString('base64'), patch_coordinates: [coord(0, 0)] },
        { raw_image_bytes: await pngOf(storedInTagged, 224, 224), patch_coordinates: [coord(0, 0)] },
        {
          raw_image_bytes: taggedPng.toString('base64'),
          patch_coordinates: [coord(0, 0)],
          extensions: { transform_imaging_to_icc_profile: 'SRGB' },
        },
        { raw_image_bytes: await pngOf(toSrgb, 224, 224), patch_coordinates: [coord(0, 0)] },
        {
          image_file_uri: 'gs:///placeholder.png',
          patch_coordinates: [coord(0, 0)],
          extensions: {
            transform_imaging_to_icc_profile: 'SRGB',
            ez_wsi_state: { image: plain, icc_profile_metadata_normalization: 'ADOBERGB' },
          },
        },
        {
          image_file_uri: 'gs:///placeholder.png',
          patch_coordinates: [coord(0, 0)],
          extensions: {
            transform_imaging_to_icc_profile: 'SRGB',
            ez_wsi_state: { image: taggedPng.toString('base64'), icc_profile_metadata_normalization: 'SRGB' },
          },
        },
        {
          raw_image_bytes: plain,
          patch_coordinates: [coord(0, 0)],
          extensions: { transform_imaging_to_icc_profile: 'PROPHOTO' },
        },
      ],
    });
    expect(res.status).toBe(200);
    const p = res.body.predictions;
    // NONE embeds the stored values, not a conversion through the embedded profile.
    expect(vector(p[0])).toEqual(vector(p[1]));
    expect(maxAbsDiff(vector(p[2]), vector(p[3]))).toBeLessThan(1e-4);
    expect(maxAbsDiff(vector(p[2]), vector(p[0]))).toBeGreaterThan(1e-3);
    expect(p.slice(4).map((x: { error: { code: string } }) => x.error.code)).toEqual([
      'EZ_WSI_STATE_ERROR',
      'EZ_WSI_STATE_ERROR',
      'INVALID_ICC_PROFILE_TRANSFORM_ERROR',
    ]);
  });
});

describe('jobs: ICC transform and magnification options', () => {
  async function call(method: string, route: string, body?: unknown) {
    const res = await fetch(`${server.url}${route}`, {
      method,
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
    return { status: res.status, body: (await res.json()) as any };
  }

  async function finished(id: string) {
    const deadline = Date.now() + 100_000;
    while (Date.now() < deadline) {
      const res = await call('GET', `/v1/jobs/${id}`);
      if (['completed', 'failed', 'cancelled'].includes(res.body.state)) return res.body;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`job ${id} did not finish`);
  }

  function embeddingOf(patch: { embedding: number[] | string }): number[] {
    if (Array.isArray(patch.embedding)) return patch.embedding;
    const b = Buffer.from(patch.embedding, 'base64');
    return Array.from(new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4));
  }

  it('embeds a job in the asked ICC profile, as /v1/predict does, and takes "20X" as 0.5 um/px', async () => {
    const series = fixture('synthetic-full').seriesUrl;
    const submitted = await call('POST', '/v1/jobs', {
      sources: [series],
      options: { patches: [{ x: 10, y: 20 }], iccProfile: 'ADOBERGB', magnification: '20X' },
    });
    expect(submitted.status).toBe(202);
    const job = await finished(submitted.body.jobs[0].id);
    expect(job.state).toBe('completed');
    const result = await call('GET', job.results.json);
    const fromJob = embeddingOf(result.body.patches[0]);

    const predicted = await predict({
      instances: [
        {
          dicom_path: { series_path: series },
          patch_coordinates: [coord(10, 20)],
          extensions: { transform_imaging_to_icc_profile: 'ADOBERGB' },
        },
        { dicom_path: { series_path: series }, patch_coordinates: [coord(10, 20)] },
      ],
    });
    const [adobe, none] = predicted.body.predictions.map((p: never) => vector(p));
    expect(maxAbsDiff(fromJob, adobe)).toBeLessThan(1e-4);
    expect(maxAbsDiff(fromJob, none)).toBeGreaterThan(1e-3);

    // "20X" is 0.5 um/px: the same job as asking for the spacing, so the repeat finds it.
    const same = await call('POST', '/v1/jobs', {
      sources: [series],
      options: { patches: [{ x: 10, y: 20 }], iccProfile: 'ADOBERGB', pixelSpacingUm: 0.5 },
    });
    expect(same.body.jobs[0]).toMatchObject({ id: job.id, existing: true });
    // "10X" (1 um/px) reads synthetic-full's 2x level.
    const tenX = await call('POST', '/v1/jobs', {
      sources: [series],
      options: { patches: [{ x: 0, y: 0 }], magnification: '10x' },
    });
    const tenXJob = await finished(tenX.body.jobs[0].id);
    const tenXResult = await call('GET', tenXJob.results.json);
    expect(tenXResult.body.level.index).toBe(1);
    const bad = await call('POST', '/v1/jobs', { sources: [series], options: { magnification: '15X' } });
    expect(bad.status).toBe(400);
    const both = await call('POST', '/v1/jobs', {
      sources: [series],
      options: { magnification: '20X', pixelSpacingUm: 0.5 },
    });
    expect(both.status).toBe(400);
  });
});

describe('image_file_uri on Cloud Storage', () => {
  it('reads gs://bucket/object with the bearer token, refuses unapproved buckets, maps errors to Google codes', async () => {
    const gcs = await startGcsFakeServer();
    const withGcs = await createApi(
      Object.freeze({
        ...config,
        PATHEMBED_ALLOWED_GCS: ['gs://slides-bucket/'],
        PATHEMBED_GCS_ENDPOINT: gcs.url,
      }),
      logger,
    );
    const l = await listen(withGcs.app, '127.0.0.1', 0);
    try {
      const rgb = new Uint8Array(400 * 300 * 3);
      for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 29 + (i >> 9)) % 253;
      const png = await pngOf(rgb, 400, 300);
      gcs.put('slides-bucket', 'cases/a b.png', {
        bytes: Buffer.from(png, 'base64'),
        contentType: 'image/png',
        token: 'tok-1',
      });
      gcs.put('slides-bucket', 'public.png', { bytes: Buffer.from(png, 'base64'), contentType: 'image/png' });
      const at = (uri: string, extra: Record<string, unknown> = {}) => ({
        image_file_uri: uri,
        patch_coordinates: [coord(30, 40)],
        ...extra,
      });
      const resize = { extensions: { image_dimensions: { width_px: 350, height_px: 270 } } };
      const res = await fetch(`${l.url}/v1/predict`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          instances: [
            at('gs://slides-bucket/cases/a b.png', { bearer_token: 'tok-1' }),
            { raw_image_bytes: png, patch_coordinates: [coord(30, 40)] },
            at('gs://slides-bucket/public.png', resize),
            { raw_image_bytes: png, patch_coordinates: [coord(30, 40)], ...resize },
            at('gs://slides-bucket/cases/a b.png', { bearer_token: 'wrong' }),
            at('gs://slides-bucket/cases/a b.png'),
            at('gs://slides-bucket/missing.png'),
            at('gs://other-bucket/x.png', { bearer_token: 'tok-1' }),
            at('gs:/bad'),
          ],
        }),
      });
      expect(res.status).toBe(200);
      const p = ((await res.json()) as { predictions: never[] }).predictions;
      expect(vector(p[0])).toEqual(vector(p[1]));
      expect(vector(p[2])).toEqual(vector(p[3]));
      expect(p.slice(4).map((x: { error: { code: string } }) => x.error.code)).toEqual([
        'INVALID_CREDENTIALS_ERROR',
        'INVALID_CREDENTIALS_ERROR',
        'HTTP_ERROR',
        'UNAPPROVED_GCS_BUCKET_ERROR',
        'GCS_IMAGE_PATH_FORMAT_ERROR',
      ]);
      // The token went to the storage endpoint as a bearer header, and nothing asked for other-bucket.
      expect(
        gcs.requests.some((r) => r.authorization === 'Bearer tok-1' && r.path.includes('alt=media')),
      ).toBe(true);
      expect(gcs.requests.some((r) => r.path.includes('other-bucket'))).toBe(false);
    } finally {
      await l.close();
      await withGcs.close();
      await gcs.close();
    }
  });
});

describe('image_dimensions for images', () => {
  /** `cv2.resize(img, (w, h))` in Python: the call Google's image reader ends up making. */
  async function openCvResize(
    rgb: Uint8Array,
    W: number,
    H: number,
    w: number,
    h: number,
  ): Promise<Uint8Array> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-cv-'));
    try {
      await fs.writeFile(path.join(dir, 'in.rgb'), rgb);
      await (await pythonEnv()).run(
        [
          'import sys, numpy as np, cv2',
          'd, W, H, w, h = sys.argv[1], *map(int, sys.argv[2:])',
          "img = np.fromfile(d + '/in.rgb', dtype=np.uint8).reshape(H, W, 3)",
          "cv2.resize(img, (w, h)).tofile(d + '/out.rgb')",
        ].join('\n'),
        [dir, String(W), String(H), String(w), String(h)],
      );
      return new Uint8Array(await fs.readFile(path.join(dir, 'out.rgb')));
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  it("resizes raw_image_bytes as Google's reader does (OpenCV's bilinear default), shrinking and enlarging", async () => {
    const [W, H] = [400, 300];
    const rgb = new Uint8Array(W * H * 3);
    for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 31 + (i >> 8) * 7) % 251;
    const cases = [
      { w: 310, h: 240, x: 10, y: 5 },
      { w: 640, h: 450, x: 200, y: 150 },
    ];
    const instances = [];
    for (const { w, h, x, y } of cases) {
      const resized = await openCvResize(rgb, W, H, w, h);
      const patch = new Uint8Array(224 * 224 * 3);
      for (let j = 0; j < 224; j++)
        patch.set(resized.subarray(((y + j) * w + x) * 3, ((y + j) * w + x + 224) * 3), j * 224 * 3);
      instances.push(
        {
          raw_image_bytes: await pngOf(rgb, W, H),
          patch_coordinates: [coord(x, y)],
          extensions: { image_dimensions: { width_px: w, height_px: h } },
        },
        { raw_image_bytes: await pngOf(patch, 224, 224), patch_coordinates: [coord(0, 0)] },
      );
    }
    const res = await predict({ instances });
    const v = res.body.predictions.map((p: never) => vector(p));
    // The same pixels as OpenCV's: the same vector (an area mean or a cubic kernel is 1e-4 or more away).
    expect(maxAbsDiff(v[0], v[1])).toBeLessThan(1e-5);
    expect(maxAbsDiff(v[2], v[3])).toBeLessThan(1e-5);
  });
});
