/**
 * A tiny DICOMweb-shaped HTTP server on 127.0.0.1 that produces, on demand, the faults a real
 * Orthanc cannot: 429 storms with Retry-After, 503s, connections dropped mid-body, slow answers,
 * 401s, redirects. Each request consumes the next scripted step; when the script is empty (or a
 * step says so) the request is proxied to the real test Orthanc, so successful answers are real.
 * It records every request (path, headers, time) and the most requests it saw in flight at once.
 * It also serves an OAuth token endpoint (POST /token) for Google-auth tests.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type FaultStep =
  /** Answer with this status, headers and body. */
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string }
  /** Forward to the upstream Orthanc. */
  | { kind: 'proxy' }
  /** Forward, but cut the connection after sending the headers and part of the body. */
  | { kind: 'drop-mid-body'; fraction?: number }
  /** Close the socket without answering. */
  | { kind: 'reset' }
  /** Wait, then perform `then` (default: proxy). */
  | { kind: 'delay'; ms: number; then?: FaultStep }
  | { kind: 'redirect'; location: string; status?: number }
  /** `apply` for requests `when` selects (e.g. frame requests), `otherwise` (default proxy) for the rest. */
  | { kind: 'match'; when(req: RecordedRequest): boolean; apply: FaultStep; otherwise?: FaultStep }
  /** Forward, then answer the upstream's status and headers with the body `mutate` returns. */
  | { kind: 'mutate'; mutate(body: Buffer, req: RecordedRequest): Buffer }
  /** Forward, but send only the first `fraction` of the body and end the response cleanly (chunked). */
  | { kind: 'truncate'; fraction?: number }
  /** Anything else: full control over the answer. */
  | { kind: 'custom'; respond(req: RecordedRequest, res: http.ServerResponse): void | Promise<void> };

export interface RecordedRequest {
  readonly method: string;
  /** Path and query as received. */
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
  /** performance.now() when the request arrived. */
  readonly atMs: number;
  readonly body: Buffer;
}

export interface FaultServer {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** Requests received on DICOMweb paths (token requests excluded), in arrival order. */
  readonly requests: RecordedRequest[];
  /** Requests to POST /token. */
  readonly tokenRequests: RecordedRequest[];
  /** Most DICOMweb requests in flight at once so far. */
  readonly maxInFlight: number;
  /** Replaces the script: each request takes the next step; then requests are proxied. */
  script(...steps: FaultStep[]): void;
  /** A step applied to every request once the script is empty (default proxy). */
  setDefault(step: FaultStep): void;
  /** Access tokens the token endpoint hands out, in order (the last one repeats). */
  issueTokens(...tokens: string[]): void;
  /** Clears script, recordings and counters. */
  reset(): void;
  /** Rewrites a URL of the upstream to go through this server. */
  via(upstreamUrl: string): string;
  close(): Promise<void>;
}

const TOKEN_PATH = '/token';
const TOKEN_LIFETIME_S = 3600;
const DEFAULT_DROP_FRACTION = 0.5;

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function forward(upstream: string, req: RecordedRequest): Promise<Response> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || ['host', 'connection', 'authorization', 'content-length'].includes(name))
      continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return fetch(`${upstream}${req.path}`, {
    method: req.method,
    headers,
    body: req.method === 'GET' || req.method === 'HEAD' ? undefined : req.body,
    redirect: 'manual',
  });
}

async function proxy(upstream: string, req: RecordedRequest, res: http.ServerResponse): Promise<void> {
  const answer = await forward(upstream, req);
  const body = Buffer.from(await answer.arrayBuffer());
  const headers: Record<string, string> = {};
  answer.headers.forEach((v, k) => {
    if (!['content-length', 'transfer-encoding', 'connection', 'keep-alive'].includes(k)) headers[k] = v;
  });
  res.writeHead(answer.status, { ...headers, 'content-length': String(body.length) });
  res.end(body);
}

export async function startFaultServer(upstream: string): Promise<FaultServer> {
  let steps: FaultStep[] = [];
  let fallback: FaultStep = { kind: 'proxy' };
  let tokens: string[] = ['token-0'];
  let tokenIndex = 0;
  let inFlight = 0;
  const state = {
    requests: [] as RecordedRequest[],
    tokenRequests: [] as RecordedRequest[],
    maxInFlight: 0,
  };

  const perform = async (step: FaultStep, req: RecordedRequest, res: http.ServerResponse): Promise<void> => {
    switch (step.kind) {
      case 'status':
        res.writeHead(step.status, { 'content-type': 'text/plain', ...step.headers });
        res.end(step.body ?? '');
        return;
      case 'proxy':
        return proxy(upstream, req, res);
      case 'drop-mid-body': {
        const answer = await forward(upstream, req);
        const body = Buffer.from(await answer.arrayBuffer());
        const headers: Record<string, string> = {};
        answer.headers.forEach((v, k) => {
          if (!['content-length', 'transfer-encoding', 'connection', 'keep-alive'].includes(k))
            headers[k] = v;
        });
        res.writeHead(answer.status, { ...headers, 'content-length': String(body.length) });
        res.write(body.subarray(0, Math.floor(body.length * (step.fraction ?? DEFAULT_DROP_FRACTION))));
        // Let the bytes leave before the socket dies, so the client sees a body cut short.
        await new Promise((r) => setTimeout(r, 20));
        res.socket?.destroy();
        return;
      }
      case 'reset':
        res.socket?.destroy();
        return;
      case 'delay':
        await new Promise((r) => setTimeout(r, step.ms));
        if (res.socket?.destroyed) return;
        return perform(step.then ?? { kind: 'proxy' }, req, res);
      case 'redirect':
        res.writeHead(step.status ?? 302, { location: step.location });
        res.end();
        return;
      case 'match':
        return perform(step.when(req) ? step.apply : (step.otherwise ?? { kind: 'proxy' }), req, res);
      case 'mutate':
      case 'truncate': {
        const answer = await forward(upstream, req);
        const body = Buffer.from(await answer.arrayBuffer());
        const headers: Record<string, string> = {};
        answer.headers.forEach((v, k) => {
          if (!['content-length', 'transfer-encoding', 'connection', 'keep-alive'].includes(k))
            headers[k] = v;
        });
        const out =
          step.kind === 'mutate'
            ? step.mutate(body, req)
            : body.subarray(0, Math.floor(body.length * (step.fraction ?? DEFAULT_DROP_FRACTION)));
        if (step.kind === 'mutate') headers['content-length'] = String(out.length);
        res.writeHead(answer.status, headers);
        res.end(out);
        return;
      }
      case 'custom':
        return step.respond(req, res);
    }
  };

  const server = http.createServer(async (incoming, res) => {
    const recorded: RecordedRequest = {
      method: incoming.method ?? 'GET',
      path: incoming.url ?? '/',
      headers: incoming.headers,
      atMs: performance.now(),
      body: await readBody(incoming),
    };
    if (recorded.path === TOKEN_PATH && recorded.method === 'POST') {
      state.tokenRequests.push(recorded);
      const token = tokens[Math.min(tokenIndex++, tokens.length - 1)];
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: token, expires_in: TOKEN_LIFETIME_S, token_type: 'Bearer' }));
      return;
    }
    state.requests.push(recorded);
    inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, inFlight);
    res.on('close', () => {
      inFlight--;
    });
    try {
      await perform(steps.shift() ?? fallback, recorded, res);
    } catch (err) {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`fault server: ${(err as Error).message}`);
    }
  });
  // Keep-alive like real stores, so a retried request may reuse (or lose) a pooled connection.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const upstreamOrigin = new URL(upstream).origin;

  return {
    url,
    get requests() {
      return state.requests;
    },
    get tokenRequests() {
      return state.tokenRequests;
    },
    get maxInFlight() {
      return state.maxInFlight;
    },
    script(...next) {
      steps = [...next];
    },
    setDefault(step) {
      fallback = step;
    },
    issueTokens(...next) {
      tokens = next;
      tokenIndex = 0;
    },
    reset() {
      steps = [];
      fallback = { kind: 'proxy' };
      state.requests = [];
      state.tokenRequests = [];
      state.maxInFlight = 0;
    },
    via(upstreamUrl) {
      const u = new URL(upstreamUrl);
      if (u.origin !== upstreamOrigin)
        throw new Error(`${upstreamUrl} is not on the upstream ${upstreamOrigin}`);
      return `${url}${u.pathname}${u.search}`;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
