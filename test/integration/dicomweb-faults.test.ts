import { Writable } from 'node:stream';
import { GoogleAuth, OAuth2Client } from 'google-auth-library';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import {
  backoffDelayMs,
  bearerAuth,
  type DicomWebClient,
  type DicomWebClientOptions,
  googleAuth,
  StoreLimiters,
} from '../../src/dicomweb/index.js';
import { dicomWebClient } from '../../src/domain-options.js';
import { PathembedError } from '../../src/errors.js';
import { REDACTED_PATHS } from '../../src/log.js';
import { DicomWebFrameSource } from '../../src/wsi/dicomweb-frame-source.js';
import { openSlide } from '../../src/wsi/slide.js';
import { type FaultServer, startFaultServer } from '../helpers/fault-server.js';
import { fixture, services } from '../helpers/services.js';

const TOKEN = 'sekrit-bearer-token-0123456789';
const STALE_TOKEN = 'stale-google-token-aaaa';
const FRESH_TOKEN = 'fresh-google-token-bbbb';
/** Small but distinguishable timings: tests must finish in seconds yet see each delay honoured. */
const FAST = {
  PATHEMBED_RETRY_MAX_ATTEMPTS: '4',
  PATHEMBED_RETRY_BASE_DELAY_MS: '40',
  PATHEMBED_RETRY_MAX_DELAY_MS: '200',
  PATHEMBED_RETRY_MAX_TOTAL_MS: '10000',
  PATHEMBED_REQUEST_TIMEOUT_MS: '2000',
};
/** Timer slack: a setTimeout may fire a millisecond early by the server's clock. */
const SLACK_MS = 5;

let fault: FaultServer;
let seriesUrl: string;
let level0Uid: string;
let logLines: string[];

function captureLogger() {
  logLines = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logLines.push(String(chunk));
      done();
    },
  });
  return pino({ level: 'trace', redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, sink);
}

function client(
  env: Record<string, string> = {},
  options: Partial<DicomWebClientOptions> = {},
): DicomWebClient {
  return dicomWebClient(loadConfig({ ...FAST, ...env }), {
    logger: captureLogger(),
    random: () => 1 - Number.EPSILON,
    limiters: new StoreLimiters(Number(env.PATHEMBED_STORE_CONCURRENCY ?? 6)),
    ...options,
  });
}

async function failure(promise: Promise<unknown>): Promise<PathembedError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(PathembedError);
    return err as PathembedError;
  }
  throw new Error('expected the call to fail');
}

/** Gaps between consecutive requests the server saw. */
function gapsMs(): number[] {
  return fault.requests.slice(1).map((r, i) => r.atMs - fault.requests[i].atMs);
}

function expectNoSecretsAnywhere(err?: unknown) {
  for (const secret of [TOKEN, STALE_TOKEN, FRESH_TOKEN]) {
    for (const line of logLines) expect(line).not.toContain(secret);
    if (err instanceof PathembedError) {
      expect(err.message).not.toContain(secret);
      expect(JSON.stringify(err.toJSON())).not.toContain(secret);
    }
  }
}

beforeAll(async () => {
  fault = await startFaultServer(services().orthancUrl);
  seriesUrl = fault.via(fixture('cmu-jpeg').seriesUrl);
  const instances = await client().searchInstances(seriesUrl);
  level0Uid = String(
    instances.find((i) => Number(i['00280008'].Value?.[0]) === 130)?.['00080018'].Value?.[0],
  );
});

afterAll(async () => {
  await fault?.close();
});

beforeEach(() => {
  fault.reset();
});

describe('retries', () => {
  it('waits out a 429 storm as Retry-After asks, then succeeds', async () => {
    const tooMany = {
      kind: 'status',
      status: 429,
      headers: { 'retry-after': '1' },
      body: 'slow down',
    } as const;
    fault.script(tooMany, tooMany);
    const c = client();
    const metadata = await c.seriesMetadata(seriesUrl);
    expect(metadata.length).toBe(4);
    expect(fault.requests.length).toBe(3);
    // Retry-After: 1 overrides the 200 ms backoff cap
    for (const gap of gapsMs()) expect(gap).toBeGreaterThanOrEqual(1000 - SLACK_MS);
    expect(c.stats.retries).toBe(2);
    expect(logLines.filter((l) => l.includes('retrying')).length).toBe(2);
  });

  it('gives up with DICOMWEB_UNAVAILABLE (status 429 in details) after the last attempt', async () => {
    fault.setDefault({
      kind: 'status',
      status: 429,
      headers: { 'retry-after': '0' },
      body: 'quota exceeded',
    });
    const err = await failure(client({ PATHEMBED_RETRY_MAX_ATTEMPTS: '3' }).seriesMetadata(seriesUrl));
    expect(err.code).toBe('DICOMWEB_UNAVAILABLE');
    expect(err.retryable).toBe(true);
    expect(err.details).toMatchObject({ status: 429, attempts: 3, retryAfterMs: 0 });
    expect(err.message).toMatch(/HTTP 429/);
    expect(err.message).toMatch(/quota exceeded/);
    expect(err.message).toMatch(/PATHEMBED_RETRY_MAX_ATTEMPTS=3/);
    expect(err.message).toMatch(/lower PATHEMBED_STORE_CONCURRENCY/);
    expect(fault.requests.length).toBe(3);
  });

  it('stops at once when Retry-After reaches past the total budget', async () => {
    fault.setDefault({ kind: 'status', status: 503, headers: { 'retry-after': '60' } });
    const started = performance.now();
    const err = await failure(client({ PATHEMBED_RETRY_MAX_TOTAL_MS: '5000' }).searchInstances(seriesUrl));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(err.code).toBe('DICOMWEB_UNAVAILABLE');
    expect(err.message).toMatch(/asked to wait 60\.0 s \(Retry-After\)/);
    expect(fault.requests.length).toBe(1);
  });

  it('retries a 503 with exponential backoff, then succeeds', async () => {
    const unavailable = { kind: 'status', status: 503 } as const;
    fault.script(unavailable, unavailable, unavailable);
    const c = client();
    const frames = await c.fetchFrames(seriesUrl, level0Uid, [0, 1]);
    expect(frames.length).toBe(2);
    expect(fault.requests.length).toBe(4);
    const policy = c.retry;
    const expected = [1, 2, 3].map((attempt) => backoffDelayMs(policy, attempt, () => 1 - Number.EPSILON));
    expect(expected).toEqual([39, 79, 159]);
    for (const [i, gap] of gapsMs().entries()) expect(gap).toBeGreaterThanOrEqual(expected[i] - SLACK_MS);
    expect(c.stats).toMatchObject({ requests: 4, retries: 3, frames: 2 });
  });

  it('retries a frames answer whose connection drops mid-body, and returns whole frames', async () => {
    fault.script({ kind: 'drop-mid-body', fraction: 0.5 });
    const c = client();
    const frames = await c.fetchFrames(seriesUrl, level0Uid, [0, 1, 2, 3]);
    const direct = await client().fetchFrames(fixture('cmu-jpeg').seriesUrl, level0Uid, [0, 1, 2, 3]);
    expect(frames.map((f) => Buffer.from(f.data).toString('base64'))).toEqual(
      direct.map((f) => Buffer.from(f.data).toString('base64')),
    );
    expect(fault.requests.length).toBe(2);
    expect(c.stats.retries).toBe(1);
  });

  it('reports connections that keep failing as DICOMWEB_UNAVAILABLE', async () => {
    fault.setDefault({ kind: 'reset' });
    const err = await failure(client({ PATHEMBED_RETRY_MAX_ATTEMPTS: '2' }).seriesMetadata(seriesUrl));
    expect(err.code).toBe('DICOMWEB_UNAVAILABLE');
    expect(err.message).toMatch(/connection failed/);
    expect(fault.requests.length).toBe(2);
  });

  it('times out a slow store per attempt: DICOMWEB_TIMEOUT after the attempts', async () => {
    fault.setDefault({ kind: 'delay', ms: 1500 });
    const started = performance.now();
    const err = await failure(
      client({ PATHEMBED_REQUEST_TIMEOUT_MS: '200', PATHEMBED_RETRY_MAX_ATTEMPTS: '2' }).seriesMetadata(
        seriesUrl,
      ),
    );
    const elapsed = performance.now() - started;
    expect(err.code).toBe('DICOMWEB_TIMEOUT');
    expect(err.message).toMatch(/PATHEMBED_REQUEST_TIMEOUT_MS/);
    expect(fault.requests.length).toBe(2);
    expect(elapsed).toBeGreaterThanOrEqual(400 - SLACK_MS);
    expect(elapsed).toBeLessThan(1500);
  });

  it("stops at once, without retrying, when the caller's signal aborts", async () => {
    fault.setDefault({ kind: 'delay', ms: 1500 });
    const controller = new AbortController();
    const reason = new Error('job cancelled');
    setTimeout(() => controller.abort(reason), 100);
    const started = performance.now();
    await expect(client().fetchFrames(seriesUrl, level0Uid, [0], { signal: controller.signal })).rejects.toBe(
      reason,
    );
    expect(performance.now() - started).toBeLessThan(1000);
    expect(fault.requests.length).toBe(1);
  });

  it('does not retry 404 or other 4xx answers', async () => {
    fault.script({ kind: 'status', status: 400, body: 'bad includefield' });
    const bad = await failure(client().searchInstances(seriesUrl));
    expect(bad.code).toBe('DICOMWEB_HTTP_ERROR');
    expect(bad.message).toMatch(/HTTP 400.*bad includefield/);
    expect(fault.requests.length).toBe(1);
  });
});

describe('frames answers that do not match the request', () => {
  it('reports a missing part as DICOMWEB_BAD_RESPONSE naming the instance and frames', async () => {
    fault.script({
      kind: 'custom',
      respond(_req, res) {
        res.writeHead(200, {
          'content-type': 'multipart/related; type="application/octet-stream"; boundary=XX',
        });
        res.end(
          '--XX\r\nContent-Type: application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.50\r\n\r\nonly-one\r\n--XX--\r\n',
        );
      },
    });
    const err = await failure(client().fetchFrames(seriesUrl, level0Uid, [0, 1]));
    expect(err.code).toBe('DICOMWEB_BAD_RESPONSE');
    expect(err.message).toContain(level0Uid);
    expect(err.message).toMatch(/frames 1,2/);
    expect(err.message).toMatch(/1 part\(s\) for 2 frames/);
  });

  it('reports a body cut before its closing boundary as DICOMWEB_BAD_RESPONSE', async () => {
    fault.script({
      kind: 'custom',
      respond(_req, res) {
        res.writeHead(200, { 'content-type': 'multipart/related; boundary=XX' });
        res.end('--XX\r\nContent-Type: application/octet-stream\r\n\r\nabc\r\n--XX\r\n\r\ndef');
      },
    });
    const err = await failure(client().fetchFrames(seriesUrl, level0Uid, [0, 1]));
    expect(err.code).toBe('DICOMWEB_BAD_RESPONSE');
    expect(err.message).toMatch(/Truncated.*inside part 2/);
  });
});

describe('series metadata', () => {
  it('is asked once per frame source: the slide opens from it and later look-ups reuse it; a failure is asked again', async () => {
    const isMetadata = (path: string) => path.endsWith('/metadata');
    fault.script({ kind: 'status', status: 404, body: 'gone for now' });
    const source = new DicomWebFrameSource(client({ PATHEMBED_RETRY_MAX_ATTEMPTS: '1' }), seriesUrl);
    const first = await failure(openSlide(source));
    expect(first.code).toBe('DICOMWEB_NOT_FOUND');
    const slide = await openSlide(source);
    const again = await source.seriesMetadata();
    expect(again.length).toBe(4);
    expect(slide.level(0).instances[0]?.sopInstanceUid).toBe(level0Uid);
    // One failed request, then one that served both the opening and the later look-up.
    expect(fault.requests.filter((r) => isMetadata(r.path)).length).toBe(2);
    await slide.close();
  });

  it("is shared between callers without one caller's abort failing another", async () => {
    fault.setDefault({ kind: 'delay', ms: 300 });
    const source = new DicomWebFrameSource(client(), seriesUrl);
    const first = new AbortController();
    const second = new AbortController();
    const aborted = source.seriesMetadata(first.signal);
    const joined = source.seriesMetadata(second.signal);
    const unsignalled = source.seriesMetadata();
    first.abort(new Error('first caller gave up'));
    await expect(aborted).rejects.toThrow('first caller gave up');
    expect((await joined).length).toBe(4);
    expect((await unsignalled).length).toBe(4);
    // The joiner's own abort rejects it at once.
    const third = new AbortController();
    const late = source.seriesMetadata(third.signal);
    third.abort(new Error('third caller gave up'));
    await expect(late).rejects.toThrow('third caller gave up');
  });
});

describe('per-store concurrency', () => {
  it('keeps at most PATHEMBED_STORE_CONCURRENCY requests in flight to one store', async () => {
    fault.setDefault({ kind: 'delay', ms: 30 });
    const c = client({ PATHEMBED_STORE_CONCURRENCY: '2', PATHEMBED_FRAMES_PER_REQUEST: '8' });
    const frames = await c.fetchFrames(
      seriesUrl,
      level0Uid,
      Array.from({ length: 130 }, (_, i) => i),
    );
    expect(frames.length).toBe(130);
    expect(fault.requests.length).toBe(17); // ceil(130 / 8)
    expect(fault.maxInFlight).toBe(2);
  });
});

describe('redirects', () => {
  it('follows a redirect within the approved store', async () => {
    fault.script({ kind: 'redirect', status: 307, location: new URL(`${seriesUrl}/metadata`).pathname });
    const metadata = await client().seriesMetadata(seriesUrl);
    expect(metadata.length).toBe(4);
    expect(fault.requests.length).toBe(2);
  });

  it('refuses to follow a redirect to a store that is not on the allow-list', async () => {
    fault.script({ kind: 'redirect', location: 'http://169.254.169.254/computeMetadata/v1/instance' });
    const c = client();
    const err = await failure(c.seriesMetadata(seriesUrl));
    expect(err.code).toBe('UNAPPROVED_DICOM_STORE');
    expect(err.message).toMatch(/Redirect target http:\/\/169\.254\.169\.254\/computeMetadata\/v1\/instance/);
    expect(fault.requests.length).toBe(1);
    expect(c.stats.requests).toBe(1);
  });
});

describe('authentication', () => {
  it('sends the bearer token, and on a 401 after one refresh fails with DICOMWEB_UNAUTHORIZED, never showing the token', async () => {
    // A careless store echoing the Authorization header back in its error body.
    fault.setDefault({
      kind: 'custom',
      respond(req, res) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `token ${req.headers.authorization} expired` } }));
      },
    });
    const c = client({}, { auth: bearerAuth(TOKEN) });
    const err = await failure(c.fetchFrames(seriesUrl, level0Uid, [0]));
    expect(err.code).toBe('DICOMWEB_UNAUTHORIZED');
    expect(err.message).toMatch(/HTTP 401/);
    expect(err.message).toMatch(/a static bearer token/);
    expect(err.message).toContain('[redacted]');
    expect(fault.requests.length).toBe(2);
    expect(fault.requests.map((r) => r.headers.authorization)).toEqual([
      `Bearer ${TOKEN}`,
      `Bearer ${TOKEN}`,
    ]);
    expect(logLines.length).toBeGreaterThan(0);
    expectNoSecretsAnywhere(err);
  });

  it('refreshes Google credentials once on a 401 and succeeds with the fresh token', async () => {
    fault.issueTokens(STALE_TOKEN, FRESH_TOKEN);
    fault.setDefault({
      kind: 'custom',
      async respond(req, res) {
        if (req.headers.authorization !== `Bearer ${FRESH_TOKEN}`) {
          res.writeHead(401, { 'content-type': 'text/plain' });
          res.end(`rejected ${req.headers.authorization}`);
          return;
        }
        const upstream = await fetch(`${services().orthancUrl}${req.path}`, {
          headers: { accept: 'application/dicom+json' },
        });
        res.writeHead(upstream.status, { 'content-type': 'application/dicom+json' });
        res.end(Buffer.from(await upstream.arrayBuffer()));
      },
    });
    // Real google-auth-library refresh-token flow, its token endpoint on the fault server.
    const auth = googleAuth({
      createAuth: () => {
        const oauth = new OAuth2Client({
          clientId: 'test-client',
          clientSecret: 'test-secret',
          endpoints: { oauth2TokenUrl: `${fault.url}/token` },
        });
        oauth.setCredentials({ refresh_token: 'test-refresh-token' });
        return new GoogleAuth({ authClient: oauth });
      },
    });
    const c = client({}, { auth });
    const metadata = await c.seriesMetadata(seriesUrl);
    expect(metadata.length).toBe(4);
    expect(fault.tokenRequests.length).toBe(2);
    expect(fault.requests.map((r) => r.headers.authorization)).toEqual([
      `Bearer ${STALE_TOKEN}`,
      `Bearer ${FRESH_TOKEN}`,
    ]);
    expect(c.stats.retries).toBe(0);
    expectNoSecretsAnywhere();
  });

  it('does not send credentials along a redirect to another approved origin', async () => {
    const other = await startFaultServer(services().orthancUrl);
    try {
      fault.script({
        kind: 'redirect',
        status: 307,
        location: other.via(`${fixture('cmu-jpeg').seriesUrl}/metadata`),
      });
      const metadata = await client({}, { auth: bearerAuth(TOKEN) }).seriesMetadata(seriesUrl);
      expect(metadata.length).toBe(4);
      expect(fault.requests[0].headers.authorization).toBe(`Bearer ${TOKEN}`);
      expect(other.requests[0].headers.authorization).toBeUndefined();
    } finally {
      await other.close();
    }
  });
});
