/**
 * Redis going away while the service runs: a private redis-server (append-only file, so a restart
 * keeps the queue) that the test stops and starts again under the real API and a real worker in
 * this process. While it is down every API route answers 503 SERVICE_UNAVAILABLE with Retry-After
 * instead of hanging; once it is back the API answers again by itself, and the job that was
 * embedding when Redis went down completes with every planned patch exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateRedis, startPrivateRedis } from '../helpers/redis.js';
import { everyIndex, type Harness, startHarness, until } from '../helpers/service-harness.js';
import { fixture } from '../helpers/services.js';

/**
 * A request that has not answered after this long is hanging. With Redis down the API's
 * connections have no offline queue, so a request fails at once, whatever the command timeout
 * (PATHEMBED_REDIS_COMMAND_TIMEOUT_MS, for a Redis that hangs instead).
 */
const HANG_MS = 5000;
/** How long Redis stays down: longer than a lock renewal, shorter than the lock. */
const OUTAGE_MS = 3000;

let redis: PrivateRedis;
let h: Harness;

beforeAll(async () => {
  redis = await startPrivateRedis();
  h = await startHarness({ redisUrl: redis.url, env: { PATHEMBED_LOCK_DURATION_MS: '10000' } });
});

afterAll(async () => {
  await redis?.start().catch(() => undefined);
  await h?.close();
  await redis?.close();
});

interface Answer {
  status: number;
  retryAfter: string | null;
  code?: string;
}

async function ask(method: string, route: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${h.url}${route}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(HANG_MS),
  });
  const text = await res.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
  } catch {
    // metrics text
  }
  return { status: res.status, retryAfter: res.headers.get('retry-after'), code };
}

describe('Redis stopped and restarted under the service', () => {
  it('answers 503 with Retry-After while Redis is down, recovers, and loses no chunk', async () => {
    const source = fixture('cmu-jpeg').seriesUrl;
    const id = await h.submit(source, { options: { minTissue: 0, stridePx: 448 } });
    await until('the job to embed its first chunk', async () => {
      const j = await h.job(id);
      return j.progress.done > 0 ? j : undefined;
    });

    await redis.stop();
    const routes: Array<[string, string, unknown?]> = [
      ['GET', `/v1/jobs/${id}`],
      ['GET', '/v1/jobs'],
      ['POST', '/v1/jobs', { sources: [source], options: { minTissue: 0.3 } }],
      [
        'POST',
        '/v1/predict',
        {
          instances: [
            {
              dicom_path: { series_path: source },
              patch_coordinates: [{ x_origin: 0, y_origin: 0, width: 224, height: 224 }],
            },
          ],
        },
      ],
      ['GET', '/metrics'],
    ];
    for (const [method, route, body] of routes) {
      const answer = await ask(method, route, body);
      expect({ route, ...answer }).toEqual({
        route,
        status: 503,
        retryAfter: expect.stringMatching(/^\d+$/),
        code: route === '/metrics' || route === '/v1/predict' ? expect.anything() : 'SERVICE_UNAVAILABLE',
      });
    }
    expect((await ask('GET', '/readyz')).status).toBe(503);
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    await redis.start();

    // Back by itself, with no restart of the API or the worker: the service's own connection
    // and BullMQ's (which backs off on its own schedule) both reconnect.
    for (const route of [`/v1/jobs/${id}`, '/v1/jobs', '/metrics']) {
      await until(`${route} to answer again`, async () => {
        const a = await ask('GET', route);
        return a.status === 200 ? a : undefined;
      });
    }
    const end = await h.final(id);
    expect(end.error ?? undefined).toBeUndefined();
    expect(end.state).toBe('completed');
    const planned = end.progress.planned as number;
    expect(end.progress.done).toBe(planned);
    expect(await h.resultIndices(id)).toEqual(everyIndex(planned));
    expect(await h.tempFiles()).toEqual([]);
  });
});
