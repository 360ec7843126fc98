/**
 * Cancelling a job across processes: the API sets a `cancelled` key (for workers that start a
 * chunk later) and publishes the job id (for workers embedding one now). Each worker process keeps
 * one subscriber; a running chunk holds an AbortSignal from `watch()` that fires on the message,
 * and the pipeline checks it between batches, so a cancelled job stops within one batch.
 */
import type { Redis } from 'ioredis';
import { PathembedError } from '../errors.js';
import type { Logger } from '../log.js';
import { RECORD_RETENTION_S } from './job-record.js';
import type { ServiceKeys } from './redis-keys.js';

export async function requestCancel(redis: Redis, keys: ServiceKeys, jobId: string): Promise<void> {
  await redis.set(keys.cancelled(jobId), '1', 'EX', RECORD_RETENTION_S);
  await redis.publish(keys.cancelChannel(), jobId);
}

export function cancelledError(jobId: string): PathembedError {
  return new PathembedError('JOB_CANCELLED', `Job ${jobId} was cancelled`, { jobId });
}

export interface CancelWatch {
  readonly signal: AbortSignal;
  release(): void;
}

/** One per worker process: a dedicated subscriber connection fanning cancel messages to signals. */
export class CancelWatcher {
  readonly #subscriber: Redis;
  readonly #controllers = new Map<string, Set<AbortController>>();
  #ready: Promise<unknown>;

  constructor(
    private readonly redis: Redis,
    private readonly keys: ServiceKeys,
    private readonly logger: Logger,
  ) {
    // A connection in subscriber mode can run nothing else, hence its own.
    this.#subscriber = redis.duplicate();
    // It reconnects (and resubscribes) by itself; an unhandled 'error' event would only be noise.
    this.#subscriber.on('error', () => undefined);
    this.#subscriber.on('message', (_channel: string, jobId: string) => this.#abort(jobId));
    this.#ready = this.#subscriber.subscribe(keys.cancelChannel());
    // Closed before it was ready (a process that stops at start on a bad config), the subscription
    // rejects with "Connection is closed"; `ready()` still sees that, but left unobserved it would
    // end the process as an unhandled rejection before the real error is printed.
    this.#ready.catch(() => undefined);
  }

  async ready(): Promise<void> {
    await this.#ready;
  }

  async isCancelled(jobId: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.cancelled(jobId))) === 1;
  }

  /**
   * A signal that aborts when `jobId` is cancelled (or already was), or when `parent` aborts.
   * Always `release()` it when the work ends.
   */
  async watch(jobId: string, parent?: AbortSignal): Promise<CancelWatch> {
    const controller = new AbortController();
    let set = this.#controllers.get(jobId);
    if (!set) {
      set = new Set();
      this.#controllers.set(jobId, set);
    }
    set.add(controller);
    const onParentAbort = () => controller.abort(parent?.reason);
    if (parent?.aborted) controller.abort(parent.reason);
    else parent?.addEventListener('abort', onParentAbort, { once: true });
    // Checked after subscribing, so a cancel between the check and the subscription is not lost.
    if (await this.isCancelled(jobId)) controller.abort(cancelledError(jobId));
    return {
      signal: controller.signal,
      release: () => {
        parent?.removeEventListener('abort', onParentAbort);
        set.delete(controller);
        if (set.size === 0) this.#controllers.delete(jobId);
      },
    };
  }

  #abort(jobId: string): void {
    const set = this.#controllers.get(jobId);
    if (!set) return;
    this.logger.info({ jobId, running: set.size }, 'job cancelled: stopping its running work');
    for (const c of set) c.abort(cancelledError(jobId));
  }

  async close(): Promise<void> {
    this.#subscriber.disconnect();
  }
}
