/**
 * The service in one test process, for the fault tests: the real API on a free port and, when
 * asked, a real worker (WorkerRuntime, the real model on 2 threads), on a Redis the test names and
 * a fresh random queue prefix. Helpers submit jobs, wait for a final state, read a result's patch
 * indices, and list what a job left on disk (temporary files, a job's folder).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { ensureDefaultModel } from '../../models/default-model.js';
import { type Api, createApi } from '../../src/api/app.js';
import { type Listening, listen } from '../../src/api/server.js';
import { type Config, loadConfig } from '../../src/config.js';
import { engineOptions } from '../../src/domain-options.js';
import { EmbeddingEngine } from '../../src/embed/index.js';
import { createLogger } from '../../src/log.js';
import { createPipelinePort } from '../../src/queue/pipeline-adapter.js';
import { FrameFetchRecorder } from '../../src/queue/service-metrics.js';
import { WorkerRuntime } from '../../src/queue/worker-runtime.js';
import { scanKeys } from './redis.js';
import { waitFor } from './wait.js';

export interface JobView {
  readonly id: string;
  readonly state: string;
  readonly progress: { planned: number | null; done: number };
  readonly error?: { code: string; message: string };
}

export interface HarnessOptions {
  readonly redisUrl: string;
  /** Config variables on top of the harness's defaults. */
  readonly env?: Record<string, string>;
  /** Start an in-process worker too (default true). */
  readonly worker?: boolean;
  /** Results folder (default: a fresh temporary one, removed at close). */
  readonly resultsDir?: string;
}

export interface Harness {
  readonly config: Config;
  readonly env: Record<string, string>;
  readonly prefix: string;
  readonly resultsDir: string;
  readonly redis: Redis;
  readonly url: string;
  readonly api: Api;
  readonly worker?: WorkerRuntime;
  /** POST /v1/jobs with one source; returns the job id. */
  submit(source: string, extra?: Record<string, unknown>): Promise<string>;
  job(id: string): Promise<JobView>;
  /** Polls until the job is completed, failed or cancelled. */
  final(id: string, timeoutMs?: number): Promise<JobView>;
  /** The JSON result's patch indices, in file order. */
  resultIndices(id: string): Promise<number[]>;
  /** Every `*.tmp` file under the results folder. */
  tempFiles(): Promise<string[]>;
  /** Files under the job's folder in the results folder (none when it is gone). */
  jobFiles(id: string): Promise<string[]>;
  close(): Promise<void>;
}

const DEFAULT_FINAL_TIMEOUT_MS = 120_000;

/** waitFor (test/helpers/wait.ts) with the harness's longer default deadline. */
export function until<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = DEFAULT_FINAL_TIMEOUT_MS,
): Promise<T> {
  return waitFor(what, check, timeoutMs);
}

export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw err;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

const FINAL_STATES = new Set(['completed', 'failed', 'cancelled']);

export async function startHarness(options: HarnessOptions): Promise<Harness> {
  const prefix = `pe-test-fault-${randomBytes(4).toString('hex')}`;
  const ownResults = options.resultsDir === undefined;
  const resultsDir = options.resultsDir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-fault-')));
  const env: Record<string, string> = {
    REDIS_URL: options.redisUrl,
    PATHEMBED_QUEUE_PREFIX: prefix,
    PATHEMBED_RESULTS_DIR: resultsDir,
    PATHEMBED_EXECUTION_PROVIDER: 'cpu',
    PATHEMBED_INTRA_OP_THREADS: '2',
    PATHEMBED_BATCH_SIZE: '4',
    PATHEMBED_CHUNK_PATCHES: '4',
    PATHEMBED_LOCK_DURATION_MS: '5000',
    PATHEMBED_JOB_ATTEMPTS: '3',
    PATHEMBED_JOB_BACKOFF_MS: '200',
    PATHEMBED_RECONCILE_INTERVAL_MS: '1000',
    PATHEMBED_RECONCILE_GRACE_MS: '0',
    PATHEMBED_RETRY_MAX_ATTEMPTS: '3',
    PATHEMBED_RETRY_BASE_DELAY_MS: '10',
    PATHEMBED_RETRY_MAX_DELAY_MS: '100',
    PATHEMBED_RETRY_MAX_TOTAL_MS: '10000',
    PATHEMBED_STORE_RATE_LIMIT_MS: '1000',
    // The API shares this process with a worker whose inference blocks the event loop for a
    // whole batch, which a short command timeout would count against Redis. Redis being down
    // still fails at once (no offline queue), which is what fault-redis checks.
    PATHEMBED_REDIS_COMMAND_TIMEOUT_MS: '30000',
    LOG_LEVEL: 'silent',
    ...options.env,
  };
  const config = loadConfig(env);
  const logger = createLogger(config.LOG_LEVEL);
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
  redis.on('error', () => undefined);
  let worker: WorkerRuntime | undefined;
  if (options.worker !== false) {
    await ensureDefaultModel(engineOptions(config), logger);
    const engine = await EmbeddingEngine.open(engineOptions(config), logger);
    const frames = new FrameFetchRecorder();
    worker = await WorkerRuntime.start(
      { config, logger, pipeline: createPipelinePort(config, logger, engine, { frames }), frames },
      { workerId: `fault-worker-${prefix}` },
    );
  }
  const api = await createApi(config, logger);
  const server: Listening = await listen(api.app, '127.0.0.1', 0);
  const url = server.url;

  const job = async (id: string): Promise<JobView> =>
    (await (await fetch(`${url}/v1/jobs/${id}`)).json()) as JobView;

  return {
    config,
    env,
    prefix,
    resultsDir,
    redis,
    url,
    api,
    worker,
    async submit(source, extra = {}) {
      const res = await fetch(`${url}/v1/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ sources: [source], ...extra }),
      });
      const body = (await res.json()) as { jobs?: Array<{ id: string }>; error?: unknown };
      if (res.status !== 202 || !body.jobs)
        throw new Error(`submit answered ${res.status}: ${JSON.stringify(body)}`);
      return body.jobs[0].id;
    },
    job,
    final(id, timeoutMs = DEFAULT_FINAL_TIMEOUT_MS) {
      return until(
        `job ${id} to end`,
        async () => {
          const j = await job(id);
          return FINAL_STATES.has(j.state) ? j : undefined;
        },
        timeoutMs,
      );
    },
    async resultIndices(id) {
      const res = await fetch(`${url}/v1/jobs/${id}/result`);
      if (res.status !== 200) throw new Error(`result of ${id} answered ${res.status}`);
      const doc = (await res.json()) as { patches: Array<{ index: number }> };
      return doc.patches.map((p) => p.index);
    },
    async tempFiles() {
      return (await filesUnder(resultsDir)).filter((f) => f.endsWith('.tmp'));
    },
    jobFiles(id) {
      return filesUnder(path.join(resultsDir, 'jobs', id));
    },
    async close() {
      await server.close();
      await api.close();
      await worker?.close();
      const keys = await scanKeys(redis, prefix).catch(() => []);
      if (keys.length > 0) await redis.del(...keys).catch(() => undefined);
      redis.disconnect();
      if (ownResults) await fs.rm(resultsDir, { recursive: true, force: true });
    },
  };
}

/** 0 … n-1: what a completed job's patch indices must be. */
export function everyIndex(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
