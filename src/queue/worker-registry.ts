/**
 * Workers announce themselves in Redis: the model manifest they serve (the API derives job ids
 * from its sha256 and /readyz needs one) and a heartbeat key per process with a TTL, so the API
 * can say how many workers are alive without talking to them.
 */
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import type { Redis } from 'ioredis';
import type { ModelManifest } from '../embed/index.js';
import type { Logger } from '../log.js';
import type { ServiceKeys } from './redis-keys.js';

/** A worker missing this many seconds of heartbeats counts as gone. */
export const HEARTBEAT_TTL_S = 30;
const HEARTBEAT_INTERVAL_MS = 10_000;
const SCAN_BATCH = 100;

export interface WorkerInfo {
  readonly workerId: string;
  readonly host: string;
  readonly pid: number;
  readonly executionProvider: string;
  readonly concurrency: number;
  readonly modelSha256: string;
  readonly startedAt: number;
}

export async function readPublishedModel(
  redis: Redis,
  keys: ServiceKeys,
): Promise<ModelManifest | undefined> {
  const json = await redis.get(keys.model());
  return json ? (JSON.parse(json) as ModelManifest) : undefined;
}

export async function liveWorkers(redis: Redis, keys: ServiceKeys): Promise<WorkerInfo[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', keys.workerPattern(), 'COUNT', SCAN_BATCH);
    cursor = next;
    found.push(...batch);
  } while (cursor !== '0');
  if (found.length === 0) return [];
  const values = await redis.mget(...found);
  return values.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as WorkerInfo);
}

/** Publishes the manifest and keeps this process's heartbeat alive until `stop()`. */
export class WorkerAnnouncer {
  #timer: NodeJS.Timeout | undefined;
  readonly info: WorkerInfo;

  constructor(
    private readonly redis: Redis,
    private readonly keys: ServiceKeys,
    private readonly manifest: ModelManifest,
    details: Pick<WorkerInfo, 'workerId' | 'executionProvider' | 'concurrency'>,
    private readonly logger: Logger,
    /** A file touched on every heartbeat, for a container liveness probe (no HTTP in a worker). */
    private readonly heartbeatFile?: string,
  ) {
    this.info = {
      ...details,
      host: os.hostname(),
      pid: process.pid,
      modelSha256: manifest.sha256,
      startedAt: Date.now(),
    };
  }

  async start(): Promise<void> {
    await this.redis.set(this.keys.model(), JSON.stringify(this.manifest));
    await this.#beat();
    this.#timer = setInterval(() => {
      this.#beat().catch((err: Error) => this.logger.warn({ err: err.message }, 'worker heartbeat failed'));
    }, HEARTBEAT_INTERVAL_MS);
    this.#timer.unref();
  }

  async #beat(): Promise<void> {
    await this.redis.set(
      this.keys.worker(this.info.workerId),
      JSON.stringify(this.info),
      'EX',
      HEARTBEAT_TTL_S,
    );
    // Written only after Redis took the heartbeat: a worker cut off from Redis should be restarted.
    if (this.heartbeatFile) await writeFile(this.heartbeatFile, `${new Date().toISOString()}\n`);
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.redis.del(this.keys.worker(this.info.workerId));
  }
}
