/**
 * One HTTP/1.1 exchange with a store: the request sent over node:http or node:https on the
 * process's keep-alive agents, and the answer as a `StoreResponse` whose body is a Node stream.
 *
 * Why not fetch: Node's fetch (undici) parses HTTP with llhttp compiled to WebAssembly and hands
 * bodies over as web streams. Both are slow until V8 has warmed them up, and a worker's first slide
 * pays for that on every request it makes: on a 2-core VM the first slide of a process read in
 * 0.155 s over fetch and 0.126 s over node:http, whose parser is native (docs/benchmarks.md,
 * "Against EZ-WSI DICOMweb").
 *
 * Bodies are decompressed (gzip, deflate, br, also stacked) as fetch did, since stores compress
 * JSON; one that does not decompress, or whose compressed stream is cut short, is marked
 * (`isBodyDecodingError`) so the request reports a bad answer rather than a network failure (a
 * truncated frame must never pass for a whole one). An answer that is not HTTP a DICOMweb client
 * can read (the parser's HPE_ errors, a 101 Switching Protocols) is marked too
 * (`isMalformedAnswer`), and a connection that closes before any answer fails the exchange as
 * ECONNRESET, so no exchange is left waiting. Redirects are not followed here: the caller checks
 * each hop against the allow-list. The signal aborts the request and the reading of its body
 * until the raw answer has fully arrived.
 */
import http from 'node:http';
import https from 'node:https';
import { PassThrough, type Readable, Transform } from 'node:stream';
import { finished } from 'node:stream/promises';
import zlib from 'node:zlib';
import { PathembedError } from '../errors.js';
import { joinOwned } from './multipart.js';

/** The answer to one exchange, read by the request's `consume`. */
export interface StoreResponse {
  readonly status: number;
  readonly statusText: string;
  /** 2xx. */
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  /**
   * The body, decompressed; reading it after the signal aborted throws the abort. Leaving a loop
   * over it early does not end the exchange: `release` does.
   */
  readonly body: AsyncIterable<Uint8Array>;
  /**
   * The whole body in one buffer of its own (never a slice of a shared pool). With `limit`, a body
   * past `maxBytes` fails with DICOMWEB_BAD_RESPONSE, naming `what`, before it is all held.
   */
  bytes(limit?: { readonly maxBytes: number; readonly what: string }): Promise<Uint8Array>;
  /**
   * Ends the exchange once its reader is done with it: an answer that has fully arrived is drained
   * so its connection serves the next request (resolving once it is back in the pool); one still
   * arriving is cut off with its connection. Never rejects; safe to call more than once.
   */
  release(): Promise<void>;
}

export interface ExchangeInit {
  readonly method: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: Uint8Array;
  readonly signal: AbortSignal;
}

/** What fetch asked for, so stores answer JSON as compactly as they did. */
const ACCEPT_ENCODING = 'gzip, deflate, br';
/** Sent with every request: some proxies and firewalls refuse requests without one. */
const USER_AGENT = 'pathembed';
/**
 * Idle connections close after this long (or a second before the server's Keep-Alive hint), as
 * fetch's did, instead of waiting for the server to close one just as it is reused.
 */
const IDLE_SOCKET_MS = 4000;
const HTTP_NO_CONTENT = 204;
const HTTP_NOT_MODIFIED = 304;

// One pool of connections per protocol for the process, as fetch's global dispatcher kept: a job's
// requests reuse the sockets of the one before. Idle sockets do not keep the process alive.
const AGENTS = {
  'http:': new http.Agent({ keepAlive: true, timeout: IDLE_SOCKET_MS }),
  'https:': new https.Agent({ keepAlive: true, timeout: IDLE_SOCKET_MS }),
} as const;

/**
 * Decoders of the content codings fetch accepted. Output is flushed as it arrives, but the end is
 * strict (zlib's default finish): a compressed stream cut short, with a complete HTTP message
 * around it, fails with "unexpected end of file" instead of passing for the whole body. (fetch
 * finished leniently, and a frame answer cut that way was taken as a shorter frame.)
 */
const DECODERS: Readonly<Record<string, () => Transform>> = {
  gzip: () => zlib.createGunzip({ flush: zlib.constants.Z_SYNC_FLUSH }),
  'x-gzip': () => zlib.createGunzip({ flush: zlib.constants.Z_SYNC_FLUSH }),
  deflate: () => zlib.createInflate({ flush: zlib.constants.Z_SYNC_FLUSH }),
  br: () => zlib.createBrotliDecompress({ flush: zlib.constants.BROTLI_OPERATION_FLUSH }),
};

/**
 * `make()`'s decoder, started by the body's first byte: a compressed answer with no bytes at all
 * (a chunked or close-delimited empty body) is empty, as fetch had it, where a strict decoder
 * ended without input fails as a stream cut short.
 */
function startedByFirstByte(make: () => Transform): Transform {
  let inner: Transform | undefined;
  const outer = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (!inner) {
        inner = make();
        inner.on('data', (data: Buffer) => outer.push(data));
        inner.on('error', (err: Error) => outer.destroy(err));
      }
      inner.write(chunk, () => done());
    },
    flush(done) {
      if (!inner) {
        done();
        return;
      }
      inner.once('end', () => done());
      inner.end();
    },
    destroy(err, done) {
      inner?.destroy();
      done(err);
    },
  });
  return outer;
}

/** Marks errors of a body that did not decompress, so the request maps them to a bad answer. */
const DECODING_FAILED = Symbol('pathembed.bodyDecodingFailed');

/** Marks an answer that is not HTTP a DICOMweb client can read (a parser error, an upgrade). */
const MALFORMED_ANSWER = Symbol('pathembed.malformedAnswer');

/** Whether `err` is an answer that is not readable HTTP (HPE_ parser errors, 101): the store's fault, not the network's. */
export function isMalformedAnswer(err: unknown): boolean {
  return (
    typeof err === 'object' &&
    err !== null &&
    (err as { [MALFORMED_ANSWER]?: true })[MALFORMED_ANSWER] === true
  );
}

/** Node's HTTP parser names its errors HPE_... (llhttp): the bytes that came back are not HTTP. */
function isParserError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('HPE_');
}

/** Whether `err` is a body that would not decompress (not a network failure). */
export function isBodyDecodingError(err: unknown): boolean {
  return (
    typeof err === 'object' && err !== null && (err as { [DECODING_FAILED]?: true })[DECODING_FAILED] === true
  );
}

/** The body as sent, and the decoders it goes through (outermost coding first undone). */
function decoding(message: http.IncomingMessage, method: string): { body: Readable; stages: Transform[] } {
  const header = message.headers['content-encoding'];
  const status = message.statusCode ?? 0;
  // As fetch: nothing to decode in an answer that has no body.
  if (
    header === undefined ||
    method === 'HEAD' ||
    status === HTTP_NO_CONTENT ||
    status === HTTP_NOT_MODIFIED ||
    message.headers['content-length'] === '0'
  ) {
    return { body: message, stages: [] };
  }
  const codings = header
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
  const stages: Transform[] = [];
  // Codings are listed in the order they were applied: undo the last first.
  for (const coding of codings.reverse()) {
    const make = DECODERS[coding];
    if (!make) {
      const refused = new PassThrough();
      refused.destroy(
        Object.assign(
          new Error(
            `the answer's Content-Encoding "${coding}" is not one pathembed decodes (gzip, deflate, br)`,
          ),
          {
            [DECODING_FAILED]: true,
          },
        ),
      );
      return { body: refused, stages: [refused] };
    }
    stages.push(startedByFirstByte(make));
  }
  let body: Readable = message;
  // Errors that reach a stage from upstream (a dropped connection, an abort) are not its own.
  const upstream = new WeakSet<Error>();
  for (const stage of stages) {
    stage.on('error', (err: Error) => {
      if (!upstream.has(err)) Object.assign(err, { [DECODING_FAILED]: true });
    });
    // A failure upstream ends the stage, so a reader sees the error instead of waiting.
    body.on('error', (err) => {
      upstream.add(err);
      stage.destroy(err);
    });
    body = body.pipe(stage);
  }
  return { body, stages };
}

/** The error an aborted exchange fails with; what aborted it is the signal's reason. */
function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error('The request was aborted', { cause: signal.reason }), {
    name: 'AbortError',
    code: 'ABORT_ERR',
  });
}

function storeResponse(
  message: http.IncomingMessage,
  request: http.ClientRequest,
  method: string,
  onRelease: () => void,
): StoreResponse {
  const { body, stages } = decoding(message, method);
  // Errors reach whoever reads the body (the stream keeps them); an answer nobody reads further
  // (an error excerpt cut short, a redirect) must not fail the process when its socket closes.
  const ignore = () => {};
  message.on('error', ignore);
  for (const stage of stages) stage.on('error', ignore);
  return {
    status: message.statusCode ?? 0,
    statusText: message.statusMessage ?? '',
    ok: (message.statusCode ?? 0) >= 200 && (message.statusCode ?? 0) < 300,
    headers: {
      get(name: string): string | null {
        const value = message.headers[name.toLowerCase()];
        if (value === undefined) return null;
        return Array.isArray(value) ? value.join(', ') : value;
      },
    },
    body: { [Symbol.asyncIterator]: () => body.iterator({ destroyOnReturn: false }) },
    async bytes(limit): Promise<Uint8Array> {
      const chunks: Buffer[] = [];
      let length = 0;
      for await (const chunk of body) {
        chunks.push(chunk as Buffer);
        length += (chunk as Buffer).length;
        if (limit && length > limit.maxBytes) {
          throw new PathembedError(
            'DICOMWEB_BAD_RESPONSE',
            `${limit.what}: the answer exceeds ${limit.maxBytes} bytes; refusing to hold it in memory.`,
            { maxBytes: limit.maxBytes },
          );
        }
      }
      // Decoders may transfer the buffer to a worker thread: it must not be Node's shared pool.
      return joinOwned(chunks, length);
    },
    async release(): Promise<void> {
      onRelease();
      // The rest of the raw answer is already in memory (a multipart epilogue, an unread error
      // body) and the request was sent whole: drain it, not decompressing what nobody reads, so
      // its end frees the socket, and wait for that so the caller's next request finds it free.
      if (message.complete && !message.destroyed && request.writableFinished) {
        for (const stage of stages) {
          message.unpipe(stage);
          stage.destroy();
        }
        message.resume();
        await finished(message).catch(() => {});
        return;
      }
      for (const stage of stages) stage.destroy();
      message.destroy();
    },
  };
}

/**
 * Sends one request and resolves with its answer as soon as the status line and headers are in.
 * Rejects with the socket's error (ECONNREFUSED, ECONNRESET...) or, when the signal aborts first,
 * an AbortError. An abort after that fails the reading of the body; once the answer is released,
 * the signal no longer reaches it, so a late abort never cuts a connection that serves another
 * request by then (which Node's own `signal` option on http.request can do).
 */
export function exchange(url: URL, init: ExchangeInit): Promise<StoreResponse> {
  const agent = AGENTS[url.protocol as keyof typeof AGENTS];
  if (!agent) {
    return Promise.reject(new TypeError(`Unsupported protocol ${url.protocol} (http: or https: only)`));
  }
  const { signal } = init;
  if (signal.aborted) return Promise.reject(abortError(signal));
  const transport = url.protocol === 'https:' ? https : http;
  const headers: Record<string, string> = {
    'accept-encoding': ACCEPT_ENCODING,
    'user-agent': USER_AGENT,
    ...init.headers,
  };
  if (init.body !== undefined) headers['content-length'] = String(init.body.byteLength);
  return new Promise((resolve, reject) => {
    let message: http.IncomingMessage | undefined;
    let released = false;
    const onAbort = () => {
      if (released) return;
      const err = abortError(signal);
      if (message) message.destroy(err);
      request.destroy(err);
    };
    const detach = () => signal.removeEventListener('abort', onAbort);
    const request = transport.request(url, { method: init.method, headers, agent }, (answer) => {
      message = answer;
      answer.on('close', detach);
      resolve(
        storeResponse(answer, request, init.method, () => {
          released = true;
          detach();
        }),
      );
    });
    signal.addEventListener('abort', onAbort, { once: true });
    // A DICOMweb request never asks to switch protocols. Without this listener node:http destroys
    // the socket and closes the request with neither an answer nor an error.
    request.on('upgrade', (answer: http.IncomingMessage, socket) => {
      socket.destroy();
      detach();
      reject(
        Object.assign(
          new Error(
            `the store answered ${`${answer.statusCode} ${answer.statusMessage ?? ''}`.trim()} to a plain ${init.method}, a switch of protocol nobody asked for`,
          ),
          { [MALFORMED_ANSWER]: true },
        ),
      );
    });
    request.on('close', () => {
      detach();
      // Whatever else ends a request without an answer must not leave the exchange waiting
      // (a no-op when it settled already).
      if (!message) {
        reject(
          Object.assign(new Error('the connection closed before the store answered'), { code: 'ECONNRESET' }),
        );
      }
    });
    request.on('error', (err) => {
      detach();
      if (isParserError(err)) Object.assign(err, { [MALFORMED_ANSWER]: true });
      reject(err);
    });
    request.end(init.body);
  });
}
