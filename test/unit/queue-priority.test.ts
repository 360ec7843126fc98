import { describe, expect, it } from 'vitest';
import {
  bullPriority,
  MAX_REQUEST_PRIORITY,
  MIN_REQUEST_PRIORITY,
  PREDICT_PRIORITY,
} from '../../src/queue/queue-jobs.js';

const priorities = Array.from(
  { length: MAX_REQUEST_PRIORITY - MIN_REQUEST_PRIORITY + 1 },
  (_, i) => MIN_REQUEST_PRIORITY + i,
);

describe('BullMQ priorities (lower runs first)', () => {
  it('run predict first, then a planned slide before the next plan of its request priority', () => {
    for (const p of priorities) {
      expect(bullPriority(p, 'embed')).toBeGreaterThan(PREDICT_PRIORITY);
      expect(bullPriority(p, 'embed')).toBeLessThan(bullPriority(p, 'plan'));
    }
  });

  it('keep request priorities in order: a more urgent plan before a less urgent embedding', () => {
    for (const p of priorities.slice(0, -1)) {
      expect(bullPriority(p, 'plan')).toBeLessThan(bullPriority(p + 1, 'embed'));
    }
    const all = priorities.flatMap((p) => [bullPriority(p, 'embed'), bullPriority(p, 'plan')]);
    expect(new Set(all).size).toBe(all.length);
  });
});
