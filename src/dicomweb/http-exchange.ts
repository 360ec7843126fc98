/**
 * One HTTP/1.1 exchange with a store: the request sent over node:http or node:https on the
 * process's keep-alive agents, and the answer as a `StoreResponse` whose body is a Node stream.
 *
 * Why not fetch: Node's fetch (undici) parses HTTP with llhttp compiled to WebAssembly and hands
 * bodies over as web streams. Both are slow until V8 has warmed them up, and a worker's first slide
 * pays for that on every request it makes: on a 2-core VM the first slide of a process read its
 * metadata and frames 30-40 ms slower over fetch than over node:http, whose parser is native
 * (docs/benchmarks.md, "EZ-WSI comparison").
 *
 * Bodies are decompressed (gzip, deflate, br) as fetch did, since stores compress JSON. Redirects
 * are not followed here: the caller checks each hop against the allow-list. The signal aborts
 * the request and the reading of its body alike.
 */
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import zlib from 'node:zlib';

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
  /** The whole body in one buffer of its own (never a slice of a shared pool). */
  bytes(): Promise<Uint8Array>;
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

// One pool of connections per protocol for the process, as fetch's global dispatcher kept: a job's
// requests reuse the sockets of the one before. Idle sockets do not keep the process alive.
const AGENTS = {
  'http:': new http.Agent({ keepAlive: true }),
  'https:': new https.Agent({ keepAlive: true }),
} as const;

function decoded(message: http.IncomingMessage): Readable {
  const encoding = message.headers['content-encoding']?.trim().toLowerCase();
  const inflate =
    encoding === 'gzip' || encoding === 'x-gzip'
      ? zlib.createGunzip()
      : encoding === 'deflate'
        ? zlib.createInflate()
        : encoding === 'br'
          ? zlib.createBrotliDecompress()
          : undefined;
  if (!inflate) return message;
  // A failure on either side ends the other, so a reader sees the error instead of waiting.
  message.on('error', (err) => inflate.destroy(err));
  inflate.on('close', () => message.destroy());
  return message.pipe(inflate);
}

/** The error an aborted exchange fails with; what aborted it is the signal's reason. */
function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error('The request was aborted', { cause: signal.reason }), {
    name: 'AbortError',
    code: 'ABORT_ERR',
  });
}

function storeResponse(message: http.IncomingMessage, onRelease: () => void): StoreResponse {
  const body = decoded(message);
  // Errors reach whoever reads the body (the stream keeps them); an answer nobody reads further
  // (an error excerpt cut short, a redirect) must not fail the process when its socket closes.
  const ignore = () => {};
  message.on('error', ignore);
  if (body !== message) body.on('error', ignore);
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
    async bytes(): Promise<Uint8Array> {
      const chunks: Buffer[] = [];
      let length = 0;
      for await (const chunk of body) {
        chunks.push(chunk as Buffer);
        length += (chunk as Buffer).length;
      }
      // Decoders may transfer the buffer to a worker thread: it must not be Node's shared pool.
      const out = new Uint8Array(length);
      let offset = 0;
      for (const c of chunks) {
        out.set(c, offset);
        offset += c.length;
      }
      return out;
    },
    async release(): Promise<void> {
      onRelease();
      if (message.complete && !body.destroyed) {
        // The rest is already in memory (a multipart epilogue, an unread error body). Its end
        // frees the socket; waiting for it lets the caller's next request find it free.
        body.resume();
        await finished(body).catch(() => {});
        return;
      }
      body.destroy();
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
  const headers: Record<string, string> = { 'accept-encoding': ACCEPT_ENCODING, ...init.headers };
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
        storeResponse(answer, () => {
          released = true;
          detach();
        }),
      );
    });
    signal.addEventListener('abort', onAbort, { once: true });
    request.on('close', detach);
    request.on('error', (err) => {
      detach();
      reject(err);
    });
    request.end(init.body);
  });
}
