/**
 * The retry policy as data (which statuses and network errors, how many attempts, what backoff,
 * what total budget, what per-request timeout) and the pure functions that apply it: backoff with
 * full jitter, Retry-After parsing, the decision to wait or give up, and the per-attempt signal.
 * Keeping these pure (time and randomness passed in) makes every delay testable exactly.
 */

export interface RetryPolicy {
  /** Attempts per request, the first included. */
  readonly maxAttempts: number;
  /** Backoff ceiling before the first retry; doubles per attempt (full jitter draws below it). */
  readonly baseDelayMs: number;
  /** Largest backoff ceiling. A Retry-After header may ask for more, up to the total budget. */
  readonly maxDelayMs: number;
  /** No retry starts after this much time since the first attempt (waits included). */
  readonly maxTotalMs: number;
  /** Timeout of one attempt, from sending the request to the end of its body. */
  readonly requestTimeoutMs: number;
  /** HTTP statuses worth another attempt. */
  readonly retryOnStatus: readonly number[];
  /** Error codes (anywhere in an error's cause chain) of connection failures worth another attempt. */
  readonly retryOnErrorCodes: readonly string[];
}

/** Request timeout, too many requests, and the 5xx statuses that mean "overloaded or restarting". */
export const RETRYABLE_STATUSES: readonly number[] = [408, 429, 500, 502, 503, 504];

/** Connection-level failures: refused, reset, DNS hiccups, and undici's socket/timeout errors. */
export const RETRYABLE_ERROR_CODES: readonly string[] = [
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
];

/** Messages of connection failures that arrive without a code (Node's http, undici's body reader). */
const RETRYABLE_MESSAGES = [/socket hang up/i, /other side closed/i, /^terminated$/i];

/** Deepest cause chain inspected for a code; guards against cyclic causes. */
const MAX_CAUSE_DEPTH = 8;

const MS_PER_SECOND = 1000;

/**
 * Full-jitter backoff (AWS architecture blog, "Exponential Backoff and Jitter"): a uniform draw in
 * [0, min(maxDelay, base * 2^(attempt-1))). Jitter spreads the retries of many workers hit by the
 * same outage instead of having them return in lockstep. `attempt` is the 1-based attempt that failed.
 */
export function backoffDelayMs(
  policy: RetryPolicy,
  attempt: number,
  random: () => number = Math.random,
): number {
  const ceilingMs = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceilingMs);
}

/**
 * Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP date. Returns milliseconds from `nowMs`
 * (0 for a date in the past), or undefined when absent or unparseable.
 */
export function parseRetryAfterMs(
  header: string | null | undefined,
  nowMs: number = Date.now(),
): number | undefined {
  if (header === null || header === undefined) return undefined;
  const text = header.trim();
  if (text === '') return undefined;
  if (/^\d+$/.test(text)) return Number(text) * MS_PER_SECOND;
  if (/^[+-]?\d*\.?\d+$/.test(text)) return undefined; // negative or fractional seconds are not allowed
  const dateMs = Date.parse(text);
  if (Number.isNaN(dateMs)) return undefined;
  return Math.max(0, dateMs - nowMs);
}

export interface RetryDecisionInput {
  /** The 1-based attempt that just failed. */
  readonly attempt: number;
  /** Time since the first attempt started. */
  readonly elapsedMs: number;
  /** From a Retry-After header, when the failed response had one. */
  readonly retryAfterMs?: number;
  readonly random?: () => number;
}

export type RetryDecision =
  | { readonly retry: true; readonly delayMs: number }
  | { readonly retry: false; readonly reason: 'attempts' | 'total-time' | 'retry-after-beyond-budget' };

/**
 * Wait or give up. A Retry-After is honoured as asked (it may exceed maxDelayMs); when it reaches
 * past the total budget the retries end at once, since waiting less would only earn another 429
 * and waiting longer would break the budget. A backoff delay is cut to what is left of the budget.
 */
export function decideRetry(policy: RetryPolicy, input: RetryDecisionInput): RetryDecision {
  if (input.attempt >= policy.maxAttempts) return { retry: false, reason: 'attempts' };
  const leftMs = policy.maxTotalMs - input.elapsedMs;
  if (leftMs <= 0) return { retry: false, reason: 'total-time' };
  if (input.retryAfterMs !== undefined) {
    if (input.retryAfterMs > leftMs) return { retry: false, reason: 'retry-after-beyond-budget' };
    return { retry: true, delayMs: input.retryAfterMs };
  }
  return { retry: true, delayMs: Math.min(leftMs, backoffDelayMs(policy, input.attempt, input.random)) };
}

function errorCodes(err: unknown): { codes: string[]; messages: string[] } {
  const codes: string[] = [];
  const messages: string[] = [];
  let current: unknown = err;
  for (let depth = 0; depth < MAX_CAUSE_DEPTH && current !== null && typeof current === 'object'; depth++) {
    const e = current as { code?: unknown; message?: unknown; cause?: unknown };
    if (typeof e.code === 'string') codes.push(e.code);
    if (typeof e.message === 'string') messages.push(e.message);
    current = e.cause;
  }
  return { codes, messages };
}

/** True for connection failures (refused, reset, dropped mid-body) that the policy retries. */
export function isRetryableNetworkError(policy: RetryPolicy, err: unknown): boolean {
  const { codes, messages } = errorCodes(err);
  if (codes.some((c) => policy.retryOnErrorCodes.includes(c))) return true;
  return messages.some((m) => RETRYABLE_MESSAGES.some((re) => re.test(m)));
}

/** A short name of a network error for messages ("ECONNRESET", "socket hang up"). */
export function describeNetworkError(err: unknown): string {
  const { codes, messages } = errorCodes(err);
  const code = codes.find((c) => c !== 'ABORT_ERR');
  const message = messages[messages.length - 1] ?? String(err);
  return code !== undefined ? `${code} (${message})` : message;
}

/**
 * The signal of one attempt: aborts on the caller's signal or after the policy's timeout. The
 * caller's abort and the timeout are told apart by which signal fired (`timeout.aborted`).
 */
export function attemptSignal(
  policy: RetryPolicy,
  caller?: AbortSignal,
): { signal: AbortSignal; timeout: AbortSignal } {
  const timeout = AbortSignal.timeout(policy.requestTimeoutMs);
  return { signal: caller ? AbortSignal.any([caller, timeout]) : timeout, timeout };
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
