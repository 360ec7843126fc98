/**
 * The HTTP API end to end: a real Express app on a free port, real Redis (a fresh random queue
 * prefix for this file), an in-process worker with the real embedding engine (2 intra-op
 * threads), slides from the test Orthanc. Covers validation, API keys, the store allow-list,
 * slide jobs (submit, poll, result, repeat, cancel), /v1/predict, and what Redis, results and logs
 * hold of a per-job token.
 */

import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
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
import { REDACTED_PATHS } from '../../src/log.js';
import { createPipelinePort } from '../../src/queue/pipeline-adapter.js';
import { FrameFetchRecorder } from '../../src/queue/service-metrics.js';
import { WorkerRuntime } from '../../src/queue/worker-runtime.js';
import { decodePart10 } from '../../src/results/sr/dicom-part10.js';
import { encodeCoordinatePixel } from '../../src/sample/pixel-patterns.js';
import { readAnnWithPydicom, validateAnnFile } from '../helpers/ann-validation.js';
import { type FaultServer, startFaultServer } from '../helpers/fault-server.js';
import { scanKeys } from '../helpers/redis.js';
import { fixture, services } from '../helpers/services.js';
import { waitFor } from '../helpers/wait.js';

const API_KEY = `key-${randomBytes(8).toString('hex')}`;
const TOKEN_KEY = randomBytes(32).toString('hex');
const PREFIX = `pe-test-api-${randomBytes(4).toString('hex')}`;
const MAX_PREDICT_PATCHES = 12;

/** Every log line of the API and the worker, to check that no token is ever written. */
const logLines: string[] = [];
const logger = pino(
  { level: 'debug', redact: { paths: REDACTED_PATHS, censor: '[redacted]' } },
  new Writable({
    write(chunk, _enc, cb) {
      logLines.push(chunk.toString());
      cb();
    },
  }),
);

let config: Config;
let api: Api;
let server: Listening;
let runtime: WorkerRuntime;
let resultsDir: string;
let redis: Redis;
/** A store that is not on the allow-list; counts what reaches it. */
let outsider: http.Server;
let outsiderUrl: string;
let outsiderHits = 0;
/** Proxy to the test Orthanc recording request headers (did the job send its token?). */
let tokenStore: FaultServer;

beforeAll(async () => {
  const { redisUrl, dicomWebUrl } = services();
  resultsDir = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-api-'));
  tokenStore = await startFaultServer(services().orthancUrl);
  config = loadConfig({
    REDIS_URL: redisUrl,
    PATHEMBED_QUEUE_PREFIX: PREFIX,
    PATHEMBED_RESULTS_DIR: resultsDir,
    PATHEMBED_API_KEYS: API_KEY,
    PATHEMBED_TOKEN_KEY: TOKEN_KEY,
    // Only the test Orthanc and the recording proxy in front of it: the outsider server on
    // another loopback port must be refused.
    PATHEMBED_ALLOWED_STORES: `${new URL(dicomWebUrl).origin},${tokenStore.url}`,
    PATHEMBED_EXECUTION_PROVIDER: 'cpu',
    PATHEMBED_INTRA_OP_THREADS: '2',
    PATHEMBED_BATCH_SIZE: '8',
    PATHEMBED_CHUNK_PATCHES: '4',
    PATHEMBED_MAX_PREDICT_PATCHES: String(MAX_PREDICT_PATCHES),
    PATHEMBED_PREDICT_TIMEOUT_MS: '60000',
    PATHEMBED_LOCK_DURATION_MS: '30000',
    // In-process inference blocks this process's event loop for a batch; the API's Redis command
    // timeout must not count that against Redis.
    PATHEMBED_REDIS_COMMAND_TIMEOUT_MS: '30000',
    LOG_LEVEL: 'debug',
  });
  redis = new Redis(redisUrl);
  outsider = http.createServer((_req, res) => {
    outsiderHits++;
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => outsider.listen(0, '127.0.0.1', r));
  outsiderUrl = `http://127.0.0.1:${(outsider.address() as AddressInfo).port}`;

  await ensureDefaultModel(engineOptions(config), logger);
  const engine = await EmbeddingEngine.open(engineOptions(config), logger);
  const frames = new FrameFetchRecorder();
  runtime = await WorkerRuntime.start(
    { config, logger, pipeline: createPipelinePort(config, logger, engine, { frames }), frames },
    { workerId: 'api-test-worker' },
  );
  api = await createApi(config, logger);
  server = await listen(api.app, '127.0.0.1', 0);
});

afterAll(async () => {
  await server?.close();
  await api?.close();
  await runtime?.close();
  await new Promise((r) => outsider?.close(r));
  await tokenStore?.close();
  // Leave nothing of this file's prefix behind in the shared Redis.
  const keys = await scanKeys(redis, PREFIX);
  if (keys.length > 0) await redis.del(...keys);
  redis?.disconnect();
  await fs.rm(resultsDir, { recursive: true, force: true });
});

interface Reply {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
  body: any;
  headers: Headers;
}

async function call(
  method: string,
  route: string,
  body?: unknown,
  key: string | null = API_KEY,
): Promise<Reply> {
  const res = await fetch(`${server.url}${route}`, {
    method,
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON (metrics)
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

describe('health, metrics, OpenAPI', () => {
  it('is alive and ready once a worker published its model', async () => {
    expect((await call('GET', '/healthz', undefined, null)).body).toEqual({ status: 'ok' });
    const ready = await call('GET', '/readyz', undefined, null);
    expect(ready.status).toBe(200);
    expect(ready.body.model.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(ready.body.workers).toBeGreaterThanOrEqual(1);
  });

  it('serves Prometheus metrics and an OpenAPI document generated from the schemas', async () => {
    const metrics = await call('GET', '/metrics', undefined, null);
    expect(metrics.status).toBe(200);
    for (const name of [
      'pathembed_queue_jobs{state="waiting"}',
      'pathembed_patches_per_second',
      'pathembed_frame_fetch_seconds_bucket{le="+Inf"}',
      'pathembed_job_errors_total',
      'pathembed_inference_batch_seconds_bucket{le="+Inf"}',
      'pathembed_queue_wait_seconds_count',
    ]) {
      expect(metrics.body).toContain(name);
    }
    const doc = await call('GET', '/openapi.json', undefined, null);
    expect(doc.body.openapi).toBe('3.1.0');
    const req = doc.body.components.schemas.CreateJobsRequest;
    expect(req.additionalProperties).toBe(false);
    expect(Object.keys(req.properties)).toEqual(
      expect.arrayContaining([
        'sources',
        'options',
        'outputs',
        'srDestination',
        'bearerToken',
        'priority',
        'recompute',
      ]),
    );
    expect(doc.body.paths['/v1/predict'].post).toBeDefined();
  });
});

describe('requests that are refused', () => {
  it('needs an API key (401), compared against the configured ones', async () => {
    const missing = await call('GET', '/v1/jobs', undefined, null);
    expect(missing.status).toBe(401);
    expect(missing.body.error.code).toBe('UNAUTHORIZED');
    expect((await call('GET', '/v1/jobs', undefined, 'wrong-key')).status).toBe(401);
    expect((await call('GET', '/v1/jobs')).status).toBe(200);
  });

  it('answers 400 with the field path and reason; unknown fields are refused', async () => {
    const source = fixture('synthetic-full').seriesUrl;
    const unknown = await call('POST', '/v1/jobs', { sources: [source], options: { minTisue: 0.1 } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.code).toBe('INVALID_ARGUMENT');
    expect(unknown.body.error.details.issues).toEqual([
      { path: 'options.minTisue', reason: 'unknown field' },
    ]);
    const bad = await call('POST', '/v1/jobs', {
      sources: [source],
      options: { stridePx: -1 },
      outputs: ['xml'],
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.issues.map((i: { path: string }) => i.path).sort()).toEqual([
      'options.stridePx',
      'outputs.0',
    ]);
    const json = await call('POST', '/v1/jobs', '{"sources": [');
    expect(json.status).toBe(400);
    expect(json.body.error.code).toBe('INVALID_ARGUMENT');
    const ref = await call('POST', '/v1/jobs', { sources: ['http://127.0.0.1:1/not/a/series'] });
    expect(ref.status).toBe(400);
    expect(ref.body.error.code).toBe('INVALID_SERIES_REFERENCE');
    expect(ref.body.error.message).toMatch(/^sources\.0: /);
  });

  it('refuses an unapproved store with 403 UNAPPROVED_DICOM_STORE before fetching anything', async () => {
    const { studyUid, seriesUid } = fixture('synthetic-full');
    const before = outsiderHits;
    const res = await call('POST', '/v1/jobs', {
      sources: [`${outsiderUrl}/dicom-web/studies/${studyUid}/series/${seriesUid}`],
    });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('UNAPPROVED_DICOM_STORE');
    const sr = await call('POST', '/v1/jobs', {
      sources: [fixture('synthetic-full').seriesUrl],
      outputs: ['json', 'dicom-sr'],
      srDestination: `${outsiderUrl}/dicom-web`,
    });
    expect(sr.status).toBe(403);
    expect(sr.body.error.code).toBe('UNAPPROVED_DICOM_STORE');
    const predict = await call('POST', '/v1/predict', {
      instances: [
        {
          dicom_path: { series_path: `${outsiderUrl}/dicom-web/studies/${studyUid}/series/${seriesUid}` },
          patch_coordinates: [{ x_origin: 0, y_origin: 0, width: 224, height: 224 }],
        },
      ],
    });
    expect(predict.status).toBe(200);
    expect(predict.body.predictions[0].error.code).toBe('UNAPPROVED_DICOM_STORE_ERROR');
    expect(outsiderHits).toBe(before);
  });

  it('names unknown routes and jobs with 404 NOT_FOUND', async () => {
    expect((await call('GET', '/v1/nothing')).body.error.code).toBe('NOT_FOUND');
    expect((await call('GET', '/v1/jobs/j0123')).status).toBe(404);
  });
});

/** A PNG of `width` x `height` with a gradient, so patches differ. */
async function pngBase64(width: number, height: number): Promise<string> {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      data[i] = x % 256;
      data[i + 1] = y % 256;
      data[i + 2] = (x + y) % 256;
    }
  }
  const png = await sharp(data, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
  return png.toString('base64');
}

const patch = (x: number, y: number, size = 224) => ({ x_origin: x, y_origin: y, width: size, height: size });

describe('POST /v1/predict (Path Foundation format)', () => {
  it('answers each instance in order; a bad instance does not fail the others', async () => {
    const image = await pngBase64(400, 300);
    const series = fixture('synthetic-full').seriesUrl;
    const res = await call('POST', '/v1/predict', {
      instances: [
        { raw_image_bytes: image, patch_coordinates: [patch(0, 0), patch(100, 50)] },
        { raw_image_bytes: { input_bytes: image }, patch_coordinates: [patch(0, 0)] },
        { dicom_path: { series_path: series }, patch_coordinates: [patch(10, 20)] },
        { raw_image_bytes: image, patch_coordinates: [patch(300, 200)] },
        {
          raw_image_bytes: image,
          patch_coordinates: [patch(300, 200)],
          extensions: { require_patches_fully_in_source_image: false },
        },
        { dicom_path: { series_path: 'not a path' }, patch_coordinates: [patch(0, 0)] },
        {
          raw_image_bytes: Buffer.from('not an image').toString('base64'),
          patch_coordinates: [patch(0, 0)],
        },
        {
          raw_image_bytes: image,
          patch_coordinates: [patch(0, 0)],
          extensions: { transform_imaging_to_icc_profile: 'SRGB' },
        },
        { raw_image_bytes: image, patch_coordinates: [patch(0, 0)], unknown_field: 1 },
        // Not base64 at all: Node decodes it to no bytes.
        { raw_image_bytes: '@@@###', patch_coordinates: [patch(0, 0)] },
      ],
    });
    expect(res.status).toBe(200);
    const p = res.body.predictions;
    expect(p).toHaveLength(10);
    const embeddings = p[0].result.patch_embeddings;
    expect(embeddings).toHaveLength(2);
    expect(embeddings[0].embedding_vector).toHaveLength(384);
    expect(embeddings[1].patch_coordinate).toEqual(patch(100, 50));
    expect(embeddings[0].embedding_vector).not.toEqual(embeddings[1].embedding_vector);
    // pathembed's older {input_bytes} form reads the same image.
    expect(p[1].result.patch_embeddings[0].embedding_vector).toEqual(embeddings[0].embedding_vector);
    expect(p[2].result.patch_embeddings[0].embedding_vector).toHaveLength(384);
    expect(p[3].error.code).toBe('PATCH_OUTSIDE_OF_IMAGE_DIMENSIONS_ERROR');
    expect(p[4].result.patch_embeddings).toHaveLength(1);
    expect(p[5].error.code).toBe('DICOM_PATH_ERROR');
    expect(p[6].error.code).toBe('IMAGE_ERROR');
    // An image without an ICC profile is embedded as stored whatever profile is asked for (Google too).
    expect(p[7].result.patch_embeddings[0].embedding_vector).toEqual(embeddings[0].embedding_vector);
    // Unknown keys are ignored, as Google ignores them.
    expect(p[8].result.patch_embeddings[0].embedding_vector).toEqual(embeddings[0].embedding_vector);
    expect(p[9].error).toEqual({
      code: 'IMAGE_ERROR',
      description: expect.stringMatching(/decodes to no bytes/),
    });
    for (const e of p.filter((x: { error?: unknown }) => x.error))
      expect(e.error.description).toEqual(expect.any(String));
  });

  it('gives the same embedding for the same pixels from DICOMweb and from a PNG', async () => {
    // synthetic-full stores each pixel's own coordinates, losslessly: the region (10, 20) of its
    // finest level can be rebuilt exactly and sent as raw PNG bytes. One model, one answer.
    const data = Buffer.alloc(224 * 224 * 3);
    for (let y = 0; y < 224; y++) {
      for (let x = 0; x < 224; x++) data.set(encodeCoordinatePixel(10 + x, 20 + y), (y * 224 + x) * 3);
    }
    const png = (
      await sharp(data, { raw: { width: 224, height: 224, channels: 3 } })
        .png()
        .toBuffer()
    ).toString('base64');
    const res = await call('POST', '/v1/predict', {
      instances: [
        {
          dicom_path: { series_path: fixture('synthetic-full').seriesUrl },
          patch_coordinates: [patch(10, 20)],
        },
        { raw_image_bytes: png, patch_coordinates: [patch(0, 0)] },
      ],
    });
    const [fromDicom, fromPng] = res.body.predictions.map(
      (p: { result: { patch_embeddings: Array<{ embedding_vector: number[] }> } }) =>
        p.result.patch_embeddings[0].embedding_vector,
    );
    expect(fromDicom).toHaveLength(384);
    expect(fromDicom).toEqual(fromPng);
  });

  it('refuses more patches than the endpoint allows with TOO_MANY_PATCHES_ERROR', async () => {
    const image = await pngBase64(300, 300);
    const coords = Array.from({ length: MAX_PREDICT_PATCHES + 1 }, () => patch(0, 0));
    const res = await call('POST', '/v1/predict', {
      instances: [{ raw_image_bytes: image, patch_coordinates: coords }],
    });
    // Google's shape for a request refused as a whole: HTTP 200 and a bare code.
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ error: 'TOO_MANY_PATCHES_ERROR' });
    const malformed = await call('POST', '/v1/predict', { instance: [] });
    expect(malformed.status).toBe(200);
    expect(malformed.body).toEqual({ error: 'INVALID_REQUEST_FIELD_ERROR' });
  });
});

const FINAL = ['completed', 'failed', 'cancelled'];

/** A pooled keep-alive socket the server timed out while the in-process worker held its event loop. */
function isStaleSocket(err: unknown): boolean {
  return (err as { cause?: { code?: string } })?.cause?.code === 'ECONNRESET';
}

async function finished(id: string) {
  return waitFor(`job ${id} to end`, async () => {
    // Polling asks again on a reset socket: the worker in this process blocks the event loop for
    // seconds at a time (planning, inference), past the server's keep-alive timeout.
    const res = await call('GET', `/v1/jobs/${id}`).catch((err) => {
      if (isStaleSocket(err)) return undefined;
      throw err;
    });
    return res && FINAL.includes(res.body.state) ? res.body : undefined;
  });
}

describe('slide jobs', () => {
  it('runs submit -> poll -> completed, with every grid patch once in the JSON', async () => {
    const source = fixture('synthetic-full').seriesUrl;
    const submitted = await call('POST', '/v1/jobs', { sources: [source], options: { minTissue: 0 } });
    expect(submitted.status).toBe(202);
    const [entry] = submitted.body.jobs;
    expect(entry).toMatchObject({ state: 'queued', existing: false, statusUrl: `/v1/jobs/${entry.id}` });
    expect(submitted.headers.get('location')).toBe(entry.statusUrl);

    const states = new Set<string>();
    const end = await waitFor('completion', async () => {
      const res = await call('GET', entry.statusUrl);
      states.add(res.body.state);
      return FINAL.includes(res.body.state) ? res.body : undefined;
    });
    expect(end.state).toBe('completed');
    expect(end.error).toBeNull();
    expect(end.progress.planned).toBeGreaterThan(0);
    expect(end.progress.done).toBe(end.progress.planned);
    expect(end.progress.chunks).toBe(Math.ceil(end.progress.planned / 4));
    expect(end.timings.totalMs).toBeGreaterThan(0);
    expect(end.results.json).toBe(`/v1/jobs/${entry.id}/result`);

    const result = await call('GET', end.results.json);
    expect(result.status).toBe(200);
    expect(result.headers.get('content-type')).toMatch(/application\/json/);
    const indices = result.body.patches.map((p: { index: number }) => p.index);
    expect(indices).toEqual(Array.from({ length: end.progress.planned }, (_, i) => i));
    const corners = new Set(result.body.patches.map((p: { x: number; y: number }) => `${p.x},${p.y}`));
    expect(corners.size).toBe(end.progress.planned);
    // Stage times summed over the chunk jobs (each chunk fetched frames and ran the model).
    const { timings } = result.body.summary;
    expect(timings.fetchMs).toBeGreaterThan(0);
    expect(timings.decodeMs).toBeGreaterThan(0);
    expect(timings.inferMs).toBeGreaterThan(0);

    const list = await call('GET', '/v1/jobs?limit=50');
    expect(list.body.jobs.map((j: { id: string }) => j.id)).toContain(entry.id);
  });

  it('writes the DICOM SR and stores it in the destination store over STOW-RS', async () => {
    const { dicomWebUrl } = services();
    const res = await call('POST', '/v1/jobs', {
      sources: [fixture('synthetic-full').seriesUrl],
      options: { minTissue: 0, stridePx: 448 },
      outputs: ['json', 'dicom-sr'],
      srDestination: dicomWebUrl,
    });
    const end = await finished(res.body.jobs[0].id);
    expect(end.state).toBe('completed');
    const sr = end.results.sr;
    expect(sr).toMatchObject({ storedTo: dicomWebUrl, url: `/v1/jobs/${end.id}/sr` });
    const file = await fetch(`${server.url}${sr.url}`, { headers: { authorization: `Bearer ${API_KEY}` } });
    expect(file.headers.get('content-type')).toMatch(/application\/dicom/);
    const bytes = Buffer.from(await file.arrayBuffer());
    expect(bytes.subarray(128, 132).toString('latin1')).toBe('DICM');
    const stored = await fetch(`${dicomWebUrl}/studies/${sr.studyUid}/series/${sr.seriesUid}/instances`, {
      headers: { accept: 'application/dicom+json' },
    });
    const instances = (await stored.json()) as Array<Record<string, { Value: string[] }>>;
    expect(instances.map((i) => i['00080018'].Value[0])).toContain(sr.sopInstanceUid);
  });

  it('writes the bulk annotations (dicom-ann, annEmbedding) and the SR referring to them, stores both', async () => {
    const { dicomWebUrl } = services();
    const refused = await call('POST', '/v1/jobs', {
      sources: [fixture('synthetic-full').seriesUrl],
      outputs: ['json'],
      annEmbedding: true,
    });
    expect(refused.status).toBe(400);
    expect(refused.body.error.message).toContain('annEmbedding');
    const res = await call('POST', '/v1/jobs', {
      sources: [fixture('synthetic-full').seriesUrl],
      options: { minTissue: 0, stridePx: 448 },
      outputs: ['json', 'dicom-sr', 'dicom-ann'],
      annEmbedding: true,
      srDestination: dicomWebUrl,
    });
    const end = await finished(res.body.jobs[0].id);
    expect(end.state).toBe('completed');
    const ann = end.results.ann;
    expect(ann).toMatchObject({
      storedTo: dicomWebUrl,
      url: `/v1/jobs/${end.id}/ann`,
      annotationCount: end.progress.planned,
      includesEmbedding: true,
    });
    const get = async (route: string) =>
      Buffer.from(
        await (
          await fetch(`${server.url}${route}`, { headers: { authorization: `Bearer ${API_KEY}` } })
        ).arrayBuffer(),
      );
    // Assembled from chunk files of 4 patches each, read twice (principal components first).
    const annPath = path.join(resultsDir, 'api-ann.dcm');
    const jsonPath = path.join(resultsDir, 'api-ann.json');
    await fs.writeFile(annPath, await get(ann.url));
    await fs.writeFile(jsonPath, await get(`/v1/jobs/${end.id}/result`));
    await validateAnnFile(annPath);
    const back = await readAnnWithPydicom(annPath, jsonPath);
    expect(back.count).toBe(end.progress.planned);
    expect(back.sopInstanceUid).toBe(ann.sopInstanceUid);
    expect(back.measurements).toHaveLength(4 + 384);
    expect(back.measurements[4 + 7]!.values).toEqual(back.expected.embeddings.map((e) => e[7]!));
    // biome-ignore lint/suspicious/noExplicitAny: a decoded DICOM dataset is walked freely
    const sr = decodePart10(new Uint8Array(await get(end.results.sr.url))) as Record<string, any>;
    expect(
      sr.PertinentOtherEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
        .ReferencedSOPInstanceUID,
    ).toBe(ann.sopInstanceUid);
    const stored = await fetch(`${dicomWebUrl}/studies/${ann.studyUid}/series/${ann.seriesUid}/instances`, {
      headers: { accept: 'application/dicom+json' },
    });
    const instances = (await stored.json()) as Array<Record<string, { Value: string[] }>>;
    expect(instances.map((i) => i['00080018'].Value[0])).toEqual([ann.sopInstanceUid]);
  });

  it('returns the existing job for a repeated request, and a new one with recompute', async () => {
    const body = { sources: [fixture('synthetic-full').seriesUrl], options: { minTissue: 0, stridePx: 300 } };
    const first = await call('POST', '/v1/jobs', body);
    const again = await call('POST', '/v1/jobs', body);
    expect(again.body.jobs[0]).toMatchObject({ id: first.body.jobs[0].id, existing: true });
    await finished(first.body.jobs[0].id);
    const afterDone = await call('POST', '/v1/jobs', body);
    expect(afterDone.body.jobs[0]).toMatchObject({
      id: first.body.jobs[0].id,
      existing: true,
      state: 'completed',
    });
    const fresh = await call('POST', '/v1/jobs', { ...body, recompute: true });
    expect(fresh.body.jobs[0].existing).toBe(false);
    expect(fresh.body.jobs[0].id).not.toBe(first.body.jobs[0].id);
    expect((await finished(fresh.body.jobs[0].id)).state).toBe('completed');
  });

  it('cancels a running job: its chunks stop and nothing more is embedded', async () => {
    const res = await call('POST', '/v1/jobs', {
      sources: [fixture('cmu-jpeg').seriesUrl],
      options: { minTissue: 0 },
      priority: 10,
    });
    const id = res.body.jobs[0].id;
    await waitFor('the job to embed', async () => {
      const j = await call('GET', `/v1/jobs/${id}`);
      return j.body.state === 'embedding' && j.body.progress.done > 0 ? true : undefined;
    });
    const cancelled = await call('DELETE', `/v1/jobs/${id}`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.state).toBe('cancelled');
    expect(cancelled.body.error.code).toBe('JOB_CANCELLED');
    // Running chunks stop within one batch: soon no chunk of the job is active any more.
    await waitFor(
      'the running chunk to stop',
      async () => {
        const active = await api.ctx.queue.getActive();
        return active.some((j) => j.data?.jobId === id) ? undefined : true;
      },
      10_000,
    );
    const doneAtStop = (await call('GET', `/v1/jobs/${id}`)).body.progress.done;
    // Every chunk of the job leaves the queue (taken and dropped, or removed) without embedding more.
    await waitFor(
      'every chunk of the cancelled job to leave the queue',
      async () => {
        const pending = await api.ctx.queue.getJobs(['waiting', 'delayed', 'active', 'prioritized']);
        return pending.some((j) => j.data?.jobId === id) ? undefined : true;
      },
      30_000,
    );
    const later = await call('GET', `/v1/jobs/${id}`);
    expect(later.body.state).toBe('cancelled');
    expect(later.body.progress.done).toBe(doneAtStop);
    expect(later.body.progress.done).toBeLessThan(later.body.progress.planned);
    expect((await call('GET', `/v1/jobs/${id}/result`)).status).toBe(404);
  });
});

describe('per-job bearer tokens', () => {
  /** Every key of this file's prefix with its value, whatever its type, as text. */
  async function dumpPrefix(): Promise<string> {
    const parts: string[] = [];
    for (const key of await scanKeys(redis, PREFIX)) {
      const type = await redis.type(key);
      parts.push(key);
      if (type === 'string') parts.push((await redis.get(key)) ?? '');
      else if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(key)));
      else if (type === 'list') parts.push(JSON.stringify(await redis.lrange(key, 0, -1)));
      else if (type === 'set') parts.push(JSON.stringify(await redis.smembers(key)));
      else if (type === 'zset') parts.push(JSON.stringify(await redis.zrange(key, '0', '-1')));
      else if (type === 'stream') parts.push(JSON.stringify(await redis.xrange(key, '-', '+')));
      const dumped = await redis.dumpBuffer(key);
      if (dumped) parts.push(dumped.toString('latin1'));
    }
    return parts.join('\n');
  }

  it('keeps the token only sealed in Redis while the job runs, and nowhere afterwards', async () => {
    const token = `tok-${randomBytes(16).toString('hex')}`;
    const { studyUid, seriesUid } = fixture('synthetic-full');
    const source = `${tokenStore.url}/dicom-web/studies/${studyUid}/series/${seriesUid}`;
    const res = await call('POST', '/v1/jobs', {
      sources: [source],
      options: { minTissue: 0, stridePx: 250 },
      outputs: ['json'],
      bearerToken: token,
    });
    expect(res.status).toBe(202);
    const id = res.body.jobs[0].id;
    const sealedKey = `${PREFIX}:svc:token:${id}`;
    // While it runs: sealed (the plain token is in no key or value of the prefix).
    const sealed = await redis.get(sealedKey);
    if (sealed !== null) expect(sealed).not.toContain(token);
    expect(await dumpPrefix()).not.toContain(token);

    const end = await finished(id);
    expect(end.state).toBe('completed');
    // The store saw the token: it was used for the job's requests.
    expect(tokenStore.requests.some((r) => r.headers.authorization === `Bearer ${token}`)).toBe(true);
    // Afterwards: deleted, and in no key, value, result or log line.
    expect(await redis.exists(sealedKey)).toBe(0);
    expect(await dumpPrefix()).not.toContain(token);
    const result = await fetch(`${server.url}/v1/jobs/${id}/result`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(await result.text()).not.toContain(token);
    const status = await call('GET', `/v1/jobs/${id}`);
    expect(JSON.stringify(status.body)).not.toContain(token);
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('')).not.toContain(token);
    for (const file of await fs.readdir(resultsDir, { recursive: true })) {
      const full = path.join(resultsDir, file as string);
      if ((await fs.stat(full)).isFile()) expect(await fs.readFile(full, 'latin1')).not.toContain(token);
    }
  });

  it('refuses tokens when no PATHEMBED_TOKEN_KEY is configured', async () => {
    const noKey: Config = Object.freeze({ ...config, PATHEMBED_TOKEN_KEY: undefined });
    const other = await createApi(noKey, logger);
    const l = await listen(other.app, '127.0.0.1', 0);
    try {
      const res = await fetch(`${l.url}/v1/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ sources: [fixture('synthetic-full').seriesUrl], bearerToken: 'secret-token' }),
      });
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(res.status).toBe(400);
      expect(body.error.code).toBe('INVALID_ARGUMENT');
      expect(body.error.message).toMatch(/PATHEMBED_TOKEN_KEY/);
      expect(body.error.message).not.toContain('secret-token');
    } finally {
      await l.close();
      await other.close();
    }
  });
});

describe('a service no worker serves', () => {
  it('answers 503 to jobs and to predict (which clients retry), naming the timeout', async () => {
    // A second service on its own prefix where no worker ever published a model or takes jobs.
    const prefix = `${PREFIX}-noworker`;
    const unready: Config = Object.freeze({
      ...config,
      PATHEMBED_QUEUE_PREFIX: prefix,
      PATHEMBED_PREDICT_TIMEOUT_MS: 1000,
    });
    const other = await createApi(unready, logger);
    const l = await listen(other.app, '127.0.0.1', 0);
    const post = async (route: string, body: unknown) => {
      const res = await fetch(`${l.url}${route}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
      return { status: res.status, body: (await res.json()) as any };
    };
    try {
      const job = await post('/v1/jobs', { sources: [fixture('synthetic-full').seriesUrl] });
      expect(job.status).toBe(503);
      expect(job.body.error.code).toBe('SERVICE_UNAVAILABLE');
      expect(job.body.error.message).toMatch(/pathembed worker/);

      const image = await pngBase64(300, 300);
      const started = Date.now();
      const predict = await post('/v1/predict', {
        instances: [
          { raw_image_bytes: image, patch_coordinates: [patch(0, 0)] },
          { raw_image_bytes: image, patch_coordinates: [patch(50, 50)] },
        ],
      });
      expect(Date.now() - started).toBeLessThan(10_000);
      // Not 200 with INTERNAL_ERROR: EZ-WSI retries 429 and 503 only.
      expect(predict.status).toBe(503);
      expect(predict.body.error.code).toBe('INTERNAL_ERROR');
      expect(predict.body.error.description).toMatch(
        /^PREDICT_TIMEOUT: .*1000 ms.*PATHEMBED_PREDICT_TIMEOUT_MS/,
      );
    } finally {
      await l.close();
      await other.close();
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
    }
  });
});

describe('limits and protection', () => {
  it('caps unfinished jobs per API key (429 TOO_MANY_JOBS) and can protect health and metrics', async () => {
    // A second service on its own prefix with no worker, so submitted jobs stay unfinished.
    const prefix = `${PREFIX}-limits`;
    const limited: Config = Object.freeze({
      ...config,
      PATHEMBED_QUEUE_PREFIX: prefix,
      PATHEMBED_MAX_JOBS_PER_KEY: 1,
      PATHEMBED_PROTECT_HEALTH: true,
    });
    const model = await redis.get(`${PREFIX}:svc:model`);
    await redis.set(`${prefix}:svc:model`, model as string);
    const other = await createApi(limited, logger);
    const l = await listen(other.app, '127.0.0.1', 0);
    const post = (body: unknown) =>
      fetch(`${l.url}/v1/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    try {
      const source = fixture('synthetic-full').seriesUrl;
      expect((await post({ sources: [source] })).status).toBe(202);
      const second = await post({ sources: [source], options: { stridePx: 100 } });
      expect(second.status).toBe(429);
      expect(((await second.json()) as { error: { code: string } }).error.code).toBe('TOO_MANY_JOBS');
      // The same request again is not a new job, so it is not refused.
      expect((await post({ sources: [source] })).status).toBe(202);

      expect((await fetch(`${l.url}/metrics`)).status).toBe(401);
      expect((await fetch(`${l.url}/readyz`)).status).toBe(401);
      const authed = await fetch(`${l.url}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } });
      expect(authed.status).toBe(200);
    } finally {
      await l.close();
      await other.close();
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
    }
  });
});
