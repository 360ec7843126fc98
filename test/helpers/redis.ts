/**
 * Redis for the queue tests: REDIS_URL when set, else the machine's Redis on 127.0.0.1:6379 when
 * it answers, else a private redis-server on a free port.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { requireBinary } from '../../scripts/dev-services/binaries.js';
import { freePort, waitFor } from '../../scripts/dev-services/ports.js';

export interface RedisService {
  url: string;
  stop(): Promise<void>;
}

async function answersPing(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(1000);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => {
      socket.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    socket.on('error', () => resolve(false));
    socket.on('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

export async function startRedis(): Promise<RedisService> {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, stop: async () => {} };
  if (await answersPing('127.0.0.1', 6379)) return { url: 'redis://127.0.0.1:6379', stop: async () => {} };
  const binary = requireBinary('redis-server');
  const port = await freePort();
  const child: ChildProcess = spawn(
    binary,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  await waitFor(() => answersPing('127.0.0.1', port), `redis-server on port ${port}`);
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

/** Every key under `prefix:` (SCAN, so a large shared Redis is not blocked). */
export async function scanKeys(redis: Pick<Redis, 'scan'>, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
    cursor = next;
    found.push(...batch);
  } while (cursor !== '0');
  return found;
}

export interface PrivateRedis {
  readonly url: string;
  readonly port: number;
  /** SIGTERM (Redis writes its append-only file and exits); resolves once it has exited. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data; resolves once it answers PING. */
  start(): Promise<void>;
  /** Stops it for good and removes its data folder. */
  close(): Promise<void>;
}

/**
 * A redis-server of the test's own on a free port, with an append-only file (fsync always) so
 * that a stop and start keeps every key, as a production Redis for BullMQ would: the fault tests
 * stop and restart it while the service runs. Never the machine's shared Redis.
 */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const binary = requireBinary('redis-server');
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-redis-'));
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(
      binary,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
      ],
      { stdio: 'ignore' },
    );
    await waitFor(() => answersPing('127.0.0.1', port), `private redis-server on port ${port}`);
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop,
    start,
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
