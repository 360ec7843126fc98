/**
 * Redis for the queue tests: REDIS_URL when set, else the machine's Redis on 127.0.0.1:6379 when
 * it answers, else a private redis-server on a free port.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
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
