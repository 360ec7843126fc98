/**
 * The cancel watcher against a real Redis: a cancel published while a chunk runs aborts its
 * signal, and a watcher closed before its subscription is up (a worker that stops at start on a
 * bad config) closes quietly instead of ending the process with an unhandled rejection.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { CancelWatcher, requestCancel } from '../../src/queue/cancellation.js';
import { ServiceKeys } from '../../src/queue/redis-keys.js';
import { scanKeys } from '../helpers/redis.js';
import { services } from '../helpers/services.js';

const PREFIX = `pe-test-cancel-${randomBytes(4).toString('hex')}`;
const keys = new ServiceKeys(PREFIX);
const logger = createLogger('silent');
let redis: Redis;

beforeAll(() => {
  redis = new Redis(services().redisUrl);
});

afterAll(async () => {
  const left = await scanKeys(redis, PREFIX);
  if (left.length > 0) await redis.del(...left);
  redis.disconnect();
});

describe('CancelWatcher', () => {
  it('aborts the signal of a running chunk when its job is cancelled, and only that one', async () => {
    const watcher = new CancelWatcher(redis, keys, logger);
    try {
      await watcher.ready();
      const a = await watcher.watch('job-a');
      const b = await watcher.watch('job-b');
      const aborted = new Promise((resolve) => a.signal.addEventListener('abort', resolve, { once: true }));
      await requestCancel(redis, keys, 'job-a');
      await aborted;
      expect(a.signal.reason).toMatchObject({ code: 'JOB_CANCELLED' });
      expect(b.signal.aborted).toBe(false);
      a.release();
      b.release();
      // A chunk of that job that starts later finds it cancelled at once.
      const later = await watcher.watch('job-a');
      expect(later.signal.aborted).toBe(true);
      later.release();
    } finally {
      await watcher.close();
    }
  });

  it('closed before its subscription is up, it leaves no unhandled rejection and ready() says why', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const watchers = Array.from({ length: 5 }, () => new CancelWatcher(redis, keys, logger));
      for (const watcher of watchers) await watcher.close();
      // Unhandled rejections are reported once the connections' close events have run.
      await new Promise((r) => setTimeout(r, 100));
      expect(unhandled).toEqual([]);
      for (const watcher of watchers) await expect(watcher.ready()).rejects.toThrow(/Connection is closed/);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
