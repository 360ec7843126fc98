/**
 * Scale benchmark (`npm run bench:scale`): what a cohort costs the queue, measured on the real
 * service as separate processes (`pathembed serve`, `pathembed worker`) with a private Orthanc,
 * a private redis-server and an S3 bucket on s3rver between them (no shared folder).
 *
 * - **Throughput**: slides per minute with 1, 2 and 3 CPU workers (one inference thread each) on a
 *   cohort of tiny synthetic slides (448 x 448 px, 4 patches), from submission to the last result;
 *   model loading is excluded (workers are ready before the cohort is submitted).
 * - **Redis memory per 1,000 queued slides**: INFO used_memory before and after submitting 1,000
 *   slide jobs (10 POSTs of 100 sources) to a paused queue, so none starts.
 * - **Redis memory per running slide**: a running slide is its record plus the BullMQ flow its slide
 *   job adds (an assemble parent and one chunk job per PATHEMBED_CHUNK_PATCHES patches). Measured by
 *   adding flows of 1, 20 and 200 chunks with FlowProducer, in the slide processor's job shapes.
 *
 *   npm run bench:scale                         # prints the markdown section
 *   npm run bench:scale -- --slides 30 --write-docs   # also replaces "## Scale" in docs/benchmarks.md
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FlowProducer, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { ensureDefaultModel } from '../models/default-model.js';
import { requireBinary } from '../scripts/dev-services/binaries.js';
import {
  COHORT_PATCHES_PER_SLIDE,
  deleteCohort,
  type ServiceProcess,
  startServiceProcess,
  uploadCohort,
} from '../scripts/dev-services/cohort.js';
import { REPO_ROOT } from '../scripts/dev-services/fixtures.js';
import { startOrthanc } from '../scripts/dev-services/orthanc.js';
import { freePort, waitFor } from '../scripts/dev-services/ports.js';
import { startS3Server } from '../scripts/dev-services/s3-server.js';
import { loadConfig } from '../src/config.js';
import { engineOptions } from '../src/domain-options.js';
import { createLogger } from '../src/log.js';
import { type AssembleJobData, type ChunkJobData, JOB_NAMES, QUEUE_NAME } from '../src/queue/queue-jobs.js';

const { values: args } = parseArgs({
  options: {
    slides: { type: 'string', default: '30' },
    workers: { type: 'string', default: '1,2,3' },
    'queued-slides': { type: 'string', default: '1000' },
    'write-docs': { type: 'boolean', default: false },
  },
});
const SLIDES = Number(args.slides);
const WORKER_COUNTS = String(args.workers).split(',').map(Number);
const QUEUED = Number(args['queued-slides']);
/** POST /v1/jobs takes at most 100 sources. */
const SOURCES_PER_POST = 100;
const CHUNK_PATCHES = 2;
/** Flows added per chunk count when measuring a running slide: enough to average out allocator noise. */
const FLOWS_PER_SIZE = 100;
const FLOW_CHUNKS = [1, 20, 200];
const BUCKET = 'bench-scale';

async function startRedis(): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    requireBinary('redis-server'),
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  probe.on('error', () => undefined);
  await waitFor(async () => (await probe.ping()) === 'PONG', `redis-server on ${port}`);
  probe.disconnect();
  return {
    url,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1]);
}

interface Stack {
  readonly api: string;
  readonly prefix: string;
  readonly procs: ServiceProcess[];
  stop(): Promise<void>;
}

async function startStack(
  redisUrl: string,
  s3Env: Record<string, string>,
  workers: number,
  scratch: string[],
): Promise<Stack> {
  const prefix = `bench-scale-${randomBytes(3).toString('hex')}`;
  const envFor = async (name: string) => {
    const own = await mkdtemp(path.join(os.tmpdir(), `pathembed-bench-${name}-`));
    scratch.push(own);
    return {
      REDIS_URL: redisUrl,
      PATHEMBED_QUEUE_PREFIX: prefix,
      PATHEMBED_RESULTS_DIR: own,
      ...s3Env,
      PATHEMBED_EXECUTION_PROVIDER: 'cpu',
      PATHEMBED_INTRA_OP_THREADS: '1',
      PATHEMBED_DECODE_THREADS: '1',
      PATHEMBED_BATCH_SIZE: '4',
      PATHEMBED_CHUNK_PATCHES: String(CHUNK_PATCHES),
      PATHEMBED_MAX_JOBS_PER_KEY: String(QUEUED * 2),
      LOG_LEVEL: 'warn',
    };
  };
  const port = await freePort();
  const procs = [startServiceProcess('api', ['serve', '--port', String(port)], await envFor('api'))];
  for (let n = 0; n < workers; n++) {
    procs.push(startServiceProcess(`worker-${n}`, ['worker', '--concurrency', '1'], await envFor(`w${n}`)));
  }
  const api = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      const res = await fetch(`${api}/readyz`);
      return res.status === 200 && ((await res.json()) as { workers: number }).workers >= workers;
    },
    `API and ${workers} workers`,
    180_000,
  );
  return {
    api,
    prefix,
    procs,
    stop: async () => {
      for (const p of procs) await p.kill();
    },
  };
}

async function submit(api: string, sources: string[]): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < sources.length; i += SOURCES_PER_POST) {
    const res = await fetch(`${api}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        sources: sources.slice(i, i + SOURCES_PER_POST),
        options: { minTissue: 0 },
        outputs: ['json'],
      }),
    });
    const body = (await res.json()) as { jobs?: Array<{ id: string }> };
    if (res.status !== 202 || !body.jobs)
      throw new Error(`submit answered ${res.status}: ${JSON.stringify(body)}`);
    ids.push(...body.jobs.map((j) => j.id));
  }
  return ids;
}

async function main(): Promise<void> {
  await ensureDefaultModel(engineOptions(loadConfig({})), createLogger('silent'));
  const orthanc = await startOrthanc();
  const redisServer = await startRedis();
  const s3 = await startS3Server({ buckets: [BUCKET] });
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  const scratch: string[] = [];
  const cohort = await uploadCohort(orthanc.url, orthanc.dicomWebUrl, SLIDES, 'bench-scale');
  const throughput: Array<{
    workers: number;
    seconds: number;
    slidesPerMinute: number;
    loadStart: number;
    loadEnd: number;
  }> = [];
  try {
    for (const workers of WORKER_COUNTS) {
      const stack = await startStack(redisServer.url, s3.env(BUCKET, `w${workers}`), workers, scratch);
      const loadStart = os.loadavg()[0] ?? Number.NaN;
      const began = performance.now();
      const ids = await submit(
        stack.api,
        cohort.map((c) => c.seriesUrl),
      );
      await waitFor(
        async () => {
          const states = await Promise.all(
            ids.map(
              async (id) =>
                ((await (await fetch(`${stack.api}/v1/jobs/${id}`)).json()) as { state: string }).state,
            ),
          );
          if (states.includes('failed')) throw new Error(`a job failed: ${states.join(',')}`);
          return states.every((s) => s === 'completed');
        },
        `${SLIDES} slides on ${workers} workers`,
        900_000,
      );
      const seconds = (performance.now() - began) / 1000;
      throughput.push({
        workers,
        seconds,
        slidesPerMinute: (SLIDES / seconds) * 60,
        loadStart,
        loadEnd: os.loadavg()[0] ?? Number.NaN,
      });
      console.error(`${workers} worker(s): ${SLIDES} slides in ${seconds.toFixed(1)} s`);
      await stack.stop();
    }

    // Queued slides: a paused queue, so nothing starts while they are counted.
    const stack = await startStack(redisServer.url, s3.env(BUCKET, 'queued'), 1, scratch);
    const queue = new Queue(QUEUE_NAME, { connection: { url: redisServer.url }, prefix: stack.prefix });
    await queue.pause();
    const before = await usedMemory(redis);
    const fake = Array.from(
      { length: QUEUED },
      (_, i) =>
        `${orthanc.dicomWebUrl}/studies/1.2.826.0.1.3680043.10.1.${i}/series/1.2.826.0.1.3680043.10.2.${i}`,
    );
    await submit(stack.api, fake);
    const queuedBytes = (await usedMemory(redis)) - before;
    const counts = await queue.getJobCounts('waiting', 'prioritized');
    const waiting = Object.values(counts).reduce((a, b) => a + b, 0);
    await queue.close();
    await stack.stop();

    // Running slides: the flow a slide job adds, per chunk count.
    const flows = new FlowProducer({ connection: { url: redisServer.url }, prefix: 'bench-flows' });
    const perFlow: Array<{ chunks: number; bytes: number }> = [];
    for (const chunks of FLOW_CHUNKS) {
      const start = await usedMemory(redis);
      for (let f = 0; f < FLOWS_PER_SIZE; f++) {
        const jobId = `${randomBytes(16).toString('hex')}`;
        const assemble: AssembleJobData = { jobId, chunkCount: chunks, outputs: ['json'], hasToken: false };
        await flows.add({
          name: JOB_NAMES.assemble,
          queueName: `${QUEUE_NAME}-${chunks}`,
          data: assemble,
          opts: {
            jobId: `${jobId}-assemble`,
            priority: 6,
            attempts: 3,
            backoff: { type: 'exponential', delay: 1000 },
          },
          children: Array.from({ length: chunks }, (_, chunkIndex) => {
            const data: ChunkJobData = {
              jobId,
              chunkIndex,
              start: chunkIndex * 512,
              end: (chunkIndex + 1) * 512,
              hasToken: false,
            };
            return {
              name: JOB_NAMES.chunk,
              queueName: `${QUEUE_NAME}-${chunks}`,
              data,
              opts: {
                jobId: `${jobId}-c${chunkIndex}`,
                priority: 6,
                attempts: 3,
                backoff: { type: 'exponential', delay: 1000 },
                failParentOnFailure: true,
              },
            };
          }),
        });
      }
      perFlow.push({ chunks, bytes: ((await usedMemory(redis)) - start) / FLOWS_PER_SIZE });
    }
    await flows.close();

    const one = throughput[0]?.slidesPerMinute ?? Number.NaN;
    const cores = os.availableParallelism();
    const load = os.loadavg()[0]?.toFixed(1);
    const lines = [
      '## Scale',
      '',
      `\`npm run bench:scale -- --slides ${SLIDES}\` on this machine (${cores} cores, ${os.cpus()[0]?.model ?? 'unknown CPU'}, 1-minute load average ${load} at the end: other engineers' tests ran at the same time), ${new Date().toISOString().slice(0, 10)}. The service as separate processes (API, workers) on a private redis-server, results in an S3 bucket on s3rver, no shared folder; slides of ${COHORT_PATCHES_PER_SLIDE} patches (448 x 448 px JPEG), ${CHUNK_PATCHES} patches per chunk job, one inference thread per worker.`,
      '',
      '| CPU workers | slides | seconds | slides/min | vs 1 worker | 1-min load average, start / end |',
      '| --- | --- | --- | --- | --- | --- |',
      ...throughput.map(
        (t) =>
          `| ${t.workers} | ${SLIDES} | ${t.seconds.toFixed(1)} | ${t.slidesPerMinute.toFixed(1)} | ${(t.slidesPerMinute / one).toFixed(2)}x | ${t.loadStart.toFixed(1)} / ${t.loadEnd.toFixed(1)} |`,
      ),
      '',
      `With ${cores} cores, three single-threaded workers (plus the API, Redis, Orthanc and s3rver) cannot scale linearly: past ${cores} workers they share cores. On a shared machine the ratios also follow the other load (last column): a run that got more of the machine looks faster. Rerun on a quiet host for clean ratios.`,
      '',
      '| Redis memory (INFO used_memory delta) | bytes | per 1,000 |',
      '| --- | --- | --- |',
      `| ${QUEUED.toLocaleString('en-US')} queued slide jobs (record + BullMQ job, paused queue; ${waiting} jobs waiting) | ${queuedBytes} | ${(((queuedBytes / QUEUED) * 1000) / 1024 / 1024).toFixed(2)} MiB per 1,000 slides |`,
      ...perFlow.map(
        (p) =>
          `| one running slide's flow: assemble + ${p.chunks} chunk job(s) (mean of ${FLOWS_PER_SIZE}) | ${Math.round(p.bytes)} | ${((p.bytes * 1000) / 1024 / 1024).toFixed(2)} MiB per 1,000 such slides |`,
      ),
      '',
    ];
    const section = lines.join('\n');
    console.log(section);
    if (args['write-docs']) {
      const file = path.join(REPO_ROOT, 'docs', 'benchmarks.md');
      const doc = await readFile(file, 'utf8');
      const start = doc.indexOf('## Scale');
      let next = start >= 0 ? doc.indexOf('\n## ', start + 1) : -1;
      if (next < 0) next = doc.length;
      const updated =
        start >= 0 ? `${doc.slice(0, start)}${section}${doc.slice(next)}` : `${doc.trimEnd()}\n\n${section}`;
      await writeFile(file, updated);
    }
  } finally {
    redis.disconnect();
    await deleteCohort(orthanc.url, cohort).catch(() => undefined);
    await s3.stop();
    await redisServer.stop();
    await orthanc.stop();
    for (const d of scratch) await rm(d, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
