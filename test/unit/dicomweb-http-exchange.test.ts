/**
 * The HTTP exchange under every store request, against a real node:http server on loopback:
 * connections are reused across requests (also after a reader stops before the end of a body),
 * a late abort never cuts a connection another request is using, compressed bodies are
 * decompressed, and an abort while a body is read fails the reading.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { exchange, isBodyDecodingError, isMalformedAnswer } from '../../src/dicomweb/http-exchange.js';
import { DicomWebClient, StoreLimiters } from '../../src/dicomweb/index.js';
import { parseAllowList } from '../../src/dicomweb/store-allow-list.js';
import { StoreRequester } from '../../src/dicomweb/store-request.js';
import { retryPolicy, storeAuth } from '../../src/domain-options.js';
import { isPathembedError } from '../../src/errors.js';

const PAYLOAD = Buffer.from(
  JSON.stringify([{ '00080016': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.77.1.6'] } }]),
);
/** A body larger than one socket read, so a reader can stop part-way. */
const LARGE = Buffer.alloc(4 << 20, 7);
/** Text that compresses to several KB, so a cut gzip stream still has whole blocks to give. */
const LARGE_TEXT = Buffer.from(Array.from({ length: 20000 }, (_, i) => `frame ${i * 7919} `).join(''));

let server: http.Server;
let base: string;
let connections = 0;
let qidoRequests = 0;
const releaseSlow: Array<() => void> = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (req.url === '/json') {
      res.writeHead(200, { 'content-type': 'application/dicom+json', 'content-length': PAYLOAD.length });
      res.end(PAYLOAD);
    } else if (req.url === '/gzip') {
      const body = zlib.gzipSync(PAYLOAD);
      res.writeHead(200, { 'content-encoding': 'gzip', 'content-length': body.length });
      res.end(body);
    } else if (req.url === '/stacked') {
      // Applied gzip first, then br: the header lists them in that order.
      const body = zlib.brotliCompressSync(zlib.gzipSync(PAYLOAD));
      res.writeHead(200, { 'content-encoding': 'gzip, br', 'content-length': body.length });
      res.end(body);
    } else if (req.url === '/gzip-empty') {
      res.writeHead(200, { 'content-encoding': 'gzip', 'content-length': 0 });
      res.end();
    } else if (req.url === '/gzip-corrupt') {
      const body = zlib.gzipSync(PAYLOAD);
      body.fill(0x55, 10, 40);
      res.writeHead(200, {
        'content-type': 'application/dicom+json',
        'content-encoding': 'gzip',
        'content-length': body.length,
      });
      res.end(body);
    } else if (req.url === '/slow-gzip') {
      // A gzip stream cut in two: the first half now, the rest when the test says so.
      const body = zlib.gzipSync(Buffer.concat([PAYLOAD, PAYLOAD]));
      const half = body.length >> 1;
      res.writeHead(200, { 'content-encoding': 'gzip', 'content-length': body.length });
      res.write(body.subarray(0, half));
      releaseSlow.push(() => res.end(body.subarray(half)));
    } else if (req.url === '/gzip-truncated') {
      // A complete HTTP message around a gzip stream cut 10 bytes short (its end and trailer gone).
      const whole = zlib.gzipSync(LARGE_TEXT);
      const body = whole.subarray(0, whole.length - 10);
      res.writeHead(200, { 'content-encoding': 'gzip', 'content-length': body.length });
      res.end(body);
    } else if (req.url === '/gzip-chunked-empty') {
      // No Content-Length: chunked, and not one byte.
      res.writeHead(200, { 'content-encoding': 'gzip' });
      res.end();
    } else if (req.url === '/upgrade') {
      // A 101 nobody asked for, and then nothing: the connection stays open.
      req.socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n',
      );
    } else if (req.url === '/not-http') {
      req.socket.end('SSH-2.0-OpenSSH_9.2\r\n\r\n');
    } else if (req.url === '/bad-location') {
      res.writeHead(302, { location: 'http://[::1' }).end();
    } else if (req.url?.startsWith('/studies/1/series/2/instances/1.2.')) {
      // Frames: 1.2.3 names its parts in the wrong order (behind a query string), 1.2.4 sends an
      // empty second part, 1.2.5 answers one frame bare and empty.
      const instance = req.url.split('/')[6];
      if (instance === '1.2.5') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 0 });
        res.end();
        return;
      }
      const frames =
        instance === '1.2.3'
          ? [
              ['2?part=1', 'AAAA'],
              ['1?part=2', 'BBBB'],
            ]
          : [
              ['1', 'AAAA'],
              ['2', ''],
            ];
      const body = `${frames
        .map(
          ([n, data]) =>
            `--b\r\nContent-Type: application/octet-stream\r\nContent-Location: /studies/1/series/2/instances/${instance}/frames/${n}\r\n\r\n${data}\r\n`,
        )
        .join('')}--b--\r\n`;
      res.writeHead(200, {
        'content-type': 'multipart/related; type="application/octet-stream"; boundary=b',
      });
      res.end(body);
    } else if (req.url?.startsWith('/studies/1/series/2/instances')) {
      // A store that ignores offset: every page is the first one, as long as asked.
      const limit = Number(new URL(req.url, 'http://x').searchParams.get('limit'));
      qidoRequests++;
      const page = Array.from({ length: limit }, (_, i) => ({
        '00080018': { vr: 'UI', Value: [`1.2.3.${i}`] },
        '00080016': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.77.1.6'] },
      }));
      res.writeHead(200, { 'content-type': 'application/dicom+json' });
      res.end(JSON.stringify(page));
    } else if (req.url === '/compress') {
      res.writeHead(200, { 'content-encoding': 'compress', 'content-length': PAYLOAD.length });
      res.end(PAYLOAD);
    } else if (req.url === '/agent') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(req.headers['user-agent'] ?? '');
    } else if (req.url === '/large') {
      res.writeHead(200, { 'content-length': LARGE.length });
      res.end(LARGE);
    } else if (req.url === '/slow') {
      // Half the body now, the rest when the test says so.
      res.writeHead(200, { 'content-length': 2 * PAYLOAD.length });
      res.write(PAYLOAD);
      releaseSlow.push(() => res.end(PAYLOAD));
    } else {
      res.writeHead(404).end();
    }
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const release of releaseSlow) release();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function get(path: string, signal = new AbortController().signal) {
  return exchange(new URL(path, base), { method: 'GET', headers: { accept: '*/*' }, signal });
}

describe('exchange', () => {
  it('reuses one connection for requests one after another, also when a reader left the body early', async () => {
    // Let the previous tests' sockets settle, then count from here.
    const before = connections;
    for (let i = 0; i < 3; i++) {
      const res = await get('/json');
      expect(res.status).toBe(200);
      expect(res.headers.get('Content-Type')).toBe('application/dicom+json');
      const body = await res.bytes();
      expect(Buffer.from(body).equals(PAYLOAD)).toBe(true);
      await res.release();
    }
    // A reader that takes one chunk and stops once the whole answer has arrived.
    const partial = await get('/json');
    for await (const chunk of partial.body) {
      expect(chunk.length).toBeGreaterThan(0);
      break;
    }
    await partial.release();
    const after = await get('/json');
    expect(Buffer.from(await after.bytes()).equals(PAYLOAD)).toBe(true);
    await after.release();
    expect(connections - before).toBe(1);
  });

  it('cuts off an answer released before it has fully arrived, and the next request still succeeds', async () => {
    const res = await get('/large');
    for await (const _ of res.body) break;
    await res.release();
    const next = await get('/json');
    expect(Buffer.from(await next.bytes()).equals(PAYLOAD)).toBe(true);
    await next.release();
  });

  it('ignores an abort that comes after its answer was released, leaving the connection to the next request', async () => {
    const first = new AbortController();
    const res = await get('/json', first.signal);
    await res.bytes();
    await res.release();
    const before = connections;
    const second = await get('/slow');
    // The first request's signal fires while the second is on (most likely) the same socket.
    first.abort(new Error('a sibling failed'));
    setTimeout(() => releaseSlow.shift()?.(), 20);
    const body = await second.bytes();
    await second.release();
    expect(body.length).toBe(2 * PAYLOAD.length);
    expect(connections).toBe(before);
  });

  it('fails the reading of a body with an AbortError when its signal aborts', async () => {
    const controller = new AbortController();
    const res = await get('/slow', controller.signal);
    const reading = res.bytes();
    controller.abort(new Error('job cancelled'));
    await expect(reading).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    await res.release();
    releaseSlow.shift()?.();
  });

  it('refuses at once when the signal has already aborted', async () => {
    const controller = new AbortController();
    controller.abort(new Error('before sending'));
    await expect(get('/json', controller.signal)).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('decompresses a gzip body, as fetch did', async () => {
    const res = await get('/gzip');
    expect(Buffer.from(await res.bytes()).equals(PAYLOAD)).toBe(true);
    await res.release();
  });

  it('undoes stacked codings in reverse order, and reads an empty gzip body as empty', async () => {
    const stacked = await get('/stacked');
    expect(Buffer.from(await stacked.bytes()).equals(PAYLOAD)).toBe(true);
    await stacked.release();
    const empty = await get('/gzip-empty');
    expect((await empty.bytes()).length).toBe(0);
    await empty.release();
  });

  it('marks a body that does not decompress, or whose coding is unknown, as a decoding failure', async () => {
    for (const path of ['/gzip-corrupt', '/compress']) {
      const res = await get(path);
      const err = await res.bytes().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isBodyDecodingError(err), path).toBe(true);
      await res.release();
    }
    // An abort while a compressed body is read is an abort, not a decoding failure.
    const controller = new AbortController();
    const res = await get('/slow-gzip', controller.signal);
    controller.abort(new Error('cancelled'));
    const aborted = await res.bytes().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isBodyDecodingError(aborted)).toBe(false);
    await res.release();
    releaseSlow.shift()?.();
  });

  it('fails a gzip body cut short inside a complete HTTP message, and reads a chunked empty gzip body as empty', async () => {
    const cut = await get('/gzip-truncated');
    const err = await cut.bytes().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isBodyDecodingError(err)).toBe(true);
    expect((err as Error).message).toMatch(/unexpected end of file/);
    await cut.release();
    const empty = await get('/gzip-chunked-empty');
    expect((await empty.bytes()).length).toBe(0);
    await empty.release();
  });

  it('refuses a body past the limit it is read with, naming what was read', async () => {
    const res = await get('/large');
    await expect(res.bytes({ maxBytes: 1 << 20, what: 'WADO-RS frame 1' })).rejects.toMatchObject({
      code: 'DICOMWEB_BAD_RESPONSE',
      message: expect.stringMatching(/^WADO-RS frame 1: the answer exceeds 1048576 bytes/),
    });
    await res.release();
  });

  it('fails at once, as a malformed answer, on a 101 Switching Protocols and on bytes that are not HTTP', async () => {
    for (const path of ['/upgrade', '/not-http']) {
      const err = await get(path).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isMalformedAnswer(err), path).toBe(true);
    }
  });

  it('says who is asking (User-Agent), as fetch did', async () => {
    const res = await get('/agent');
    expect(Buffer.from(await res.bytes()).toString()).toBe('pathembed');
    await res.release();
  });

  it('hands the whole body over in a buffer of its own, never a slice of a shared pool', async () => {
    const res = await get('/json');
    const body = await res.bytes();
    await res.release();
    expect(body.byteOffset).toBe(0);
    expect(body.buffer.byteLength).toBe(PAYLOAD.length);
  });

  it('rejects with the socket error when nothing listens', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await expect(
      exchange(new URL(`http://127.0.0.1:${port}/`), {
        method: 'GET',
        headers: {},
        signal: new AbortController().signal,
      }),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

/** A client configured from `env` as the worker builds one (retries, auth), small limits. */
function clientFromEnv(env: Record<string, string>): DicomWebClient {
  const config = loadConfig(env);
  return new DicomWebClient({
    allowedStores: config.PATHEMBED_ALLOWED_STORES,
    retry: retryPolicy(config),
    framesPerRequest: 4,
    storeConcurrency: 2,
    limiters: new StoreLimiters(2),
    auth: storeAuth(config),
  });
}

describe('store requests over the exchange', () => {
  it('report a body that does not decompress as DICOMWEB_BAD_RESPONSE, not a network failure', async () => {
    const client = clientFromEnv({ PATHEMBED_ALLOWED_STORES: base, PATHEMBED_RETRY_MAX_ATTEMPTS: '1' });
    const err = await client.qido(base, '/gzip-corrupt', new URLSearchParams()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isPathembedError(err, 'DICOMWEB_BAD_RESPONSE')).toBe(true);
    expect((err as Error).message).toMatch(/does not decompress \(Content-Encoding gzip\)/);
  });

  const storeClient = () =>
    clientFromEnv({ PATHEMBED_ALLOWED_STORES: base, PATHEMBED_RETRY_MAX_ATTEMPTS: '3' });

  it('report a 101, bytes that are not HTTP and a redirect to a Location that is no URL as DICOMWEB_BAD_RESPONSE, without retrying', async () => {
    const client = storeClient();
    for (const [path, message] of [
      [
        '/upgrade',
        /not HTTP a DICOMweb client can read: the store answered 101 Switching Protocols to a plain GET/,
      ],
      ['/not-http', /not HTTP a DICOMweb client can read: .*HPE_/],
      ['/bad-location', /answered 302 with a Location that is not a URL \("http:\/\/\[::1"\)/],
    ] as const) {
      const started = client.stats.requests;
      const err = await client.qido(base, path, new URLSearchParams()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isPathembedError(err, 'DICOMWEB_BAD_RESPONSE'), path).toBe(true);
      expect((err as Error).message).toMatch(message);
      expect(client.stats.requests - started, path).toBe(1);
    }
  });

  it('refuse frames named out of order (also behind a query string), an empty part and an empty single frame', async () => {
    const client = storeClient();
    const series = { baseUrl: base, studyUid: '1', seriesUid: '2' };
    for (const [instance, indices, message] of [
      ['1.2.3', [0, 1], /part 1 is frame 2, expected frame 1/],
      ['1.2.4', [0, 1], /part 2 \(frame 2\) is empty/],
      ['1.2.5', [0], /the answer is empty; a frame has pixel data/],
    ] as const) {
      const err = await client.fetchFrames(series, instance, indices).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isPathembedError(err, 'DICOMWEB_BAD_RESPONSE'), instance).toBe(true);
      expect((err as Error).message).toMatch(message);
    }
  });

  it('say, without refreshing credentials, that a 401 came from another origin a redirect led to', async () => {
    let authorized = 0;
    const elsewhere = http.createServer((req, res) => {
      if (req.headers.authorization) authorized++;
      res.writeHead(401).end();
    });
    await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
    const other = `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}`;
    const away = http.createServer((_req, res) => {
      res.writeHead(302, { location: `${other}/metadata` }).end();
    });
    await new Promise<void>((resolve) => away.listen(0, '127.0.0.1', resolve));
    const start = `http://127.0.0.1:${(away.address() as AddressInfo).port}`;
    try {
      const client = clientFromEnv({
        PATHEMBED_ALLOWED_STORES: `${start},${other}`,
        PATHEMBED_AUTH: 'bearer',
        PATHEMBED_BEARER_TOKEN: 'secret-token-1234',
      });
      const err = await client.qido(start, '/series', new URLSearchParams()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isPathembedError(err, 'DICOMWEB_UNAUTHORIZED')).toBe(true);
      expect((err as Error).message).toMatch(/redirected to GET .* another origin, which answered HTTP 401/);
      expect(client.stats.requests).toBe(2);
      expect(authorized).toBe(0);
    } finally {
      away.close();
      elsewhere.close();
    }
  });

  it('report a failure to read an answer that did arrive as a bad answer, not as a host that cannot be reached', async () => {
    const config = loadConfig({ PATHEMBED_ALLOWED_STORES: base });
    const requester = new StoreRequester({
      allowList: parseAllowList(config.PATHEMBED_ALLOWED_STORES),
      retry: retryPolicy(config),
      limiters: new StoreLimiters(2),
      stats: { requests: 0, retries: 0 },
    });
    const err = await requester
      .request({
        method: 'GET',
        url: `${base}/json`,
        accept: 'application/dicom+json',
        what: 'A test read',
        notFoundHint: '',
        consume: async () => {
          throw new RangeError('Invalid typed array length: 4831838208');
        },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isPathembedError(err, 'DICOMWEB_BAD_RESPONSE')).toBe(true);
    expect((err as Error).message).toMatch(
      /the answer of GET .*\/json could not be read: .*Invalid typed array length/,
    );
    expect((err as Error).message).not.toMatch(/host name/);
  });

  it('refuse to list a series from a store that answers the first page again for the next offset', async () => {
    const before = qidoRequests;
    const err = await storeClient()
      .searchInstances({ baseUrl: base, studyUid: '1', seriesUid: '2' })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isPathembedError(err, 'DICOMWEB_BAD_RESPONSE')).toBe(true);
    expect((err as Error).message).toMatch(
      /answered the same 1000 instances again .* ignores the offset parameter/,
    );
    expect(qidoRequests - before).toBe(2);
  });
});
