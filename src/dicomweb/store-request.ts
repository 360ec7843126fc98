/**
 * One request to a store with the discipline every DICOMweb call shares: the allow-list check on
 * every URL (redirect hops included), auth headers with one refresh on 401/403, the per-store
 * concurrency slot, retries by policy with per-attempt timeouts, and the mapping of outcomes to
 * typed errors whose messages name the request, the status and what to do, never a credential.
 * What a response means (JSON, multipart frames, STOW results) is left to the caller's `consume`.
 */
import type { FrameSourceStats } from '../encoded-frame.js';
import { PathembedError } from '../errors.js';
import { type Logger, SILENT_LOGGER } from '../log.js';
import { type AuthProvider, noAuth } from './auth.js';
import type { StoreLimiters } from './concurrency-limiter.js';
import { exchange, isBodyDecodingError, isMalformedAnswer, type StoreResponse } from './http-exchange.js';
import {
  attemptSignal,
  decideRetry,
  describeNetworkError,
  isRetryableNetworkError,
  parseRetryAfterMs,
  type RetryPolicy,
  sleep,
} from './retry-policy.js';
import { type AllowedStore, assertApprovedStore, safeUrlForMessage } from './store-allow-list.js';

/** Redirect hops followed before giving up (each one checked against the allow-list). */
export const MAX_REDIRECTS = 5;
/** Longest excerpt of a response body quoted in a message. */
export const ERROR_EXCERPT_CHARS = 200;
/** Bytes of an error body read for the excerpt; the rest is discarded unread. */
const ERROR_BODY_READ_BYTES = 4096;

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const HTTP_UNAUTHORIZED = 401;
const HTTP_FORBIDDEN = 403;
const HTTP_NOT_FOUND = 404;
const HTTP_SEE_OTHER = 303;
const HTTP_TOO_MANY_REQUESTS = 429;
const MS_PER_SECOND = 1000;

/** Counters of HTTP traffic, shared with the client's stats object. */
export interface RequestStats {
  /** HTTP requests sent: every attempt and every redirect hop. */
  requests: number;
  /** Attempts repeated after a retryable failure. */
  retries: number;
}

export interface StoreRequesterOptions {
  readonly allowList: readonly AllowedStore[];
  readonly retry: RetryPolicy;
  readonly limiters: StoreLimiters;
  readonly stats: RequestStats;
  /** Default: no credentials. */
  readonly auth?: AuthProvider;
  /** Default: silent. */
  readonly logger?: Logger;
  /** Random source of the backoff jitter. Default Math.random. */
  readonly random?: () => number;
}

/** One logical request. */
export interface StoreRequest<T> {
  readonly method: 'GET' | 'POST';
  readonly url: string;
  readonly accept: string;
  readonly body?: Uint8Array;
  readonly contentType?: string;
  /** What the request is, for messages ("WADO-RS series metadata"). */
  readonly what: string;
  /** What to do about a 404. */
  readonly notFoundHint: string;
  /** Statuses handed to `consume` instead of being treated as errors (STOW-RS 409). */
  readonly consumeStatuses?: readonly number[];
  readonly signal?: AbortSignal;
  /** Frame requests are also counted here (a frame source's own stats). */
  readonly frameStats?: FrameSourceStats;
  /** Reads the response within the attempt (so a body cut short is retried like any network error). */
  consume(res: StoreResponse, signal: AbortSignal): Promise<T>;
}

/** Why one attempt failed, when another attempt may help. */
interface RetryableFailure {
  readonly kind: 'status' | 'network' | 'timeout';
  readonly description: string;
  readonly status?: number;
  readonly retryAfterMs?: number;
}

type AttemptOutcome<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly auth: true; readonly error: PathembedError }
  | { readonly ok: false; readonly auth: false; readonly failure: RetryableFailure };

/** The text on one line. */
export function collapse(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** Replaces every credential value (and the token inside "Bearer x") with [redacted]. */
function scrubber(headers: Record<string, string>): (text: string) => string {
  const secrets = new Set<string>();
  for (const [name, value] of Object.entries(headers)) {
    if (name === 'accept' || name === 'content-type' || value.length < 4) continue;
    secrets.add(value);
    const token = /^\S+\s+(\S{4,})$/.exec(value)?.[1];
    if (token !== undefined) secrets.add(token);
  }
  const ordered = [...secrets].sort((a, b) => b.length - a.length);
  return (text) => ordered.reduce((t, s) => t.split(s).join('[redacted]'), text);
}

async function readExcerpt(res: StoreResponse): Promise<string> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  try {
    for await (const chunk of res.body) {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= ERROR_BODY_READ_BYTES) break;
    }
  } catch {
    // an excerpt is a courtesy; a failing body still leaves the status
  } finally {
    await res.release();
  }
  const text = summariseErrorBody(Buffer.concat(chunks).toString('utf8'));
  return text.length > ERROR_EXCERPT_CHARS ? `${text.slice(0, ERROR_EXCERPT_CHARS)}…` : text;
}

/**
 * The useful sentence of an error body: Orthanc's `Details`/`Message`, Google's `error.message`,
 * or the text itself, collapsed to one line.
 */
function summariseErrorBody(text: string): string {
  try {
    const parsed = JSON.parse(text) as unknown;
    const obj = (Array.isArray(parsed) ? parsed[0] : parsed) as Record<string, unknown> | null;
    if (obj !== null && typeof obj === 'object') {
      const nested = obj.error as Record<string, unknown> | undefined;
      const picked = [obj.Details, obj.Message, nested?.message, obj.message, obj.error].find(
        (v) => typeof v === 'string' && v !== '',
      );
      if (typeof picked === 'string') return collapse(picked);
    }
  } catch {
    // not JSON: the raw text
  }
  return collapse(text);
}

/** Reads a whole body, refusing one over `maxBytes` (DICOMWEB_BAD_RESPONSE). */
export async function readBodyCapped(res: StoreResponse, maxBytes: number, what: string): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of res.body) {
    length += chunk.length;
    if (length > maxBytes) {
      await res.release();
      throw new PathembedError(
        'DICOMWEB_BAD_RESPONSE',
        `${what}: the answer exceeds ${maxBytes} bytes; refusing to parse it.`,
      );
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, length);
}

export class StoreRequester {
  readonly retry: RetryPolicy;
  readonly #allowList: readonly AllowedStore[];
  readonly #limiters: StoreLimiters;
  readonly #stats: RequestStats;
  readonly #auth: AuthProvider;
  readonly #logger: Logger;
  readonly #random: () => number;

  constructor(options: StoreRequesterOptions) {
    this.retry = options.retry;
    this.#allowList = options.allowList;
    this.#limiters = options.limiters;
    this.#stats = options.stats;
    this.#auth = options.auth ?? noAuth();
    this.#logger = options.logger ?? SILENT_LOGGER;
    this.#random = options.random ?? Math.random;
  }

  /** The auth method in use, for messages. */
  get authDescription(): string {
    return this.#auth.description;
  }

  /** Runs one logical request: attempts (each in a store slot), auth refresh, retries, typed errors. */
  async request<T>(spec: StoreRequest<T>): Promise<T> {
    const startedMs = performance.now();
    const limiter = this.#limiters.forUrl(spec.url);
    let attempt = 0;
    let refreshedAuth = false;
    while (true) {
      attempt++;
      const outcome = await limiter.run(() => this.#attempt(spec), spec.signal);
      if (outcome.ok) return outcome.value;
      if (outcome.auth) {
        if (refreshedAuth) throw outcome.error;
        // One refresh: an expired token is the common cause, and a second refusal is final.
        refreshedAuth = true;
        attempt--;
        await this.#auth.refresh();
        continue;
      }
      const failure = outcome.failure;
      const elapsedMs = performance.now() - startedMs;
      const decision = decideRetry(this.retry, {
        attempt,
        elapsedMs,
        retryAfterMs: failure.retryAfterMs,
        random: this.#random,
      });
      if (!decision.retry) throw this.#exhausted(spec, failure, attempt, elapsedMs, decision.reason);
      this.#stats.retries++;
      this.#logger.warn(
        {
          method: spec.method,
          url: safeUrlForMessage(spec.url),
          attempt,
          maxAttempts: this.retry.maxAttempts,
          delayMs: decision.delayMs,
          failure: failure.description,
        },
        'DICOMweb request failed; retrying',
      );
      await sleep(decision.delayMs, spec.signal);
    }
  }

  #exhausted(
    spec: StoreRequest<unknown>,
    failure: RetryableFailure,
    attempts: number,
    elapsedMs: number,
    reason: 'attempts' | 'total-time' | 'retry-after-beyond-budget',
  ): PathembedError {
    const code = failure.kind === 'timeout' ? 'DICOMWEB_TIMEOUT' : 'DICOMWEB_UNAVAILABLE';
    const why =
      reason === 'attempts'
        ? `after ${attempts} attempt(s) (PATHEMBED_RETRY_MAX_ATTEMPTS=${this.retry.maxAttempts})`
        : reason === 'total-time'
          ? `after ${attempts} attempt(s) in ${(elapsedMs / MS_PER_SECOND).toFixed(1)} s (PATHEMBED_RETRY_MAX_TOTAL_MS=${this.retry.maxTotalMs})`
          : `after ${attempts} attempt(s): the store asked to wait ${((failure.retryAfterMs ?? 0) / MS_PER_SECOND).toFixed(1)} s (Retry-After), past what is left of PATHEMBED_RETRY_MAX_TOTAL_MS=${this.retry.maxTotalMs}`;
    const advice =
      failure.kind === 'timeout'
        ? `Each attempt may take ${this.retry.requestTimeoutMs} ms (PATHEMBED_REQUEST_TIMEOUT_MS); the store is slow or unreachable — try again later or raise the timeout.`
        : failure.status === HTTP_TOO_MANY_REQUESTS
          ? 'The store is rate-limiting this client; lower PATHEMBED_STORE_CONCURRENCY or try again later.'
          : 'The store is overloaded or down; try again later.';
    return new PathembedError(
      code,
      `${spec.what} failed: ${spec.method} ${safeUrlForMessage(spec.url)} — ${failure.description}, ${why}. ${advice}`,
      {
        method: spec.method,
        url: safeUrlForMessage(spec.url),
        attempts,
        elapsedMs: Math.round(elapsedMs),
        ...(failure.status !== undefined ? { status: failure.status } : {}),
        ...(failure.retryAfterMs !== undefined ? { retryAfterMs: failure.retryAfterMs } : {}),
      },
    );
  }

  /** One attempt, redirects included: never throws for a retryable failure, returns it instead. */
  async #attempt<T>(spec: StoreRequest<T>): Promise<AttemptOutcome<T>> {
    const { signal, timeout } = attemptSignal(this.retry, spec.signal);
    const authHeaders = await this.#auth.headers();
    const scrub = scrubber(authHeaders);
    let url = new URL(spec.url);
    let method = spec.method;
    let body = spec.body;
    let sendAuth = true;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      assertApprovedStore(url, this.#allowList, hop === 0 ? 'DICOMweb store' : 'Redirect target');
      const headers: Record<string, string> = { accept: spec.accept, ...(sendAuth ? authHeaders : {}) };
      if (body !== undefined && spec.contentType !== undefined) headers['content-type'] = spec.contentType;
      this.#stats.requests++;
      if (spec.frameStats) spec.frameStats.requests++;
      const sentMs = performance.now();
      let res: StoreResponse;
      try {
        res = await exchange(url, { method, headers, body, signal });
      } catch (err) {
        return this.#networkFailure(err, spec, timeout, scrub);
      }
      this.#logger.debug(
        {
          method,
          url: safeUrlForMessage(url),
          status: res.status,
          ms: Math.round(performance.now() - sentMs),
          hop,
        },
        'DICOMweb response',
      );
      if (REDIRECT_STATUSES.has(res.status)) {
        const location = res.headers.get('location');
        await res.release();
        if (location === null) {
          throw new PathembedError(
            'DICOMWEB_BAD_RESPONSE',
            `${spec.what}: ${method} ${safeUrlForMessage(url)} answered ${res.status} without a Location header.`,
          );
        }
        let next: URL;
        try {
          next = new URL(location, url);
        } catch {
          throw new PathembedError(
            'DICOMWEB_BAD_RESPONSE',
            `${spec.what}: ${method} ${safeUrlForMessage(url)} answered ${res.status} with a Location that is not a URL ("${scrub(location).slice(0, ERROR_EXCERPT_CHARS)}"); the store or a proxy in between is misconfigured.`,
            { method, url: safeUrlForMessage(url), status: res.status },
          );
        }
        // As fetch does for its own redirects: credentials never follow a redirect to another origin.
        if (next.origin !== url.origin) sendAuth = false;
        if (res.status === HTTP_SEE_OTHER) {
          method = 'GET';
          body = undefined;
        }
        url = next;
        continue;
      }
      const consumable = res.ok || (spec.consumeStatuses?.includes(res.status) ?? false);
      if (consumable) {
        try {
          return { ok: true, value: await spec.consume(res, signal) };
        } catch (err) {
          if (err instanceof PathembedError) throw err;
          if (isBodyDecodingError(err) && !spec.signal?.aborted && !timeout.aborted) {
            throw new PathembedError(
              'DICOMWEB_BAD_RESPONSE',
              `${spec.what}: ${method} ${safeUrlForMessage(url)} answered with a body that does not decompress ` +
                `(Content-Encoding ${res.headers.get('content-encoding') ?? 'none'}): ${scrub(describeNetworkError(err))}. ` +
                'The store or a proxy in between sent a corrupt body; try again, and report it to the store if it persists.',
              { method, url: safeUrlForMessage(url), status: res.status },
            );
          }
          return this.#networkFailure(err, spec, timeout, scrub, 'reading');
        } finally {
          await res.release();
        }
      }
      return this.#statusFailure(res, spec, url, method, scrub, sendAuth);
    }
    throw new PathembedError(
      'DICOMWEB_HTTP_ERROR',
      `${spec.what}: more than ${MAX_REDIRECTS} redirects from ${safeUrlForMessage(spec.url)}; check the store base URL.`,
      { url: safeUrlForMessage(spec.url) },
    );
  }

  /**
   * A failure to send the request or (`reading`) to read its answer: retryable network errors and
   * timeouts are returned for another attempt, the rest thrown with what the user can do.
   */
  #networkFailure<T>(
    err: unknown,
    spec: StoreRequest<T>,
    timeout: AbortSignal,
    scrub: (text: string) => string,
    phase: 'sending' | 'reading' = 'sending',
  ): AttemptOutcome<T> {
    // The caller's abort (job cancelled, sibling batch failed) ends everything at once, with its reason.
    if (spec.signal?.aborted) throw spec.signal.reason;
    if (timeout.aborted) {
      return {
        ok: false,
        auth: false,
        failure: {
          kind: 'timeout',
          description: `no complete answer within ${this.retry.requestTimeoutMs} ms`,
        },
      };
    }
    const description = scrub(describeNetworkError(err));
    if (isMalformedAnswer(err)) {
      throw new PathembedError(
        'DICOMWEB_BAD_RESPONSE',
        `${spec.what}: ${spec.method} ${safeUrlForMessage(spec.url)} was answered with something that is not HTTP a DICOMweb client can read: ${description}. Check that the URL points at the DICOMweb service itself (not a proxy or another protocol's port).`,
        { method: spec.method, url: safeUrlForMessage(spec.url) },
      );
    }
    if (isRetryableNetworkError(this.retry, err)) {
      return {
        ok: false,
        auth: false,
        failure: { kind: 'network', description: `connection failed: ${description}` },
      };
    }
    if (phase === 'reading') {
      // The store answered; what failed is reading that answer, so the host name is not the question.
      throw new PathembedError(
        'DICOMWEB_BAD_RESPONSE',
        `${spec.what}: the answer of ${spec.method} ${safeUrlForMessage(spec.url)} could not be read: ${description}. Try again, and report it to the store if it persists.`,
        { method: spec.method, url: safeUrlForMessage(spec.url) },
      );
    }
    throw new PathembedError(
      'DICOMWEB_UNAVAILABLE',
      `${spec.what} failed: ${spec.method} ${safeUrlForMessage(spec.url)} could not be sent: ${description}. Check the store host name and that it is reachable from this machine.`,
      { method: spec.method, url: safeUrlForMessage(spec.url) },
    );
  }

  async #statusFailure<T>(
    res: StoreResponse,
    spec: StoreRequest<T>,
    url: URL,
    method: string,
    scrub: (text: string) => string,
    sentAuth: boolean,
  ): Promise<AttemptOutcome<T>> {
    const excerpt = scrub(await readExcerpt(res));
    const said = excerpt ? ` The store said: "${excerpt}".` : '';
    const where = `${method} ${safeUrlForMessage(url)}`;
    const status = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
    const details = { method, url: safeUrlForMessage(url), status: res.status };
    if ((res.status === HTTP_UNAUTHORIZED || res.status === HTTP_FORBIDDEN) && !sentAuth) {
      // Credentials never follow a redirect to another origin, so refreshing them cannot help.
      throw new PathembedError(
        'DICOMWEB_UNAUTHORIZED',
        `${spec.what}: ${safeUrlForMessage(spec.url)} redirected to ${where}, another origin, which answered ${status}; pathembed does not send the store's credentials to another origin.${said} ` +
          'Use the URL the store redirects to as the store base URL (and allow it in PATHEMBED_ALLOWED_STORES), or have the store serve without the redirect.',
        details,
      );
    }
    if (res.status === HTTP_UNAUTHORIZED || res.status === HTTP_FORBIDDEN) {
      return {
        ok: false,
        auth: true,
        error: new PathembedError(
          'DICOMWEB_UNAUTHORIZED',
          `${spec.what}: ${where} answered ${status} with ${this.#auth.description}, also after refreshing the credentials.${said} ` +
            'Check PATHEMBED_AUTH and the token, and that the account may read (and for STOW-RS write) this store.',
          details,
        ),
      };
    }
    if (res.status === HTTP_NOT_FOUND) {
      throw new PathembedError(
        'DICOMWEB_NOT_FOUND',
        `${spec.what}: ${where} answered ${status}.${said} ${spec.notFoundHint}`,
        details,
      );
    }
    if (this.retry.retryOnStatus.includes(res.status)) {
      const retryAfterMs = parseRetryAfterMs(res.headers.get('retry-after'));
      return {
        ok: false,
        auth: false,
        failure: {
          kind: 'status',
          description: `last answer ${status}${excerpt ? ` ("${excerpt}")` : ''}`,
          status: res.status,
          ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
        },
      };
    }
    throw new PathembedError(
      'DICOMWEB_HTTP_ERROR',
      `${spec.what}: ${where} answered ${status}.${said} The request was refused as sent; check the reference and the store's DICOMweb support.`,
      details,
    );
  }
}
