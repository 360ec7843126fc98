import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import {
  backoffDelayMs,
  decideRetry,
  parseRetryAfterMs,
  type RetryPolicy,
} from '../../src/dicomweb/index.js';
import { isRetryableNetworkError } from '../../src/dicomweb/retry-policy.js';
import { retryPolicy } from '../../src/domain-options.js';

const POLICY: RetryPolicy = {
  maxAttempts: 5,
  baseDelayMs: 100,
  maxDelayMs: 1000,
  maxTotalMs: 10_000,
  requestTimeoutMs: 5000,
  retryOnStatus: [408, 429, 500, 502, 503, 504],
  retryOnErrorCodes: ['ECONNRESET', 'ECONNREFUSED', 'UND_ERR_SOCKET'],
};

describe('retry policy', () => {
  it('is read from config', () => {
    const policy = retryPolicy(
      loadConfig({
        PATHEMBED_RETRY_MAX_ATTEMPTS: '3',
        PATHEMBED_RETRY_BASE_DELAY_MS: '7',
        PATHEMBED_REQUEST_TIMEOUT_MS: '900',
      }),
    );
    expect(policy).toMatchObject({
      maxAttempts: 3,
      baseDelayMs: 7,
      maxDelayMs: 10_000,
      maxTotalMs: 120_000,
      requestTimeoutMs: 900,
    });
    expect(policy.retryOnStatus).toEqual([408, 429, 500, 502, 503, 504]);
    expect(policy.retryOnErrorCodes).toContain('ECONNRESET');
  });

  it('backs off exponentially with full jitter, capped by maxDelayMs', () => {
    const top = () => 0.999999;
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelayMs(POLICY, a, top))).toEqual([
      99, 199, 399, 799, 999, 999,
    ]);
    expect([1, 2, 3].map((a) => backoffDelayMs(POLICY, a, () => 0.5))).toEqual([50, 100, 200]);
    expect(backoffDelayMs(POLICY, 3, () => 0)).toBe(0);
  });

  it('gives up after maxAttempts', () => {
    expect(decideRetry(POLICY, { attempt: 4, elapsedMs: 0, random: () => 0.5 })).toEqual({
      retry: true,
      delayMs: 400,
    });
    expect(decideRetry(POLICY, { attempt: 5, elapsedMs: 0 })).toEqual({ retry: false, reason: 'attempts' });
  });

  it('cuts a backoff delay to what is left of the total budget, and stops when none is left', () => {
    expect(decideRetry(POLICY, { attempt: 4, elapsedMs: 9_900, random: () => 0.999 })).toEqual({
      retry: true,
      delayMs: 100,
    });
    expect(decideRetry(POLICY, { attempt: 1, elapsedMs: 10_000 })).toEqual({
      retry: false,
      reason: 'total-time',
    });
  });

  it('honours Retry-After beyond maxDelayMs, but not beyond the total budget', () => {
    expect(decideRetry(POLICY, { attempt: 1, elapsedMs: 0, retryAfterMs: 3000 })).toEqual({
      retry: true,
      delayMs: 3000,
    });
    expect(decideRetry(POLICY, { attempt: 1, elapsedMs: 8000, retryAfterMs: 3000 })).toEqual({
      retry: false,
      reason: 'retry-after-beyond-budget',
    });
    expect(decideRetry(POLICY, { attempt: 1, elapsedMs: 0, retryAfterMs: 0 })).toEqual({
      retry: true,
      delayMs: 0,
    });
  });
});

describe('parseRetryAfterMs', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('reads delay-seconds', () => {
    expect(parseRetryAfterMs('0', now)).toBe(0);
    expect(parseRetryAfterMs('3', now)).toBe(3000);
    expect(parseRetryAfterMs(' 120 ', now)).toBe(120_000);
  });
  it('reads HTTP dates, past dates as 0', () => {
    expect(parseRetryAfterMs('Thu, 01 Jan 2026 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfterMs('Wed, 31 Dec 2025 23:59:00 GMT', now)).toBe(0);
  });
  it('ignores absent and malformed values', () => {
    for (const v of [null, undefined, '', '-1', '1.5', 'soon'])
      expect(parseRetryAfterMs(v, now)).toBeUndefined();
  });
});

describe('isRetryableNetworkError', () => {
  it('finds connection error codes anywhere in the cause chain, and known messages', () => {
    const refused = new TypeError('fetch failed', {
      cause: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }),
    });
    expect(isRetryableNetworkError(POLICY, refused)).toBe(true);
    const midBody = new TypeError('terminated', {
      cause: Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }),
    });
    expect(isRetryableNetworkError(POLICY, midBody)).toBe(true);
    expect(isRetryableNetworkError(POLICY, new Error('socket hang up'))).toBe(true);
    const dns = new TypeError('fetch failed', {
      cause: Object.assign(new Error('getaddrinfo'), { code: 'ENOTFOUND' }),
    });
    expect(isRetryableNetworkError(POLICY, dns)).toBe(false);
    expect(isRetryableNetworkError(POLICY, new Error('bad header'))).toBe(false);
  });
});
