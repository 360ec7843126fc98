/**
 * A short, bounded soak: the real service as separate processes (`pathembed serve`, three
 * `pathembed worker`s) on a private redis-server, with several slide jobs in flight while workers
 * and the API are killed with SIGKILL at random moments (and started again), and Redis is stopped
 * and restarted once. The client retries a submit the dead API did not answer, as any client
 * would. At the end nothing is lost (every job completed, every planned patch in its result),
 * nothing doubled (each patch exactly once, one job per distinct request) and nothing stuck (no
 * unfinished record, no queued or active queue job, no temporary file, no chunk left behind).
 * The random choices come from a seed printed with the summary, so a failure can be replayed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDefaultModel } from '../../models/default-model.js';
import { REPO_ROOT } from '../../scripts/dev-services/fixtures.js';
import { freePort } from '../../scripts/dev-services/ports.js';
import { loadConfig } from '../../src/config.js';
import { engineOptions } from '../../src/domain-options.js';
import { createLogger } from '../../src/log.js';
import { JobRecordStore } from '../../src/queue/job-record.js';
import { ServiceKeys } from '../../src/queue/redis-keys.js';
import { type PrivateRedis, scanKeys, startPrivateRedis } from '../helpers/redis.js';
import { everyIndex, filesUnder, until } from '../helpers/service-harness.js';
import { fixture } from '../helpers/services.js';

const WORKERS = 3;
/** Distinct requests (stride in px): each is one job of 12 patches (3 chunks) on the synthetic slide. */
const STRIDES_PX = [224, 220, 216, 212, 208, 204];
const LOCK_MS = 3000;
/**
 * The whole soak, chaos and completion, must end within this: a bound against a stuck job, far
 * above the 70-115 s it takes on a 2-core machine (most of it four processes loading the model).
 */
const SOAK_LIMIT_MS = 240_000;
/** Vitest's limit for the test: the soak's own limit plus starting and stopping the processes. */
const TEST_TIMEOUT_MS = SOAK_LIMIT_MS + 60_000;
const SEED = Number(process.env.PATHEMBED_SOAK_SEED ?? Date.now() % 1_000_000);

/** mulberry32: a small seeded generator, so a run's kills can be replayed from its seed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly log: string[];
  readonly exited: Promise<unknown>;
}

let redis: PrivateRedis;
let client: Redis;
let resultsDir: string;
let env: Record<string, string>;
let apiPort: number;
const procs: Proc[] = [];
const prefix = `pe-test-soak-${randomBytes(4).toString('hex')}`;

function start(name: string, args: string[]): Proc {
  // node --import tsx: one process per role (no npx wrapper), so SIGKILL hits the service itself.
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log: string[] = [];
  child.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
  const proc = { name, child, log, exited: new Promise((r) => child.once('exit', r)) };
  procs.push(proc);
  return proc;
}

const startWorker = (n: number) => start(`worker-${n}`, ['worker', '--concurrency', '1']);
const startApi = () => start('api', ['serve', '--port', String(apiPort)]);

async function kill(p: Proc): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await p.exited;
}

beforeAll(async () => {
  redis = await startPrivateRedis();
  resultsDir = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-soak-'));
  apiPort = await freePort();
  env = {
    REDIS_URL: redis.url,
    PATHEMBED_QUEUE_PREFIX: prefix,
    PATHEMBED_RESULTS_DIR: resultsDir,
    PATHEMBED_EXECUTION_PROVIDER: 'cpu',
    PATHEMBED_INTRA_OP_THREADS: '1',
    PATHEMBED_DECODE_THREADS: '1',
    PATHEMBED_BATCH_SIZE: '4',
    PATHEMBED_CHUNK_PATCHES: '4',
    PATHEMBED_LOCK_DURATION_MS: String(LOCK_MS),
    PATHEMBED_JOB_ATTEMPTS: '5',
    PATHEMBED_JOB_BACKOFF_MS: '200',
    PATHEMBED_RECONCILE_INTERVAL_MS: '1000',
    PATHEMBED_RECONCILE_GRACE_MS: '2000',
    LOG_LEVEL: 'warn',
  };
  await ensureDefaultModel(engineOptions(loadConfig(env)), createLogger('silent'));
  client = new Redis(redis.url, { maxRetriesPerRequest: null });
  client.on('error', () => undefined);
});

afterAll(async () => {
  for (const p of procs) await kill(p);
  await redis?.start().catch(() => undefined);
  client?.disconnect();
  await redis?.close();
  await fs.rm(resultsDir, { recursive: true, force: true });
});

const api = () => `http://127.0.0.1:${apiPort}`;

/** POST until an API answers (it may be dead or restarting): the same request, so idempotent. */
async function submit(stridePx: number, deadline: number): Promise<string> {
  const body = JSON.stringify({
    sources: [fixture('synthetic-full').seriesUrl],
    options: { minTissue: 0, stridePx },
  });
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${api()}/v1/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(5000),
      });
      if (res.status === 202) return ((await res.json()) as { jobs: Array<{ id: string }> }).jobs[0].id;
    } catch {
      // not answering: killed, restarting, or Redis is down
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`could not submit stride ${stridePx}`);
}

async function record(id: string) {
  try {
    const res = await fetch(`${api()}/v1/jobs/${id}`, { signal: AbortSignal.timeout(5000) });
    if (res.status !== 200) return undefined;
    return (await res.json()) as { state: string; progress: { planned: number | null; done: number } };
  } catch {
    return undefined;
  }
}

describe('soak: jobs under random SIGKILLs and a Redis restart', () => {
  it('loses, doubles and strands nothing', { timeout: TEST_TIMEOUT_MS }, async () => {
    const began = Date.now();
    const deadline = began + SOAK_LIMIT_MS;
    const random = seeded(SEED);
    const workers = Array.from({ length: WORKERS }, (_, n) => startWorker(n));
    let apiProc = startApi();
    let nextWorker = WORKERS;
    await until(
      'the API to be ready with every worker',
      async () => {
        try {
          const res = await fetch(`${api()}/readyz`);
          return res.status === 200 && ((await res.json()) as { workers: number }).workers >= WORKERS;
        } catch {
          return false;
        }
      },
      90_000,
    );
    const readyMs = Date.now() - began;

    // Submissions and chaos at once: the chaos loop kills while jobs are being submitted and run.
    const events: string[] = [];
    const ids = new Map<number, string>();
    const submitting = (async () => {
      for (const stride of STRIDES_PX) {
        ids.set(stride, await submit(stride, deadline));
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    const chaos = ['worker', 'api', 'worker', 'redis', 'worker', 'api'];
    for (const kind of chaos) {
      await new Promise((r) => setTimeout(r, 1000 + random() * 2000));
      if (kind === 'worker') {
        const victim = workers.splice(Math.floor(random() * workers.length), 1)[0];
        await kill(victim);
        workers.push(startWorker(nextWorker++));
        events.push(`SIGKILL ${victim.name}`);
      } else if (kind === 'api') {
        await kill(apiProc);
        apiProc = startApi();
        events.push('SIGKILL api');
      } else {
        await redis.stop();
        await new Promise((r) => setTimeout(r, 1500));
        await redis.start();
        events.push('redis restart');
      }
    }
    await submitting;
    // Resubmitting every request must give back the same jobs: nothing doubled.
    for (const stride of STRIDES_PX) expect(await submit(stride, deadline)).toBe(ids.get(stride));

    const ends = new Map<string, { state: string; progress: { planned: number | null; done: number } }>();
    await until(
      'every job to end',
      async () => {
        for (const id of ids.values()) {
          const r = await record(id);
          if (r && ['completed', 'failed', 'cancelled'].includes(r.state)) ends.set(id, r);
        }
        return ends.size === ids.size ? true : undefined;
      },
      Math.max(1000, deadline - Date.now()),
    );

    let patches = 0;
    for (const id of ids.values()) {
      const end = ends.get(id);
      expect({ id, state: end?.state }).toEqual({ id, state: 'completed' });
      const planned = end?.progress.planned as number;
      expect(end?.progress.done).toBe(planned);
      const doc = (await (await fetch(`${api()}/v1/jobs/${id}/result`)).json()) as {
        patches: Array<{ index: number }>;
      };
      expect(doc.patches.map((p) => p.index)).toEqual(everyIndex(planned));
      patches += planned;
    }
    expect(new Set(ids.values()).size).toBe(STRIDES_PX.length);

    // Nothing stuck: no unfinished record, no live queue job, no temporary file, no chunk folder.
    const records = new JobRecordStore(client, new ServiceKeys(prefix));
    expect(await records.inFlightIds()).toEqual([]);
    const queueKeys = (await scanKeys(client, `${prefix}:embed`)).filter((k) =>
      /:(wait|active|delayed|prioritized|waiting-children|paused)$/.test(k),
    );
    const live = await Promise.all(queueKeys.map(async (k) => [k, await client.type(k)] as const));
    for (const [key, type] of live) {
      const size = type === 'list' ? await client.llen(key) : type === 'zset' ? await client.zcard(key) : 0;
      expect({ key, size }).toEqual({ key, size: 0 });
    }
    const files = await filesUnder(resultsDir);
    expect(files.filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(files.filter((f) => f.includes(`${path.sep}chunks${path.sep}`))).toEqual([]);

    console.log(
      JSON.stringify({
        soak: {
          seed: SEED,
          jobs: ids.size,
          patches,
          workers: WORKERS,
          events,
          readyMs,
          totalMs: Date.now() - began,
          lost: 0,
          doubled: 0,
          stuck: 0,
        },
      }),
    );
  });
});
