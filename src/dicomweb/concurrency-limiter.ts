/**
 * Per-store request concurrency: at most N requests in flight to one origin from this process
 * (PATHEMBED_STORE_CONCURRENCY), however many clients, jobs or slides share it. Stores throttle
 * per caller (Google Healthcare quotas, a small Orthanc's thread pool), so the limit belongs to
 * the store, not to one client. A slot covers one attempt (request and body); backoff waits hold
 * no slot, so a retrying request does not starve the others.
 */

/** A FIFO semaphore. Waiters that abort leave the queue at once. */
export class ConcurrencyLimiter {
  readonly limit: number;
  #active = 0;
  readonly #waiting: Array<{ grant: () => void }> = [];

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError(`concurrency limit must be an integer >= 1, got ${limit}`);
    this.limit = limit;
  }

  /** Requests running now. */
  get active(): number {
    return this.#active;
  }

  /** Requests waiting for a slot. */
  get queued(): number {
    return this.#waiting.length;
  }

  /** Runs `task` once a slot is free; rejects with the signal's reason if it aborts while waiting. */
  async run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.#acquire(signal);
    try {
      return await task();
    } finally {
      this.#release();
    }
  }

  #acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#active < this.limit) {
      this.#active++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        const i = this.#waiting.indexOf(waiter);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(waiter);
    });
  }

  #release(): void {
    const next = this.#waiting.shift();
    // The slot passes straight to the next waiter, so `active` never dips and lets a newcomer jump the queue.
    if (next) next.grant();
    else this.#active--;
  }
}

/** One limiter per store origin (scheme://host:port). */
export class StoreLimiters {
  readonly limitPerStore: number;
  readonly #byOrigin = new Map<string, ConcurrencyLimiter>();
  static readonly #shared = new Map<number, StoreLimiters>();

  constructor(limitPerStore: number) {
    this.limitPerStore = limitPerStore;
  }

  /** The process-wide registry for this limit: every client built from the same config shares it. */
  static shared(limitPerStore: number): StoreLimiters {
    let limiters = StoreLimiters.#shared.get(limitPerStore);
    if (!limiters) {
      limiters = new StoreLimiters(limitPerStore);
      StoreLimiters.#shared.set(limitPerStore, limiters);
    }
    return limiters;
  }

  forUrl(url: string | URL): ConcurrencyLimiter {
    const origin = (typeof url === 'string' ? new URL(url) : url).origin;
    let limiter = this.#byOrigin.get(origin);
    if (!limiter) {
      limiter = new ConcurrencyLimiter(this.limitPerStore);
      this.#byOrigin.set(origin, limiter);
    }
    return limiter;
  }
}
