/**
 * Workers as separate processes (`npx tsx src/cli/main.ts worker`) on one slide, against real
 * Redis (a fresh random prefix), the test Orthanc and the real model: a worker killed with SIGKILL
 * mid-chunk loses nothing and doubles nothing (stalled-job recovery with a short lock), a worker
 * sent SIGTERM finishes its batch and exits 0, and a store answering 429 is paused (its jobs
 * delayed) instead of failing or retrying in a storm.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDefaultModel } from '../../models/default-model.js';
import { REPO_ROOT } from '../../scripts/dev-services/fixtures.js';
import { type Api, createApi } from '../../src/api/app.js';
import { type Listening, listen } from '../../src/api/server.js';
import { type Config, loadConfig } from '../../src/config.js';
import { engineOptions } from '../../src/domain-options.js';
import { EmbeddingEngine } from '../../src/embed/index.js';
import { createLogger } from '../../src/log.js';
import { createPipelinePort } from '../../src/queue/pipeline-adapter.js';
import { FrameFetchRecorder } from '../../src/queue/service-metrics.js';
import { WorkerRuntime } from '../../src/queue/worker-runtime.js';
import { scanKeys } from '../helpers/redis.js';
import { fixture, services } from '../helpers/services.js';
import { waitFor } from '../helpers/wait.js';

const PREFIX = `pe-test-queue-${randomBytes(4).toString('hex')}`;
/** Short lock: a killed worker's chunk is taken over within seconds, not minutes. */
const LOCK_MS = 2000;
const CHUNK_PATCHES = 6;
const RATE_LIMIT_MS = 1000;
/**
 * A bound against a stuck job, not a speed check: with the whole suite running two files at once
 * (the scale and soak tests start several model-loading processes of their own), a slide that
 * takes 80 s here alone took over 150 s.
 */
const JOB_TIMEOUT_MS = 300_000;

let env: Record<string, string>;
let config: Config;
let api: Api;
let server: Listening;
let redis: Redis;
let resultsDir: string;
const logger = createLogger('silent');
const children: ChildProcess[] = [];

beforeAll(async () => {
  const { redisUrl } = services();
  resultsDir = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-queue-'));
  env = {
    REDIS_URL: redisUrl,
    PATHEMBED_QUEUE_PREFIX: PREFIX,
    PATHEMBED_RESULTS_DIR: resultsDir,
    PATHEMBED_EXECUTION_PROVIDER: 'cpu',
    PATHEMBED_INTRA_OP_THREADS: '2',
    PATHEMBED_BATCH_SIZE: '2',
    PATHEMBED_CHUNK_PATCHES: String(CHUNK_PATCHES),
    PATHEMBED_LOCK_DURATION_MS: String(LOCK_MS),
    PATHEMBED_STORE_RATE_LIMIT_MS: String(RATE_LIMIT_MS),
    // The store client gives up on a 429 after two tries, so the per-store pause takes over.
    PATHEMBED_RETRY_MAX_ATTEMPTS: '2',
    PATHEMBED_RETRY_BASE_DELAY_MS: '10',
    PATHEMBED_RETRY_MAX_TOTAL_MS: '5000',
    // In-process inference blocks this process's event loop for a batch; the API's Redis command
    // timeout must not count that against Redis.
    PATHEMBED_REDIS_COMMAND_TIMEOUT_MS: '30000',
    LOG_LEVEL: 'info',
  };
  config = loadConfig(env);
  redis = new Redis(redisUrl);
  await ensureDefaultModel(engineOptions(config), logger);
  api = await createApi(config, logger);
  server = await listen(api.app, '127.0.0.1', 0);
});

afterAll(async () => {
  for (const child of children) stopGroup(child, 'SIGKILL');
  await server?.close();
  await api?.close();
  const keys = await scanKeys(redis, PREFIX);
  if (keys.length > 0) await redis.del(...keys);
  redis?.disconnect();
  await fs.rm(resultsDir, { recursive: true, force: true });
});

interface WorkerProcess {
  readonly child: ChildProcess;
  readonly name: string;
  /** Parsed log lines (pino JSON on stderr). */
  readonly logs: Array<Record<string, unknown>>;
  readonly exited: Promise<number | null>;
}

/** A worker process of its own process group, so the whole npx → tsx → node tree can be signalled. */
function startWorker(name: string): WorkerProcess {
  const child = spawn('npx', ['tsx', 'src/cli/main.ts', 'worker', '--concurrency', '1'], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  children.push(child);
  const logs: Array<Record<string, unknown>> = [];
  let pending = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ msg: line });
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, name, logs, exited };
}

/**
 * SIGTERM to the worker itself (its pid is in every pino line), not to npx: npm does not pass the
 * signal on, it dies of it. The worker's own exit status then becomes npx's.
 */
function terminateWorker(w: WorkerProcess): void {
  const pid = w.logs.find((l) => typeof l.pid === 'number')?.pid as number | undefined;
  if (pid === undefined) throw new Error(`worker ${w.name} has not logged its pid`);
  process.kill(pid, 'SIGTERM');
}

function stopGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

function until<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = JOB_TIMEOUT_MS,
): Promise<T> {
  return waitFor(what, check, timeoutMs);
}

async function liveWorkerCount(): Promise<number> {
  return (await redis.keys(`${PREFIX}:svc:worker:*`)).length;
}

async function submit(body: unknown): Promise<string> {
  const res = await fetch(`${server.url}/v1/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as { jobs: Array<{ id: string }> };
  expect(res.status).toBe(202);
  return json.jobs[0].id;
}

async function job(
  id: string,
): Promise<{ state: string; progress: { planned: number | null; done: number }; error: unknown }> {
  return (await (await fetch(`${server.url}/v1/jobs/${id}`)).json()) as never;
}

async function finished(id: string) {
  return until(`job ${id} to finish`, async () => {
    const j = await job(id);
    return ['completed', 'failed', 'cancelled'].includes(j.state) ? j : undefined;
  });
}

/** Indices of the result's patches, checking each appears once, in order, with a full embedding. */
async function resultIndices(id: string): Promise<number[]> {
  const res = await fetch(`${server.url}/v1/jobs/${id}/result`);
  expect(res.status).toBe(200);
  const doc = (await res.json()) as { patches: Array<{ index: number; embedding: unknown }> };
  return doc.patches.map((p) => p.index);
}

const chunkEvents = (w: WorkerProcess, msg: string) =>
  w.logs.filter((l) => l.msg === msg && typeof l.chunk === 'number').map((l) => l.chunk as number);

describe('worker processes', () => {
  // Three worker processes load the model on two cores, beside other files' processes (the fault
  // soak): the default 120 s is shorter than this test's own waits (JOB_TIMEOUT_MS per step).
  it('finish a slide when one is killed mid-chunk (SIGKILL) and another stops on SIGTERM', {
    timeout: 2 * JOB_TIMEOUT_MS,
  }, async () => {
    const a = startWorker('a');
    const b = startWorker('b');
    await until(
      'two workers to announce themselves',
      async () => ((await liveWorkerCount()) >= 2 ? true : undefined),
      90_000,
    );
    // ~230 patches (an overlapping grid): enough chunks that the job outlasts a kill, a worker
    // joining and a graceful stop.
    const id = await submit({
      sources: [fixture('cmu-jpeg').seriesUrl],
      options: { minTissue: 0, stridePx: 160 },
    });

    // Kill A once it is inside a chunk it has not finished (after its first chunk started).
    const killedChunk = await until('worker A to be inside a chunk', () => {
      const started = chunkEvents(a, 'embedding chunk');
      const done = chunkEvents(a, 'chunk embedded');
      const open = started.filter((c) => !done.includes(c));
      return open.length > 0 ? open[0] : undefined;
    });
    stopGroup(a.child, 'SIGKILL');
    await a.exited;

    // A third worker joins; then B is asked to stop mid-chunk: it finishes its batch and exits 0.
    const c = startWorker('c');
    await until(
      'worker C to start',
      async () => (c.logs.some((l) => l.msg === 'worker started') ? true : undefined),
      90_000,
    );
    const doneBeforeTerm = chunkEvents(b, 'chunk embedded').length;
    await until('worker B to be inside a chunk', () =>
      chunkEvents(b, 'embedding chunk').length > doneBeforeTerm ? true : undefined,
    );
    terminateWorker(b);
    const exitCode = await Promise.race([
      b.exited,
      new Promise((r) => setTimeout(() => r('timeout'), 30_000)),
    ]);
    expect(exitCode).toBe(0);
    expect(b.logs.some((l) => l.msg === 'worker stopped')).toBe(true);

    const end = await finished(id);
    expect(end.state).toBe('completed');
    const planned = end.progress.planned as number;
    expect(planned).toBeGreaterThan(CHUNK_PATCHES * 3);
    expect(end.progress.done).toBe(planned);
    // Every patch exactly once, in plan order.
    expect(await resultIndices(id)).toEqual(Array.from({ length: planned }, (_, i) => i));
    // The chunk A died in was redone by another worker.
    expect([...chunkEvents(b, 'chunk embedded'), ...chunkEvents(c, 'chunk embedded')]).toContain(killedChunk);
    terminateWorker(c);
    expect(await c.exited).toBe(0);
  });
});

/** A store in front of the test Orthanc that answers frame requests with 429 while a storm lasts. */
async function startStormStore(upstream: string, stormMs: number) {
  const state = { storming: false, stormUntil: 0, tooMany: 0, frames: 0 };
  const srv = http.createServer(async (req, res) => {
    const isFrames = (req.url ?? '').includes('/frames/');
    if (isFrames) {
      state.frames++;
      if (!state.storming && state.stormUntil === 0) {
        state.storming = true;
        state.stormUntil = Date.now() + stormMs;
      }
      if (Date.now() < state.stormUntil) {
        state.tooMany++;
        res.writeHead(429, { 'retry-after': '1', 'content-type': 'text/plain' }).end('slow down');
        return;
      }
    }
    const upstreamRes = await fetch(`${upstream}${req.url}`, {
      headers: { accept: req.headers.accept ?? '*/*' },
    });
    const body = Buffer.from(await upstreamRes.arrayBuffer());
    res.writeHead(upstreamRes.status, {
      'content-type': upstreamRes.headers.get('content-type') ?? 'application/octet-stream',
      'content-length': String(body.length),
    });
    res.end(body);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  return { url, state, close: () => new Promise((r) => srv.close(r)) };
}

describe('a store answering 429', () => {
  it('pauses that store (its jobs delayed) instead of failing the job', {
    timeout: JOB_TIMEOUT_MS + 60_000,
  }, async () => {
    const { orthancUrl } = services();
    const store = await startStormStore(orthancUrl, 2500);
    const engine = await EmbeddingEngine.open(engineOptions(config), logger);
    const frames = new FrameFetchRecorder();
    const runtime = await WorkerRuntime.start(
      { config, logger, pipeline: createPipelinePort(config, logger, engine, { frames }), frames },
      { workerId: 'storm-worker' },
    );
    const pauseKey = `${PREFIX}:svc:store-pause:${Buffer.from(`${store.url}/dicom-web`).toString('base64url')}`;
    let pauseSeenMs = 0;
    const watch = setInterval(async () => {
      pauseSeenMs = Math.max(pauseSeenMs, await redis.pttl(pauseKey));
    }, 50);
    try {
      const series = fixture('synthetic-full').seriesUrl.replace(orthancUrl, store.url);
      const id = await submit({ sources: [series], options: { minTissue: 0 } });
      const end = await finished(id);
      expect(end.state).toBe('completed');
      expect(store.state.tooMany).toBeGreaterThan(0);
      // The store was paused (its key held a TTL) and the pause was counted, for that store.
      expect(pauseSeenMs).toBeGreaterThan(0);
      expect(Number(await redis.get(`${PREFIX}:svc:metrics:rate-limit-engaged`))).toBeGreaterThanOrEqual(1);
      expect(
        Number(
          await redis.hget(`${PREFIX}:svc:metrics:rate-limit-engaged-by-store`, `${store.url}/dicom-web`),
        ),
      ).toBeGreaterThanOrEqual(1);
      // No retry storm: a storm of 2.5 s with 1 s pauses lets only a few rounds of requests through.
      expect(store.state.tooMany).toBeLessThan(20);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).toContain(
        `pathembed_store_rate_limit_engagements_total{store="${store.url}/dicom-web"}`,
      );
    } finally {
      clearInterval(watch);
      await runtime.close();
      await store.close();
    }
  });
});
