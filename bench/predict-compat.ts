/**
 * pathembed's POST /v1/predict against Google's own Path Foundation predictor
 * (`npm run bench:predict-compat`), request for request.
 *
 * Google's serving code (Google-Health/path-foundation `python/serving`) and EZ-WSI run in a child
 * Python (bench/google_predict.py) with the same ONNX model pathembed loads, so both sides embed
 * with the same weights: a difference in a vector is a difference in the pixels each fed the
 * model. Both read the same private Orthanc; pathembed runs in this process (API and worker, the
 * real queue on REDIS_URL). Every request is sent to both, and each instance's answer is compared:
 * the largest absolute difference of the embedding values, or the two error codes.
 *
 * Needs (docs/predict-compat.md, "Measured against Google's server", says how to set them up):
 *   PATHEMBED_EZWSI_PYTHON  a Python with EZ-WSI's and Google's dependencies and onnxruntime
 *   PATHEMBED_EZWSI_SRC     an EZ-WSI-DICOMweb checkout
 *   PATHEMBED_PF_SRC        path-foundation's `python` folder (holding `serving/`)
 * Without them it says so and exits 0 (CI does not run benchmarks).
 *
 *   npm run bench:predict-compat [-- --icc-dir DIR]   # DIR becomes PATHEMBED_ICC_PROFILE_DIR
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import pino from 'pino';
import sharp from 'sharp';
import { ensureDefaultModel } from '../models/default-model.js';
import { ensureFixture, FIXTURES, REPO_ROOT } from '../scripts/dev-services/fixtures.js';
import { startOrthanc, uploadFolder } from '../scripts/dev-services/orthanc.js';
import { createApi } from '../src/api/app.js';
import { listen } from '../src/api/server.js';
import { loadConfig } from '../src/config.js';
import { engineOptions } from '../src/domain-options.js';
import { EmbeddingEngine } from '../src/embed/index.js';
import { createPipelinePort } from '../src/queue/pipeline-adapter.js';
import { FrameFetchRecorder } from '../src/queue/service-metrics.js';
import { WorkerRuntime } from '../src/queue/worker-runtime.js';

/** An embedding difference at or below this is "the same vector" (float32 round-off of one model). */
const SAME_VECTOR = 1e-4;
/** The bar issue 9 sets for colour-transformed patches. */
const ICC_BAR = 1e-3;

// biome-ignore lint/suspicious/noExplicitAny: predict bodies are compared field by field
type Body = any;

interface Case {
  readonly name: string;
  readonly body: unknown;
  /** Largest difference accepted as a match (default SAME_VECTOR). */
  readonly bar?: number;
}

const coord = (x: number, y: number, size = 224) => ({ x_origin: x, y_origin: y, width: size, height: size });

async function png(rgb: Buffer, width: number, height: number, icc?: string): Promise<string> {
  let img = sharp(rgb, { raw: { width, height, channels: 3 } });
  if (icc) img = img.withIccProfile(icc);
  return (await img.png().toBuffer()).toString('base64');
}

/** The VOLUME instance UIDs of a series by level width (WADO-RS metadata). */
async function levels(seriesUrl: string): Promise<Map<number, string[]>> {
  const res = await fetch(`${seriesUrl}/metadata`, { headers: { accept: 'application/dicom+json' } });
  const datasets = (await res.json()) as Array<Record<string, { Value?: unknown[] }>>;
  const byWidth = new Map<number, string[]>();
  for (const ds of datasets) {
    const imageType = (ds['00080008']?.Value ?? []) as string[];
    if (['LABEL', 'OVERVIEW', 'THUMBNAIL'].some((t) => imageType.includes(t))) continue;
    const width = (ds['00480006']?.Value?.[0] ?? ds['00280011']?.Value?.[0]) as number;
    byWidth.set(width, [...(byWidth.get(width) ?? []), ds['00080018']?.Value?.[0] as string]);
  }
  return byWidth;
}

function cases(
  series: Record<string, string>,
  level: Record<string, Map<number, string[]>>,
  images: Record<string, string>,
): Case[] {
  const dicom = (
    name: string,
    extensions: Record<string, unknown> = {},
    patches = [coord(10, 20), coord(300, 200)],
  ) => ({
    dicom_path: {
      series_path: series[name],
      instance_uids: level[name]?.get(Math.max(...(level[name]?.keys() ?? [0]))),
    },
    extensions: { require_patches_fully_in_source_image: 'True', ...extensions },
    patch_coordinates: patches,
  });
  const icc = (name: string, profile: string) => dicom(name, { transform_imaging_to_icc_profile: profile });
  const one = (instance: unknown) => ({ instances: [instance] });
  const synthLevels = [...(level['synthetic-full']?.entries() ?? [])].sort((a, b) => b[0] - a[0]);
  return [
    { name: 'DICOM, level 0, two patches (synthetic-full)', body: one(dicom('synthetic-full')) },
    { name: 'DICOM, level 0 (cmu-jpeg)', body: one(dicom('cmu-jpeg')) },
    {
      name: 'DICOM, several instances in one request',
      body: { instances: [dicom('cmu-jpeg'), dicom('synthetic-full')] },
    },
    {
      name: 'DICOM, image_dimensions 450 x 300 (EZ-WSI level.resize)',
      body: one(
        dicom('synthetic-full', { image_dimensions: { width_px: 450, height_px: 300 } }, [coord(13, 29)]),
      ),
    },
    {
      name: 'DICOM, image_dimensions 1100 x 1470 (cmu-jpeg, from level 0)',
      body: one(
        dicom('cmu-jpeg', { image_dimensions: { width_px: 1100, height_px: 1470 } }, [coord(100, 200)]),
      ),
    },
    {
      name: 'DICOM, transform to SRGB (synthetic-full)',
      body: one(icc('synthetic-full', 'SRGB')),
      bar: ICC_BAR,
    },
    {
      name: 'DICOM, transform to ADOBERGB (synthetic-full)',
      body: one(icc('synthetic-full', 'ADOBERGB')),
      bar: ICC_BAR,
    },
    {
      name: 'DICOM, transform to ROMMRGB (synthetic-full)',
      body: one(icc('synthetic-full', 'ROMMRGB')),
      bar: ICC_BAR,
    },
    { name: 'DICOM, transform to SRGB (cmu-jpeg)', body: one(icc('cmu-jpeg', 'SRGB')), bar: ICC_BAR },
    { name: 'DICOM, transform to ADOBERGB (cmu-jpeg)', body: one(icc('cmu-jpeg', 'ADOBERGB')), bar: ICC_BAR },
    { name: 'DICOM without a profile, SRGB asked (camelyon)', body: one(icc('camelyon', 'SRGB')) },
    {
      name: 'raw_image_bytes, 224 x 224 PNG',
      body: one({ raw_image_bytes: images.patch, patch_coordinates: [coord(0, 0)] }),
    },
    {
      name: 'raw_image_bytes, 600 x 400 shrunk to 400 x 267',
      body: one({
        raw_image_bytes: images.large,
        extensions: { image_dimensions: { width_px: 400, height_px: 267 } },
        patch_coordinates: [coord(20, 10)],
      }),
    },
    {
      name: 'raw_image_bytes, 600 x 400 enlarged to 900 x 600',
      body: one({
        raw_image_bytes: images.large,
        extensions: { image_dimensions: { width_px: 900, height_px: 600 } },
        patch_coordinates: [coord(100, 50)],
      }),
    },
    {
      name: 'raw_image_bytes tagged AdobeRGB, transform to SRGB',
      body: one({
        raw_image_bytes: images.adobeTagged,
        extensions: { transform_imaging_to_icc_profile: 'SRGB' },
        patch_coordinates: [coord(0, 0)],
      }),
      bar: ICC_BAR,
    },
    { name: 'error: {}', body: {} },
    { name: 'error: instances []', body: { instances: [] } },
    { name: 'error: instances not a list', body: { instances: { a: 1 } } },
    {
      name: 'error: patch 100 x 100',
      body: one({ ...dicom('synthetic-full'), patch_coordinates: [coord(0, 0, 100)] }),
    },
    {
      name: 'error: empty patch_coordinates',
      body: one({ ...dicom('synthetic-full'), patch_coordinates: [] }),
    },
    {
      name: 'error: missing series',
      body: one({
        ...dicom('synthetic-full'),
        dicom_path: {
          series_path: `${series['synthetic-full']?.replace(/\/series\/.*/, '')}/series/1.2.3.4.5`,
          instance_uids: ['1.2.3.4.6'],
        },
      }),
    },
    {
      name: 'instance_uids left out',
      body: one({ ...dicom('synthetic-full'), dicom_path: { series_path: series['synthetic-full'] } }),
    },
    {
      name: 'error: instance_uids of two levels',
      body: one({
        ...dicom('synthetic-full'),
        dicom_path: {
          series_path: series['synthetic-full'],
          instance_uids: synthLevels.slice(0, 2).flatMap(([, uids]) => uids),
        },
      }),
    },
    { name: 'error: unknown ICC profile name', body: one(icc('synthetic-full', 'PROPHOTO')) },
    { name: 'error: patch outside the image', body: one(dicom('synthetic-full', {}, [coord(900, 600)])) },
    {
      name: 'error: downsampling too large',
      body: one(dicom('synthetic-full', { image_dimensions: { width_px: 10, height_px: 7 } }, [coord(0, 0)])),
    },
    {
      name: 'unknown keys ignored, empty bearer_token',
      body: one({ ...dicom('synthetic-full', { EGF: 'QRS' }), bearer_token: '', extra: 1 }),
    },
  ];
}

interface Outcome {
  readonly verdict: 'match' | 'differs';
  readonly detail: string;
}

function vectors(body: Body): Array<number[][] | string> {
  return (body.predictions as Body[]).map((p) =>
    p.error
      ? String(p.error.code)
      : (p.result.patch_embeddings as Body[]).map((e) => e.embedding_vector as number[]),
  );
}

function compare(ours: { status: number; body: Body }, google: Body, bar: number): Outcome {
  if (google.exception) return { verdict: 'differs', detail: `Google raised ${google.exception}` };
  const g = google.body;
  if (typeof g.error === 'string' || typeof ours.body.error === 'string') {
    const same = g.error === ours.body.error && ours.status === 200;
    return {
      verdict: same ? 'match' : 'differs',
      detail: `Google ${g.error ?? 'predictions'}; pathembed HTTP ${ours.status} ${ours.body.error ?? 'predictions'}`,
    };
  }
  if (!Array.isArray(ours.body.predictions))
    return {
      verdict: 'differs',
      detail: `pathembed HTTP ${ours.status} ${JSON.stringify(ours.body).slice(0, 120)}`,
    };
  const [a, b] = [vectors(ours.body), vectors(g)];
  if (a.length !== b.length)
    return { verdict: 'differs', detail: `${a.length} predictions vs Google's ${b.length}` };
  let worst = 0;
  const codes: string[] = [];
  for (let i = 0; i < a.length; i++) {
    const [x, y] = [a[i], b[i]];
    if (typeof x === 'string' || typeof y === 'string') {
      if (x !== y)
        return {
          verdict: 'differs',
          detail: `instance ${i}: pathembed ${typeof x === 'string' ? x : 'vectors'}, Google ${typeof y === 'string' ? y : 'vectors'}`,
        };
      codes.push(x as string);
      continue;
    }
    for (let p = 0; p < Math.max(x?.length ?? 0, y?.length ?? 0); p++)
      for (let k = 0; k < 384; k++)
        worst = Math.max(worst, Math.abs((x?.[p]?.[k] ?? Number.NaN) - (y?.[p]?.[k] ?? Number.NaN)) || 0);
  }
  const detail = codes.length > 0 ? `both ${codes.join(', ')}` : `max |diff| ${worst.toExponential(2)}`;
  return { verdict: worst <= bar ? 'match' : 'differs', detail };
}

/** The store token the protected store wants (a test value, not a secret). */
const STORE_TOKEN = 'compat-store-token';

/**
 * Orthanc behind a proxy that answers 401 unless the request carries `Authorization: Bearer
 * STORE_TOKEN`, as a Google Healthcare store does without credentials: a patch read through it
 * proves the server forwarded the request's bearer_token.
 */
async function bearerProtected(
  upstream: string,
): Promise<{ origin: string; via(url: string): string; close(): Promise<void> }> {
  const target = new URL(upstream);
  const server = http.createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${STORE_TOKEN}`) {
      res.writeHead(401, { 'content-type': 'text/plain' }).end('bearer token required');
      return;
    }
    const headers = { ...req.headers, host: target.host };
    delete headers.authorization;
    const forward = http.request(
      { host: target.hostname, port: target.port, path: req.url, method: req.method, headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    via: (url) => `${origin}${new URL(url).pathname}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * EZ-WSI's client driven as a notebook drives it, against pathembed and against Google's
 * predictor served by the child (bench/google_predict.py `client`): one row per flow.
 */
async function ezWsiClientFlows(
  python: string,
  model: string,
  predictUrl: string,
  apiKey: string,
  seriesUrls: string[],
): Promise<string[]> {
  const child = spawn(
    python,
    [path.join(REPO_ROOT, 'bench', 'google_predict.py'), 'client', model, predictUrl, apiKey, ...seriesUrls],
    {
      env: {
        ...process.env,
        APPROVED_DICOM_STORE_SOURCE_LIST: JSON.stringify(
          seriesUrls.map((named) => new URL(named.slice(named.indexOf('=') + 1)).origin),
        ),
        PATHEMBED_COMPAT_STORE_TOKEN: STORE_TOKEN,
      },
      stdio: ['ignore', 'pipe', process.env.PATHEMBED_COMPAT_VERBOSE ? 'inherit' : 'ignore'],
    },
  );
  const rows: string[] = [];
  for await (const line of createInterface({ input: child.stdout })) {
    const r = JSON.parse(line) as { flow: string; max_abs_diff?: number; error?: string };
    const detail = r.error ?? `${(r.max_abs_diff as number).toExponential(2)}`;
    rows.push(`| ${r.flow} | ${detail} |`);
    process.stderr.write(`client ${r.flow}: ${detail}\n`);
  }
  return rows;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { 'icc-dir': { type: 'string' } } });
  const python = process.env.PATHEMBED_EZWSI_PYTHON;
  if (!python || !process.env.PATHEMBED_PF_SRC || !process.env.PATHEMBED_EZWSI_SRC) {
    process.stdout.write(
      'Skipped: set PATHEMBED_EZWSI_PYTHON, PATHEMBED_EZWSI_SRC and PATHEMBED_PF_SRC (docs/predict-compat.md).\n',
    );
    return;
  }
  const logger = pino({ level: 'silent' });
  const orthanc = await startOrthanc();
  const names = ['synthetic-full', 'cmu-jpeg', 'camelyon'];
  const series: Record<string, string> = {};
  const level: Record<string, Map<number, string[]>> = {};
  for (const name of names) {
    const recipe = FIXTURES.find((f) => f.name === name);
    if (!recipe) throw new Error(`no fixture ${name}`);
    let folder = await ensureFixture(recipe);
    if (name === 'cmu-jpeg') {
      // EZ-WSI reads TILED_FULL levels only, and the dicomizer writes its tiles in 2 x 2 blocks:
      // both sides read bench/ezwsi_read.py's row-major TILED_FULL copy (same UIDs, same pixels).
      const prepared = path.join(REPO_ROOT, '.cache', 'bench-ezwsi', 'predict-compat-cmu-jpeg');
      await fs.rm(prepared, { recursive: true, force: true });
      execFileSync(python, [path.join(REPO_ROOT, 'bench', 'ezwsi_read.py'), 'prepare', folder, prepared], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      folder = prepared;
    }
    await uploadFolder(orthanc.url, folder);
  }
  const studies = (await (await fetch(`${orthanc.dicomWebUrl}/series`)).json()) as Array<
    Record<string, { Value: string[] }>
  >;
  for (const s of studies) {
    const studyUid = s['0020000D']?.Value[0];
    const seriesUid = s['0020000E']?.Value[0];
    const url = `${orthanc.dicomWebUrl}/studies/${studyUid}/series/${seriesUid}`;
    const byWidth = await levels(url);
    const width = Math.max(...byWidth.keys());
    const name = width === 1000 ? 'synthetic-full' : width === 2220 ? 'cmu-jpeg' : 'camelyon';
    process.stderr.write(`${name}: ${url} levels ${[...byWidth.keys()].join(', ')}\n`);
    series[name] = url;
    level[name] = byWidth;
  }

  const cmuPatch = await sharp(path.join(REPO_ROOT, '..', 'shared', 'testdata', 'CMU-1-Small-Region.svs'))
    .extract({ left: 600, top: 800, width: 600, height: 400 })
    .removeAlpha()
    .raw()
    .toBuffer();
  const patch224 = await sharp(cmuPatch, { raw: { width: 600, height: 400, channels: 3 } })
    .extract({ left: 0, top: 0, width: 224, height: 224 })
    .raw()
    .toBuffer();
  const images = {
    patch: await png(patch224, 224, 224),
    large: await png(cmuPatch, 600, 400),
    adobeTagged: await png(patch224, 224, 224, '/usr/share/color/icc/colord/AdobeRGB1998.icc'),
  };

  const protectedStore = await bearerProtected(orthanc.dicomWebUrl);
  const resultsDir = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-compat-bench-'));
  const apiKey = randomBytes(8).toString('hex');
  const config = loadConfig({
    PATHEMBED_QUEUE_PREFIX: `pe-bench-compat-${randomBytes(4).toString('hex')}`,
    PATHEMBED_RESULTS_DIR: resultsDir,
    PATHEMBED_API_KEYS: apiKey,
    PATHEMBED_TOKEN_KEY: randomBytes(32).toString('hex'),
    PATHEMBED_ALLOWED_STORES: `${new URL(orthanc.dicomWebUrl).origin},${protectedStore.origin}`,
    PATHEMBED_EXECUTION_PROVIDER: 'cpu',
    PATHEMBED_BATCH_SIZE: '8',
    ...(values['icc-dir'] ? { PATHEMBED_ICC_PROFILE_DIR: path.resolve(values['icc-dir']) } : {}),
  });
  await ensureDefaultModel(engineOptions(config), logger);
  const engine = await EmbeddingEngine.open(engineOptions(config), logger);
  const frames = new FrameFetchRecorder();
  const runtime = await WorkerRuntime.start(
    { config, logger, pipeline: createPipelinePort(config, logger, engine, { frames }), frames },
    { workerId: 'bench-compat' },
  );
  const api = await createApi(config, logger);
  const server = await listen(api.app, '127.0.0.1', 0);

  const child = spawn(
    python,
    [path.join(REPO_ROOT, 'bench', 'google_predict.py'), config.PATHEMBED_MODEL_PATH],
    {
      env: { ...process.env, APPROVED_DICOM_STORE_SOURCE_LIST: orthanc.dicomWebUrl },
      stdio: ['pipe', 'pipe', process.env.PATHEMBED_COMPAT_VERBOSE ? 'inherit' : 'ignore'],
    },
  );
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const google = async (body: unknown): Promise<Body> => {
    child.stdin.write(`${JSON.stringify(body)}\n`);
    const next = await lines.next();
    if (next.done) throw new Error("Google's predictor exited");
    return JSON.parse(next.value);
  };
  const ours = async (body: unknown) => {
    const res = await fetch(`${server.url}/v1/predict`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Body };
  };

  const rows: string[] = [];
  const clientRows: string[] = [];
  let differ = 0;
  try {
    for (const c of cases(series, level, images)) {
      const [a, b] = [await ours(c.body), await google(c.body)];
      const outcome = compare(a, b, c.bar ?? SAME_VECTOR);
      if (outcome.verdict === 'differs') differ++;
      rows.push(`| ${c.name} | ${outcome.verdict} | ${outcome.detail} |`);
      process.stderr.write(`${c.name}: ${outcome.verdict} (${outcome.detail})\n`);
    }
    clientRows.push(
      ...(await ezWsiClientFlows(python, config.PATHEMBED_MODEL_PATH, `${server.url}/v1/predict`, apiKey, [
        `synthetic-full=${series['synthetic-full']}`,
        `cmu-jpeg=${series['cmu-jpeg']}`,
        `protected-cmu-jpeg=${protectedStore.via(series['cmu-jpeg'] as string)}`,
      ])),
    );
  } finally {
    child.stdin.end();
    child.kill();
    await server.close();
    await api.close();
    await runtime.close();
    await engine.close();
    await protectedStore.close();
    await orthanc.stop();
    await fs.rm(resultsDir, { recursive: true, force: true });
  }
  process.stdout.write(
    [
      `pathembed against Google's predictor (same ONNX model), ICC profile dir: ${config.PATHEMBED_ICC_PROFILE_DIR}`,
      '',
      '| request | verdict | detail |',
      '| --- | --- | --- |',
      ...rows,
      '',
      `${rows.length - differ} of ${rows.length} requests answered alike.`,
      '',
      "EZ-WSI's own client (PathFoundationsEmbeddingEndpoint) against each, embeddings it returned:",
      '',
      '| flow | largest difference |',
      '| --- | --- |',
      ...clientRows,
      '',
    ].join('\n'),
  );
}

await main();
