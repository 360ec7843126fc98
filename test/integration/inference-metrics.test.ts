/**
 * The GPU-sizing metrics end to end on real parts: the inference thread reports the device time of
 * each ORT batch (WorkerEmbeddingEngine, the real synthetic model on the CPU), a worker's
 * InferenceMetrics adds batch latency and queue wait into real Redis (a private key prefix), and
 * the API's /metrics registry serves them as Prometheus histograms.
 */
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDefaultModel } from '../../models/default-model.js';
import { ApiMetrics } from '../../src/api/api-metrics.js';
import { type Config, loadConfig } from '../../src/config.js';
import { engineOptions } from '../../src/domain-options.js';
import { PATCH_BYTES, WorkerEmbeddingEngine } from '../../src/embed/index.js';
import { InferenceMetrics, readInferenceMetrics } from '../../src/queue/inference-metrics.js';
import { QUEUE_NAME } from '../../src/queue/queue-jobs.js';
import { ServiceKeys } from '../../src/queue/redis-keys.js';
import { scanKeys } from '../helpers/redis.js';
import { services } from '../helpers/services.js';

const PREFIX = `pe-test-inference-metrics-${randomBytes(4).toString('hex')}`;
const BATCH = 2;
let config: Config;
let redis: Redis;
let queue: Queue;
const keys = new ServiceKeys(PREFIX);

beforeAll(async () => {
  const { redisUrl } = services();
  config = loadConfig({
    REDIS_URL: redisUrl,
    PATHEMBED_QUEUE_PREFIX: PREFIX,
    PATHEMBED_EXECUTION_PROVIDER: 'cpu',
    PATHEMBED_INTRA_OP_THREADS: '2',
    PATHEMBED_BATCH_SIZE: String(BATCH),
    LOG_LEVEL: 'silent',
  });
  redis = new Redis(redisUrl);
  queue = new Queue(QUEUE_NAME, {
    connection: new Redis(redisUrl, { maxRetriesPerRequest: null }),
    prefix: PREFIX,
  });
  await ensureDefaultModel(engineOptions(config), pino({ level: 'silent' }));
});

afterAll(async () => {
  const leftover = await scanKeys(redis, PREFIX);
  if (leftover.length > 0) await redis.del(...leftover);
  await queue?.close();
  await redis?.quit();
});

describe('inference batch latency and queue wait', () => {
  it('reach /metrics from the inference thread and the worker, summed in Redis', async () => {
    const engine = await WorkerEmbeddingEngine.open(engineOptions(config), 'silent');
    const metrics = new InferenceMetrics();
    const observed: number[] = [];
    engine.observeBatches((seconds) => {
      observed.push(...seconds);
      for (const s of seconds) metrics.batch.observe(s);
    });
    try {
      // Three patches at batch size 2: two ORT runs.
      await engine.embed([1, 2, 3].map((v) => new Uint8Array(PATCH_BYTES).fill(v)));
    } finally {
      await engine.close();
    }
    expect(observed).toHaveLength(2);
    for (const s of observed) expect(s).toBeGreaterThan(0);
    const now = Date.now();
    metrics.observeQueueWait(now - 2_500, now); // 2.5 s in the queue
    metrics.observeQueueWait(now - 50, now); // 0.05 s
    await metrics.flush(redis, keys);
    // A second worker's flush adds to the same sums.
    const other = new InferenceMetrics();
    other.observeQueueWait(now - 7_000, now);
    await other.flush(redis, keys);

    const snapshot = await readInferenceMetrics(redis, keys);
    expect(snapshot.batch.count).toBe(2);
    expect(snapshot.batch.sum).toBeCloseTo(observed[0] + observed[1], 6);
    expect(snapshot.queueWait.count).toBe(3);
    expect(snapshot.queueWait.sum).toBeCloseTo(9.55, 6);

    const api = new ApiMetrics({ queue, redis, keys });
    const text = await api.registry.metrics();
    expect(text).toContain('# TYPE pathembed_inference_batch_seconds histogram');
    expect(text).toContain('pathembed_inference_batch_seconds_count 2');
    expect(text).toContain('pathembed_queue_wait_seconds_bucket{le="0.1"} 1');
    expect(text).toContain('pathembed_queue_wait_seconds_bucket{le="5"} 2');
    expect(text).toContain('pathembed_queue_wait_seconds_bucket{le="10"} 3');
    expect(text).toContain('pathembed_queue_wait_seconds_bucket{le="+Inf"} 3');
    expect(text).toContain('pathembed_queue_wait_seconds_count 3');
  });
});
