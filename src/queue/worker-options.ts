/**
 * Options of a worker process, typed with their defaults, resolved once from the config and the
 * command line. The lock duration is fitted to GPU batches: long enough that a healthy worker
 * renews it between batches, short enough that a dead worker's chunk is taken over soon.
 */
import os from 'node:os';
import type { Config } from '../config.js';

export interface WorkerOptions {
  /** Jobs this process runs at once. Default PATHEMBED_WORKER_CONCURRENCY. */
  readonly concurrency: number;
  /** BullMQ lock of a running job, ms. Default PATHEMBED_LOCK_DURATION_MS. */
  readonly lockDurationMs: number;
  /** How often this worker looks for stalled jobs (locks that expired), ms. Default: half the lock. */
  readonly stalledIntervalMs: number;
  /** Times a job may stall (its worker died) before it fails. Default 3. */
  readonly maxStalledCount: number;
  /** Least pause of a store that answered 429, ms (its Retry-After may ask for more). Default PATHEMBED_STORE_RATE_LIMIT_MS. */
  readonly storeRateLimitMs: number;
  /** Name in logs and the worker registry. Default host-pid. */
  readonly workerId: string;
  /** File touched on every heartbeat (container liveness probes). Default: none. */
  readonly heartbeatFile?: string;
}

export const DEFAULT_MAX_STALLED_COUNT = 3;

export function workerOptionsFrom(config: Config, overrides: Partial<WorkerOptions> = {}): WorkerOptions {
  const lockDurationMs = overrides.lockDurationMs ?? config.PATHEMBED_LOCK_DURATION_MS;
  return {
    concurrency: overrides.concurrency ?? config.PATHEMBED_WORKER_CONCURRENCY,
    lockDurationMs,
    // Checking at half the lock finds a dead worker's job at most 1.5 locks after its last renewal.
    stalledIntervalMs: overrides.stalledIntervalMs ?? Math.max(500, Math.floor(lockDurationMs / 2)),
    maxStalledCount: overrides.maxStalledCount ?? DEFAULT_MAX_STALLED_COUNT,
    storeRateLimitMs: overrides.storeRateLimitMs ?? config.PATHEMBED_STORE_RATE_LIMIT_MS,
    workerId: overrides.workerId ?? `${os.hostname()}-${process.pid}`,
    ...(overrides.heartbeatFile ? { heartbeatFile: overrides.heartbeatFile } : {}),
  };
}
