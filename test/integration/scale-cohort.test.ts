/**
 * Proof at scale, with no shared folder: a cohort of 50 tiny synthetic slides, submitted as one batch, run by the real
 * service as separate processes (`pathembed serve` and three `pathembed worker`s), each with its own
 * PATHEMBED_RESULTS_DIR, sharing only a private Redis and an S3 bucket on a real S3-compatible server
 * process (s3rver). One worker is SIGKILLed midway. Then: every slide's job completed exactly once
 * (one completion of its assemble job; every planned patch exactly once in its result, read back
 * from the bucket), neither the batch's progress nor any job's went backwards while polled, nothing is left in the bucket but
 * each job's plan, metadata and result, and no process wrote a file in its own results folder.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { QueueEvents } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDefaultModel } from '../../models/default-model.js';
import {
  COHORT_PATCHES_PER_SLIDE,
  type CohortSlide,
  deleteCohort,
  type ServiceProcess,
  startServiceProcess,
  uploadCohort,
} from '../../scripts/dev-services/cohort.js';
import { freePort } from '../../scripts/dev-services/ports.js';
import {
  S3RVER_ACCESS_KEY,
  S3RVER_SECRET_KEY,
  type S3Server,
  startS3Server,
} from '../../scripts/dev-services/s3-server.js';
import { loadConfig } from '../../src/config.js';
import { engineOptions } from '../../src/domain-options.js';
import { createLogger } from '../../src/log.js';
import { QUEUE_NAME } from '../../src/queue/queue-jobs.js';
import { resultKeys } from '../../src/queue/result-store.js';
import { S3ResultStore } from '../../src/queue/s3-result-store.js';
import { type PrivateRedis, startPrivateRedis } from '../helpers/redis.js';
import { everyIndex, filesUnder, until } from '../helpers/service-harness.js';
import { services } from '../helpers/services.js';

const SLIDES = 50;
const WORKERS = 3;
const BUCKET = 'pathembed-scale';
const PREFIX = 'run';
/** Two patches per chunk: each slide fans out into two chunk jobs, 100 in all. */
const CHUNK_PATCHES = 2;
const LOCK_MS = 3000;
/** The worker is killed once this share of all patches is done: mid-run, with jobs on both sides. */
const KILL_AT_SHARE = 1 / 3;
const POLL_MS = 250;
/** A bound against a stuck job, well above the ~2 minutes the run takes on 2 cores. */
const RUN_LIMIT_MS = 300_000;

let redis: PrivateRedis;
let s3: S3Server;
let store: S3ResultStore;
let cohort: CohortSlide[] = [];
const localDirs: string[] = [];
const procs: ServiceProcess[] = [];
const queuePrefix = `pe-test-scale-${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  redis = await startPrivateRedis();
  s3 = await startS3Server({ buckets: [BUCKET] });
  store = new S3ResultStore({
    bucket: BUCKET,
    prefix: PREFIX,
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: S3RVER_ACCESS_KEY, secretAccessKey: S3RVER_SECRET_KEY },
  });
  const { orthancUrl, dicomWebUrl } = services();
  cohort = await uploadCohort(orthancUrl, dicomWebUrl, SLIDES, queuePrefix);
  await ensureDefaultModel(engineOptions(loadConfig({})), createLogger('silent'));
}, 180_000);

afterAll(async () => {
  for (const p of procs) await p.kill();
  store?.close();
  await s3?.stop();
  await redis?.close();
  await deleteCohort(services().orthancUrl, cohort);
  for (const d of localDirs) await fs.rm(d, { recursive: true, force: true });
});

/** A process's environment: the shared Redis and bucket, and a results folder of its own. */
async function envFor(name: string): Promise<Record<string, string>> {
  const own = await fs.mkdtemp(path.join(os.tmpdir(), `pathembed-scale-${name}-`));
  localDirs.push(own);
  return {
    REDIS_URL: redis.url,
    PATHEMBED_QUEUE_PREFIX: queuePrefix,
    PATHEMBED_RESULTS_DIR: own,
    ...s3.env(BUCKET, PREFIX),
    PATHEMBED_EXECUTION_PROVIDER: 'cpu',
    PATHEMBED_INTRA_OP_THREADS: '1',
    PATHEMBED_DECODE_THREADS: '1',
    PATHEMBED_BATCH_SIZE: '4',
    PATHEMBED_CHUNK_PATCHES: String(CHUNK_PATCHES),
    PATHEMBED_LOCK_DURATION_MS: String(LOCK_MS),
    PATHEMBED_JOB_ATTEMPTS: '5',
    PATHEMBED_JOB_BACKOFF_MS: '200',
    PATHEMBED_RECONCILE_INTERVAL_MS: '1000',
    PATHEMBED_RECONCILE_GRACE_MS: '2000',
    PATHEMBED_MAX_JOBS_PER_KEY: '1000',
    LOG_LEVEL: 'warn',
  };
}

interface JobState {
  state: string;
  progress: { planned: number | null; done: number };
}

interface BatchState {
  state: string;
  counts: { completed: number; failed: number };
  progress: { finished: number; patchesDone: number; patchesPlanned: number };
}

describe('scale: 50 slides, 3 workers, one SIGKILLed, no shared folder', () => {
  it('completes every slide once, progress never goes back, leaves only results in the bucket', {
    timeout: RUN_LIMIT_MS + 60_000,
  }, async () => {
    const began = Date.now();
    const apiPort = await freePort();
    const api = `http://127.0.0.1:${apiPort}`;
    procs.push(startServiceProcess('api', ['serve', '--port', String(apiPort)], await envFor('api')));
    for (let n = 0; n < WORKERS; n++) {
      procs.push(startServiceProcess(`worker-${n}`, ['worker', '--concurrency', '1'], await envFor(`w${n}`)));
    }
    await until(
      'the API to be ready with every worker',
      async () => {
        try {
          const res = await fetch(`${api}/readyz`);
          return res.status === 200 && ((await res.json()) as { workers: number }).workers >= WORKERS;
        } catch {
          return false;
        }
      },
      120_000,
    );
    const readyMs = Date.now() - began;

    // Completions as BullMQ reports them: an assemble job completing twice would be a slide done twice.
    const events = new QueueEvents(QUEUE_NAME, { connection: { url: redis.url }, prefix: queuePrefix });
    await events.waitUntilReady();
    const completions = new Map<string, number>();
    events.on('completed', ({ jobId }) => completions.set(jobId, (completions.get(jobId) ?? 0) + 1));

    const submitted = Date.now();
    // The cohort is one batch: one request, one URL to poll.
    const res = await fetch(`${api}/v1/batches`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        sources: cohort.map((s) => s.seriesUrl),
        options: { minTissue: 0 },
        outputs: ['json'],
      }),
    });
    const batch = (await res.json()) as { id: string; slides: number };
    expect(res.status, JSON.stringify(batch)).toBe(202);
    expect(batch.slides).toBe(SLIDES);
    const page = (await (await fetch(`${api}/v1/batches/${batch.id}/jobs?limit=${SLIDES}`)).json()) as {
      jobs: Array<{ id: string }>;
    };
    const body = { jobs: page.jobs };
    const ids = body.jobs.map((j) => j.id);
    expect(new Set(ids).size).toBe(SLIDES);

    const last = new Map<string, JobState>();
    const backwards: string[] = [];
    let lastBatch: BatchState | undefined;
    let victim: ServiceProcess | undefined;
    let killedAtDone = 0;
    const totalPatches = SLIDES * COHORT_PATCHES_PER_SLIDE;
    await until(
      'every job to end',
      async () => {
        const views = await Promise.all(
          ids.map(
            async (id) => [id, (await (await fetch(`${api}/v1/jobs/${id}`)).json()) as JobState] as const,
          ),
        );
        // The batch's own progress, polled as a client would: it never goes back either.
        const b = (await (await fetch(`${api}/v1/batches/${batch.id}`)).json()) as BatchState;
        if (lastBatch) {
          if (b.progress.patchesDone < lastBatch.progress.patchesDone)
            backwards.push(
              `batch patchesDone: ${lastBatch.progress.patchesDone} -> ${b.progress.patchesDone}`,
            );
          if (b.progress.finished < lastBatch.progress.finished)
            backwards.push(`batch finished: ${lastBatch.progress.finished} -> ${b.progress.finished}`);
          if (b.counts.completed < lastBatch.counts.completed)
            backwards.push(`batch completed: ${lastBatch.counts.completed} -> ${b.counts.completed}`);
        }
        lastBatch = b;
        let done = 0;
        for (const [id, view] of views) {
          const before = last.get(id);
          if (before && view.progress.done < before.progress.done) {
            backwards.push(`${id}: ${before.progress.done} -> ${view.progress.done}`);
          }
          last.set(id, view);
          done += view.progress.done;
        }
        if (!victim && done >= totalPatches * KILL_AT_SHARE) {
          victim = procs.find((p) => p.name === 'worker-0');
          killedAtDone = done;
          await victim?.kill();
        }
        await new Promise((r) => setTimeout(r, POLL_MS));
        return views.every(([, v]) => ['completed', 'failed', 'cancelled'].includes(v.state)) || undefined;
      },
      RUN_LIMIT_MS,
    );
    const runMs = Date.now() - submitted;
    await events.close();

    expect(victim?.child.signalCode).toBe('SIGKILL');
    expect(killedAtDone).toBeLessThan(totalPatches);
    expect(backwards).toEqual([]);
    const finalBatch = (await (await fetch(`${api}/v1/batches/${batch.id}`)).json()) as BatchState;
    expect(finalBatch).toMatchObject({
      counts: { completed: SLIDES, failed: 0 },
      progress: { finished: SLIDES, patchesDone: totalPatches, patchesPlanned: totalPatches },
    });
    for (const id of ids) {
      const view = last.get(id) as JobState;
      expect({ id, state: view.state }).toEqual({ id, state: 'completed' });
      expect(view.progress).toMatchObject({
        planned: COHORT_PATCHES_PER_SLIDE,
        done: COHORT_PATCHES_PER_SLIDE,
      });
      // Read back from the bucket, not through the API: every planned patch exactly once, in order.
      const doc = JSON.parse(((await store.get(resultKeys.json(id))) as Buffer).toString()) as {
        patches: Array<{ index: number; embedding: number[] }>;
      };
      expect(doc.patches.map((p) => p.index)).toEqual(everyIndex(COHORT_PATCHES_PER_SLIDE));
      expect(doc.patches.every((p) => p.embedding.length === 384)).toBe(true);
      expect({ id, completions: completions.get(`${id}-assemble`) }).toEqual({ id, completions: 1 });
    }
    // The API streams the same bytes from the bucket.
    const viaApi = Buffer.from(await (await fetch(`${api}/v1/jobs/${ids[0]}/result`)).arrayBuffer());
    expect(viaApi.equals((await store.get(resultKeys.json(ids[0] as string))) as Buffer)).toBe(true);

    // Left in the bucket: each job's plan, metadata, result and search index; no chunk, no
    // temporary object.
    const keys = (await store.list()).sort();
    const expected = ids
      .flatMap((id) => [
        resultKeys.plan(id),
        resultKeys.metadata(id),
        resultKeys.json(id),
        resultKeys.searchIndex(id),
      ])
      .sort();
    expect(keys).toEqual(expected);
    // s3rver keeps unfinished multipart uploads in its own folder: there are none either.
    const uploads = await filesUnder(path.join(s3.dataDir, BUCKET, '._S3rver_uploads'));
    expect(uploads).toEqual([]);

    // No shared folder: no process wrote anything in its own results folder.
    for (const dir of localDirs) expect({ dir, files: await filesUnder(dir) }).toEqual({ dir, files: [] });

    console.log(
      JSON.stringify({
        scale: {
          slides: SLIDES,
          patches: totalPatches,
          workers: WORKERS,
          killedAtDone,
          readyMs,
          runMs,
          slidesPerMinute: Math.round((SLIDES / runMs) * 60_000 * 10) / 10,
        },
      }),
    );
  });
});
