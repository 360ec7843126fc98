/**
 * What a cohort costs the API before any pixel is read: a private Orthanc with N tiny slide series
 * of one patient (each with a label), then (1) the QIDO expansion of a search for that patient
 * (series pages plus one instance query per series), (2) POST /v1/batches with that search, which
 * expands, submits N jobs and writes the batch (no worker runs: jobs stay queued), (3) GET
 * /v1/batches/:id over N jobs, and (4) the Redis memory the batch and its queued jobs take.
 * Redis: REDIS_URL, else 127.0.0.1:6379 (a fresh key prefix, removed at the end).
 *
 *   npx tsx bench/batch-expansion.ts [--series 200] [--page-size 1000]
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { startOrthanc, uploadFolder } from '../scripts/dev-services/orthanc.js';
import { createApi } from '../src/api/app.js';
import { listen } from '../src/api/server.js';
import { loadConfig } from '../src/config.js';
import { parseSearchSpec, searchSlides } from '../src/dicomweb/index.js';
import { dicomWebClient } from '../src/domain-options.js';
import { createLogger } from '../src/log.js';
import { writeSyntheticWsi } from '../src/sample/synthetic-wsi-writer.js';

const { values } = parseArgs({
  options: { series: { type: 'string', default: '200' }, 'page-size': { type: 'string', default: '1000' } },
});
const SERIES = Number(values.series);
const RUN = randomBytes(4).toString('hex');
const PATIENT = `BENCH-${RUN}`;
const prefix = `pe-bench-batch-${RUN}`;
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0);
}

const orthanc = await startOrthanc();
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-bench-batch-'));
const redis = new Redis(redisUrl);
try {
  const t0 = performance.now();
  for (let i = 0; i < SERIES; i++) {
    const out = path.join(dir, String(i));
    await writeSyntheticWsi(out, {
      widthPx: 64,
      heightPx: 64,
      downsamples: [1],
      seed: `bench-${RUN}-${i}`,
      studyInstanceUid: `2.25.${BigInt(`0x${RUN}`) * 1000n + BigInt(Math.floor(i / 10))}`,
      patientId: PATIENT,
      associatedImages: ['LABEL'],
    });
    await uploadFolder(orthanc.url, out);
  }
  const uploadS = (performance.now() - t0) / 1000;

  const config = loadConfig({
    REDIS_URL: redisUrl,
    PATHEMBED_QUEUE_PREFIX: prefix,
    PATHEMBED_SEARCH_PAGE_SIZE: values['page-size'],
    PATHEMBED_MAX_JOBS_PER_KEY: String(SERIES * 2),
    PATHEMBED_REDIS_COMMAND_TIMEOUT_MS: '30000',
    LOG_LEVEL: 'silent',
  });
  const search = parseSearchSpec(
    { store: orthanc.dicomWebUrl, filters: { PatientID: PATIENT }, limit: SERIES },
    { defaultLimit: SERIES, maxLimit: SERIES },
  );
  const t1 = performance.now();
  const found = await searchSlides(dicomWebClient(config), search, {
    pageSize: config.PATHEMBED_SEARCH_PAGE_SIZE,
  });
  const expandMs = performance.now() - t1;

  // The API needs a published model (job ids hash its sha256); no worker runs, jobs stay queued.
  await redis.set(`${prefix}:svc:model`, JSON.stringify({ sha256: 'f'.repeat(64), name: 'bench' }));
  const memBefore = await usedMemory(redis);
  const api = await createApi(config, createLogger('silent'));
  const server = await listen(api.app, '127.0.0.1', 0);
  const body = JSON.stringify({
    sources: [{ search: { store: orthanc.dicomWebUrl, filters: { PatientID: PATIENT }, limit: SERIES } }],
  });
  const t2 = performance.now();
  const posted = await fetch(`${server.url}/v1/batches`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  const postMs = performance.now() - t2;
  const batch = (await posted.json()) as { id: string; slides: number };
  if (posted.status !== 202)
    throw new Error(`POST /v1/batches answered ${posted.status}: ${JSON.stringify(batch)}`);
  const t3 = performance.now();
  const again = await fetch(`${server.url}/v1/batches`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  const repostMs = performance.now() - t3;
  await again.arrayBuffer();
  const t4 = performance.now();
  const got = await fetch(`${server.url}/v1/batches/${batch.id}`);
  await got.arrayBuffer();
  const getMs = performance.now() - t4;
  const memAfter = await usedMemory(redis);
  await server.close();
  await api.close();
  console.log(
    JSON.stringify(
      {
        series: SERIES,
        pageSize: config.PATHEMBED_SEARCH_PAGE_SIZE,
        uploadS: Number(uploadS.toFixed(1)),
        expansion: {
          ms: Math.round(expandMs),
          slides: found.slides.length,
          skipped: found.skipped.length,
          qidoRequests: found.requests,
        },
        postBatchMs: Math.round(postMs),
        resubmitMs: Math.round(repostMs),
        getBatchMs: Math.round(getMs),
        slides: batch.slides,
        redisBytesPerQueuedSlide: Math.round((memAfter - memBefore) / batch.slides),
      },
      null,
      2,
    ),
  );
} finally {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
  redis.disconnect();
  await orthanc.stop();
  await fs.rm(dir, { recursive: true, force: true });
}
