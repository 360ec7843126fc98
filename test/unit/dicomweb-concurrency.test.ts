import { describe, expect, it } from 'vitest';
import { ConcurrencyLimiter, StoreLimiters } from '../../src/dicomweb/index.js';

const tick = () => new Promise((r) => setTimeout(r, 1));

describe('ConcurrencyLimiter', () => {
  it('runs at most `limit` tasks at once, in arrival order', async () => {
    const limiter = new ConcurrencyLimiter(2);
    let running = 0;
    let peak = 0;
    const started: number[] = [];
    const task = (id: number) => async () => {
      started.push(id);
      running++;
      peak = Math.max(peak, running);
      await tick();
      running--;
      return id;
    };
    const results = await Promise.all([1, 2, 3, 4, 5].map((id) => limiter.run(task(id))));
    expect(results).toEqual([1, 2, 3, 4, 5]);
    expect(peak).toBe(2);
    expect(started).toEqual([1, 2, 3, 4, 5]);
    expect(limiter.active).toBe(0);
  });

  it('frees the slot when a task throws, and drops a waiter whose signal aborts', async () => {
    const limiter = new ConcurrencyLimiter(1);
    await expect(limiter.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    let release: () => void = () => {};
    const holding = limiter.run(() => new Promise<void>((r) => (release = r)));
    const controller = new AbortController();
    const waiting = limiter.run(async () => 'never', controller.signal);
    expect(limiter.queued).toBe(1);
    controller.abort(new Error('cancelled'));
    await expect(waiting).rejects.toThrow('cancelled');
    expect(limiter.queued).toBe(0);
    release();
    await holding;
    expect(await limiter.run(async () => 'next')).toBe('next');
  });
});

describe('StoreLimiters', () => {
  it('keeps one limiter per origin, shared process-wide per limit', () => {
    const limiters = StoreLimiters.shared(3);
    expect(StoreLimiters.shared(3)).toBe(limiters);
    const a = limiters.forUrl('http://127.0.0.1:8042/dicom-web/studies/1');
    expect(limiters.forUrl('http://127.0.0.1:8042/other')).toBe(a);
    expect(limiters.forUrl('http://127.0.0.1:8043/dicom-web')).not.toBe(a);
    expect(a.limit).toBe(3);
  });
});
