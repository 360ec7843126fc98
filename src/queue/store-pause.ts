/**
 * The per-store pause: a store that answers 429 (after the request-level retries) is paused for
 * PATHEMBED_STORE_RATE_LIMIT_MS or its Retry-After, whichever is longer, by a Redis key with that
 * TTL. Every worker checks the keys of a job's stores before running it, and a job of a paused
 * store is moved to delayed until the pause ends (no attempt used), so jobs of other stores keep
 * the workers busy. A whole-queue pause (BullMQ's rate limiter, as before) would have stopped a
 * cohort spanning stores because one of them was overloaded.
 */
import type { Job } from 'bullmq';
import type { PathembedError } from '../errors.js';
import type { PredictJobData } from './predict-jobs.js';
import type { QueueContext } from './queue-context.js';
import { type AssembleJobData, type ChunkJobData, JOB_NAMES, type SlideJobData } from './queue-jobs.js';
import { retryAfterMs } from './retry-policy.js';

/** The DICOMweb base URLs a job reads from or writes to. */
export async function storesOfJob(ctx: QueueContext, job: Job): Promise<string[]> {
  switch (job.name) {
    case JOB_NAMES.slide:
      return [(job.data as SlideJobData).source.baseUrl];
    case JOB_NAMES.chunk:
    case JOB_NAMES.assemble: {
      const data = job.data as ChunkJobData | AssembleJobData;
      const raw = await ctx.redis.hget(ctx.keys.job(data.jobId), 'source');
      const stores = raw ? [(JSON.parse(raw) as { baseUrl: string }).baseUrl] : [];
      const destination = (data as AssembleJobData).srDestination;
      if (destination && !stores.includes(destination)) stores.push(destination);
      return stores;
    }
    case JOB_NAMES.predict: {
      const stores = new Set<string>();
      for (const item of (job.data as PredictJobData).items) {
        if (item.kind === 'dicom') stores.add(item.source.baseUrl);
      }
      return [...stores];
    }
    default:
      return [];
  }
}

/** How long the longest pause among `stores` still lasts, in ms (0: none is paused). */
export async function pausedForMs(ctx: QueueContext, stores: readonly string[]): Promise<number> {
  if (stores.length === 0) return 0;
  const ttls = await Promise.all(stores.map((s) => ctx.redis.pttl(ctx.keys.storePause(s))));
  return Math.max(0, ...ttls);
}

/**
 * Which of the job's stores answered 429: the one whose base URL the failed request's URL starts
 * with (an assemble job reads one store and may write to another), else the job's first store.
 */
export function storeAsking(err: PathembedError, stores: readonly string[]): string | undefined {
  const url = (err.details as Record<string, unknown>).url;
  if (typeof url === 'string') {
    const match = stores.find((s) => url === s || url.startsWith(`${s}/`));
    if (match) return match;
  }
  return stores[0];
}

/** Pauses a store (the longer of `minMs` and the store's Retry-After) and counts it; returns the pause. */
export async function pauseStore(
  ctx: QueueContext,
  store: string,
  err: PathembedError,
  minMs: number,
): Promise<number> {
  const ms = Math.max(minMs, retryAfterMs(err) ?? 0);
  await ctx.redis
    .multi()
    // Never shortens a longer pause another worker set: NX first, then extend only when longer.
    .set(ctx.keys.storePause(store), String(ms), 'PX', ms, 'NX')
    .incr(ctx.keys.rateLimitEngagements())
    .hincrby(ctx.keys.rateLimitEngagementsByStore(), store, 1)
    .exec();
  const left = await ctx.redis.pttl(ctx.keys.storePause(store));
  if (left < ms) await ctx.redis.set(ctx.keys.storePause(store), String(ms), 'PX', ms);
  return ms;
}

/** Stores paused now → ms left, for /metrics. */
export async function pausedStores(
  ctx: Pick<QueueContext, 'redis' | 'keys'>,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  let cursor = '0';
  do {
    const [next, keys] = await ctx.redis.scan(cursor, 'MATCH', ctx.keys.storePausePattern(), 'COUNT', 100);
    cursor = next;
    for (const key of keys) {
      const ttl = await ctx.redis.pttl(key);
      if (ttl > 0) out[ctx.keys.storeOfPauseKey(key)] = ttl;
    }
  } while (cursor !== '0');
  return out;
}
