/**
 * Listening: binds the app to a host and port (0 picks a free one, as tests do) and closes it
 * gracefully, letting requests in flight finish.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';

export interface Listening {
  readonly server: Server;
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/**
 * How long an idle keep-alive connection stays open. Node's 5 s default races clients that reuse
 * a connection just as the server closes it (ECONNRESET on a poll, seen under load); it must also
 * outlast the idle timeout of a load balancer in front (60 s on the common ones), or the balancer
 * sends requests down connections the service has closed.
 */
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 65_000;
/** Headers must be allowed a little longer than keep-alive, or Node cuts a reused socket short. */
const HEADERS_TIMEOUT_MARGIN_MS = 1_000;

export async function listen(
  app: Express,
  host: string,
  port: number,
  keepAliveTimeoutMs = DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
): Promise<Listening> {
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(port, host, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  server.keepAliveTimeout = keepAliveTimeoutMs;
  server.headersTimeout = keepAliveTimeoutMs + HEADERS_TIMEOUT_MARGIN_MS;
  const actual = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    server,
    port: actual,
    url: `http://${shownHost}:${actual}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeIdleConnections();
      }),
  };
}
