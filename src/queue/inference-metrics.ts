/**
 * Metrics for sizing and autoscaling GPU workers: how long one inference batch takes on the device
 * (from the inference thread, so waiting behind another batch is not counted), and how long a job
 * waited in the queue before a worker took it (what KEDA or an operator scales workers on, beside
 * queue depth). Workers bucket them locally and add the counts to Redis hashes once per job, as
 * frame fetch latency is (service-metrics.ts); the API's /metrics serves the sums.
 */
import type { Redis } from 'ioredis';
import type { ServiceKeys } from './redis-keys.js';

/** Upper bounds (seconds) of one batch's inference: a GPU batch of 64-512 patches takes 0.05-2 s, a CPU batch 1-60 s. */
export const INFERENCE_BATCH_BUCKETS_S = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const;
/** Upper bounds (seconds) of the time a job waits in the queue before a worker takes it. */
export const QUEUE_WAIT_BUCKETS_S = [0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600] as const;

const SUM_FIELD = 'sum';
const COUNT_FIELD = 'count';
const INF_FIELD = '+Inf';
const MS_PER_S = 1000;

/** A histogram accumulated in this process and added to a Redis hash (per-bucket counts) on flush. */
export class HistogramRecorder {
  #counts: number[];
  #sum = 0;
  #count = 0;

  constructor(readonly buckets: readonly number[]) {
    this.#counts = new Array<number>(buckets.length + 1).fill(0);
  }

  observe(seconds: number): void {
    const i = this.buckets.findIndex((le) => seconds <= le);
    // #counts has one slot per bucket plus +Inf, so the index is always in range.
    this.#counts[i === -1 ? this.buckets.length : i]!++;
    this.#sum += seconds;
    this.#count++;
  }

  /** Queues the increments on `tx` and starts afresh; false when there was nothing to add. */
  drainInto(tx: ReturnType<Redis['multi']>, key: string): boolean {
    if (this.#count === 0) return false;
    this.#counts.forEach((n, i) => {
      if (n > 0) tx.hincrby(key, i < this.buckets.length ? String(this.buckets[i]) : INF_FIELD, n);
    });
    tx.hincrbyfloat(key, SUM_FIELD, this.#sum);
    tx.hincrby(key, COUNT_FIELD, this.#count);
    this.#counts = new Array<number>(this.buckets.length + 1).fill(0);
    this.#sum = 0;
    this.#count = 0;
    return true;
  }
}

export interface HistogramSnapshot {
  /** Cumulative counts per upper bound, in bucket order, then +Inf. */
  readonly cumulative: number[];
  readonly sum: number;
  readonly count: number;
}

export async function readHistogram(
  redis: Redis,
  key: string,
  buckets: readonly number[],
): Promise<HistogramSnapshot> {
  const hash = await redis.hgetall(key);
  let running = 0;
  const cumulative = [...buckets.map(String), INF_FIELD].map((field) => {
    running += Number(hash[field] ?? 0);
    return running;
  });
  return { cumulative, sum: Number(hash[SUM_FIELD] ?? 0), count: Number(hash[COUNT_FIELD] ?? 0) };
}

/** One worker process's inference batch latency and queue wait. */
export class InferenceMetrics {
  readonly batch = new HistogramRecorder(INFERENCE_BATCH_BUCKETS_S);
  readonly queueWait = new HistogramRecorder(QUEUE_WAIT_BUCKETS_S);

  /** Records how long a job waited between being queued (`timestamp`, ms) and being taken (`now`). */
  observeQueueWait(timestampMs: number, now = Date.now()): void {
    this.queueWait.observe(Math.max(0, now - timestampMs) / MS_PER_S);
  }

  async flush(redis: Redis, keys: ServiceKeys): Promise<void> {
    const tx = redis.multi();
    const any = [
      this.batch.drainInto(tx, keys.inferenceBatchHistogram()),
      this.queueWait.drainInto(tx, keys.queueWaitHistogram()),
    ].some(Boolean);
    if (any) await tx.exec();
    else tx.discard();
  }
}

export async function readInferenceMetrics(
  redis: Redis,
  keys: ServiceKeys,
): Promise<{ batch: HistogramSnapshot; queueWait: HistogramSnapshot }> {
  const [batch, queueWait] = await Promise.all([
    readHistogram(redis, keys.inferenceBatchHistogram(), INFERENCE_BATCH_BUCKETS_S),
    readHistogram(redis, keys.queueWaitHistogram(), QUEUE_WAIT_BUCKETS_S),
  ]);
  return { batch, queueWait };
}
