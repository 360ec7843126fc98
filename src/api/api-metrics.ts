/**
 * /metrics: Prometheus text from a registry of this app's own (no global state, so tests can build
 * several apps). Queue depth comes from BullMQ at scrape time; worker-side figures (frame fetch
 * latency, patches embedded, job errors, store rate limiting) come from the sums workers keep in
 * Redis (queue/service-metrics.ts) and are exposed through small custom metric objects, since
 * prom-client cannot load a histogram from bucket counts.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { Counter, collectDefaultMetrics, Gauge, type Metric, Registry } from 'prom-client';
import {
  type HistogramSnapshot,
  INFERENCE_BATCH_BUCKETS_S,
  QUEUE_WAIT_BUCKETS_S,
  readInferenceMetrics,
} from '../queue/inference-metrics.js';
import type { ServiceKeys } from '../queue/redis-keys.js';
import {
  FRAME_FETCH_BUCKETS_S,
  readServiceMetrics,
  type ServiceMetricsSnapshot,
} from '../queue/service-metrics.js';
import { liveWorkers } from '../queue/worker-registry.js';

/** BullMQ states reported as queue depth. */
const QUEUE_STATES = [
  'waiting',
  'prioritized',
  'active',
  'delayed',
  'waiting-children',
  'failed',
  'completed',
] as const;
/** One scrape reads Redis once, however many metrics use the snapshot. */
const SNAPSHOT_REUSE_MS = 500;

interface MetricValue {
  value: number;
  labels?: Record<string, string | number>;
  metricName?: string;
}

/** A metric whose values are computed at scrape time from another process's counts. */
class ComputedMetric {
  readonly aggregator = 'sum';
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
    private readonly compute: () => Promise<MetricValue[]>,
  ) {}

  async get() {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: await this.compute(),
    };
  }

  reset(): void {}
}

/** Prometheus histogram samples (_bucket per bound and +Inf, _sum, _count) of a Redis snapshot. */
function histogramValues(name: string, buckets: readonly number[], h: HistogramSnapshot): MetricValue[] {
  return [
    ...buckets.map((le, i) => ({
      value: h.cumulative[i] ?? 0,
      labels: { le },
      metricName: `${name}_bucket`,
    })),
    { value: h.cumulative.at(-1) ?? 0, labels: { le: '+Inf' }, metricName: `${name}_bucket` },
    { value: h.sum, metricName: `${name}_sum` },
    { value: h.count, metricName: `${name}_count` },
  ];
}

export interface MetricsSources {
  readonly queue: Queue;
  readonly redis: Redis;
  readonly keys: ServiceKeys;
}

export class ApiMetrics {
  readonly registry = new Registry();
  readonly apiErrors: Counter<'code'>;
  #snapshot: { at: number; value: Promise<ServiceMetricsSnapshot> } | undefined;
  #inference: { at: number; value: ReturnType<typeof readInferenceMetrics> } | undefined;

  constructor(private readonly sources: MetricsSources) {
    const registry = this.registry;
    collectDefaultMetrics({ register: registry, prefix: 'pathembed_api_' });
    this.apiErrors = new Counter({
      name: 'pathembed_api_errors_total',
      help: 'API requests answered with an error, by error code',
      labelNames: ['code'],
      registers: [registry],
    });
    new Gauge({
      name: 'pathembed_queue_jobs',
      help: 'BullMQ jobs (slide, chunk, assemble, predict) by state',
      labelNames: ['state'],
      registers: [registry],
      collect: async function (this: Gauge<'state'>) {
        const counts = await sources.queue.getJobCounts(...QUEUE_STATES);
        for (const state of QUEUE_STATES) this.set({ state }, counts[state] ?? 0);
      },
    });
    new Gauge({
      name: 'pathembed_workers',
      help: 'Worker processes with a live heartbeat',
      registers: [registry],
      collect: async function (this: Gauge) {
        this.set((await liveWorkers(sources.redis, sources.keys)).length);
      },
    });
    const add = (metric: ComputedMetric) => registry.registerMetric(metric as unknown as Metric);
    add(
      new ComputedMetric(
        'pathembed_patches_embedded_total',
        'Patches embedded by all workers',
        'counter',
        async () => [{ value: (await this.#read()).patchesTotal }],
      ),
    );
    add(
      new ComputedMetric(
        'pathembed_patches_per_second',
        'Patches embedded per second by all workers, over the last minute',
        'gauge',
        async () => [{ value: (await this.#read()).patchesPerSecond }],
      ),
    );
    add(
      new ComputedMetric(
        'pathembed_job_errors_total',
        'Embedding jobs that failed, by error code',
        'counter',
        async () =>
          Object.entries((await this.#read()).errorsByCode).map(([code, value]) => ({
            value,
            labels: { code },
          })),
      ),
    );
    add(
      new ComputedMetric(
        'pathembed_store_rate_limit_engagements_total',
        'Times a store answering 429 made the workers pause that store, by store base URL',
        'counter',
        async () =>
          Object.entries((await this.#read()).rateLimitEngagementsByStore).map(([store, value]) => ({
            value,
            labels: { store },
          })),
      ),
    );
    add(
      new ComputedMetric(
        'pathembed_store_rate_limited',
        '1 while a store is paused because it answered 429 (its jobs wait; other stores go on), by store base URL',
        'gauge',
        async () =>
          Object.keys((await this.#read()).pausedStores).map((store) => ({ value: 1, labels: { store } })),
      ),
    );
    add(
      new ComputedMetric(
        'pathembed_frame_fetch_seconds',
        'Latency of one frame request (WADO-RS, several frames) to a store, all workers',
        'histogram',
        async () => {
          const { frameFetch } = await this.#read();
          const name = 'pathembed_frame_fetch_seconds';
          return [
            // cumulative has one entry per bucket of FRAME_FETCH_BUCKETS_S, then +Inf.
            ...FRAME_FETCH_BUCKETS_S.map((le, i) => ({
              value: frameFetch.cumulative[i]!,
              labels: { le },
              metricName: `${name}_bucket`,
            })),
            {
              value: frameFetch.cumulative.at(-1) ?? 0,
              labels: { le: '+Inf' },
              metricName: `${name}_bucket`,
            },
            { value: frameFetch.sum, metricName: `${name}_sum` },
            { value: frameFetch.count, metricName: `${name}_count` },
          ];
        },
      ),
    );
    add(
      new ComputedMetric(
        'pathembed_inference_batch_seconds',
        'Device time of one inference batch (ONNX Runtime run), all workers',
        'histogram',
        async () =>
          histogramValues(
            'pathembed_inference_batch_seconds',
            INFERENCE_BATCH_BUCKETS_S,
            (await this.#readInference()).batch,
          ),
      ),
    );
    add(
      new ComputedMetric(
        'pathembed_queue_wait_seconds',
        'Time a job waited in the queue before a worker took it (first attempts), all workers',
        'histogram',
        async () =>
          histogramValues(
            'pathembed_queue_wait_seconds',
            QUEUE_WAIT_BUCKETS_S,
            (await this.#readInference()).queueWait,
          ),
      ),
    );
  }

  #readInference(): ReturnType<typeof readInferenceMetrics> {
    const now = Date.now();
    if (!this.#inference || now - this.#inference.at > SNAPSHOT_REUSE_MS) {
      this.#inference = { at: now, value: readInferenceMetrics(this.sources.redis, this.sources.keys) };
    }
    return this.#inference.value;
  }

  #read(): Promise<ServiceMetricsSnapshot> {
    const now = Date.now();
    if (!this.#snapshot || now - this.#snapshot.at > SNAPSHOT_REUSE_MS) {
      this.#snapshot = { at: now, value: readServiceMetrics(this.sources.redis, this.sources.keys, now) };
    }
    return this.#snapshot.value;
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
