/**
 * Metrics that workers produce and the API serves: frame fetch latency, patches embedded, errors
 * by code, store rate-limit engagements. Workers run in other processes (other machines), so they
 * add their counts into Redis hashes and counters and the API's /metrics reads the sums. Frame
 * latencies are bucketed locally and flushed in one round trip per chunk, not one per request.
 */
import type { Redis } from 'ioredis';
import type { ServiceKeys } from './redis-keys.js';
import { pausedStores } from './store-pause.js';

/** Upper bounds (seconds) of the frame fetch latency histogram; +Inf is implied. */
export const FRAME_FETCH_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;
/** Width of the patches-per-time buckets, and the window /metrics averages over. */
export const PATCH_BUCKET_S = 10;
export const PATCH_RATE_WINDOW_BUCKETS = 6;
const PATCH_BUCKET_TTL_S = PATCH_BUCKET_S * (PATCH_RATE_WINDOW_BUCKETS + 2);

const SUM_FIELD = 'sum';
const COUNT_FIELD = 'count';
const INF_FIELD = '+Inf';

/** Per-process accumulation of frame fetch latencies, flushed to Redis as increments. */
export class FrameFetchRecorder {
  #buckets = new Array<number>(FRAME_FETCH_BUCKETS_S.length + 1).fill(0);
  #sum = 0;
  #count = 0;

  observe(seconds: number): void {
    const i = FRAME_FETCH_BUCKETS_S.findIndex((le) => seconds <= le);
    this.#buckets[i === -1 ? FRAME_FETCH_BUCKETS_S.length : i]!++;
    this.#sum += seconds;
    this.#count++;
  }

  async flush(redis: Redis, keys: ServiceKeys): Promise<void> {
    if (this.#count === 0) return;
    const buckets = this.#buckets;
    const sum = this.#sum;
    const count = this.#count;
    this.#buckets = new Array<number>(FRAME_FETCH_BUCKETS_S.length + 1).fill(0);
    this.#sum = 0;
    this.#count = 0;
    const tx = redis.multi();
    const key = keys.frameFetchHistogram();
    // Stored per bucket (not cumulative), so increments from many workers simply add up.
    buckets.forEach((n, i) => {
      if (n > 0)
        tx.hincrby(key, i < FRAME_FETCH_BUCKETS_S.length ? String(FRAME_FETCH_BUCKETS_S[i]) : INF_FIELD, n);
    });
    tx.hincrbyfloat(key, SUM_FIELD, sum);
    tx.hincrby(key, COUNT_FIELD, count);
    await tx.exec();
  }
}

export async function recordPatches(
  redis: Redis,
  keys: ServiceKeys,
  patches: number,
  now = Date.now(),
): Promise<void> {
  const bucket = Math.floor(now / 1000 / PATCH_BUCKET_S);
  await redis
    .multi()
    .incrby(keys.patchesTotal(), patches)
    .incrby(keys.patchesInBucket(bucket), patches)
    .expire(keys.patchesInBucket(bucket), PATCH_BUCKET_TTL_S)
    .exec();
}

export interface FrameFetchSnapshot {
  /** Cumulative counts per upper bound, in FRAME_FETCH_BUCKETS_S order, then +Inf. */
  readonly cumulative: number[];
  readonly sum: number;
  readonly count: number;
}

export interface ServiceMetricsSnapshot {
  readonly frameFetch: FrameFetchSnapshot;
  readonly patchesTotal: number;
  readonly patchesPerSecond: number;
  readonly errorsByCode: Record<string, number>;
  readonly rateLimitEngagements: number;
  /** Store base URL → times its 429s paused it. */
  readonly rateLimitEngagementsByStore: Record<string, number>;
  /** Store base URL → ms its pause still lasts, for stores paused now. */
  readonly pausedStores: Record<string, number>;
}

export async function readServiceMetrics(
  redis: Redis,
  keys: ServiceKeys,
  now = Date.now(),
): Promise<ServiceMetricsSnapshot> {
  const current = Math.floor(now / 1000 / PATCH_BUCKET_S);
  // The current bucket is still filling: average over the full ones before it.
  const windowKeys = Array.from({ length: PATCH_RATE_WINDOW_BUCKETS }, (_, i) =>
    keys.patchesInBucket(current - 1 - i),
  );
  const [hist, total, windowCounts, errors, engagements, byStore, paused] = await Promise.all([
    redis.hgetall(keys.frameFetchHistogram()),
    redis.get(keys.patchesTotal()),
    redis.mget(...windowKeys),
    redis.hgetall(keys.errorCounts()),
    redis.get(keys.rateLimitEngagements()),
    redis.hgetall(keys.rateLimitEngagementsByStore()),
    pausedStores({ redis, keys }),
  ]);
  let running = 0;
  const cumulative = [...FRAME_FETCH_BUCKETS_S.map(String), INF_FIELD].map((field) => {
    running += Number(hist[field] ?? 0);
    return running;
  });
  const windowSum = windowCounts.reduce((s, v) => s + Number(v ?? 0), 0);
  return {
    frameFetch: { cumulative, sum: Number(hist[SUM_FIELD] ?? 0), count: Number(hist[COUNT_FIELD] ?? 0) },
    patchesTotal: Number(total ?? 0),
    patchesPerSecond: windowSum / (PATCH_BUCKET_S * PATCH_RATE_WINDOW_BUCKETS),
    errorsByCode: Object.fromEntries(Object.entries(errors).map(([code, n]) => [code, Number(n)])),
    rateLimitEngagements: Number(engagements ?? 0),
    rateLimitEngagementsByStore: Object.fromEntries(
      Object.entries(byStore).map(([store, n]) => [store, Number(n)]),
    ),
    pausedStores: paused,
  };
}
