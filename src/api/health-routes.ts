/**
 * Liveness and readiness. /healthz answers while the process runs; /readyz only when the service
 * can do work: Redis answers, and a worker has published its model manifest (without it job ids,
 * which include the model's sha256, cannot be derived).
 */
import { Router } from 'express';
import type { QueueContext } from '../queue/queue-context.js';
import { liveWorkers, readPublishedModel } from '../queue/worker-registry.js';

/** /readyz gives up on Redis after this long rather than hanging the probe. */
const REDIS_PING_TIMEOUT_MS = 2000;

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function healthRouter(ctx: QueueContext): Router {
  const router = Router();

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', async (_req, res) => {
    const reasons: string[] = [];
    let model: Awaited<ReturnType<typeof readPublishedModel>>;
    let workers = 0;
    try {
      await withTimeout(ctx.redis.ping(), REDIS_PING_TIMEOUT_MS, 'Redis');
      model = await readPublishedModel(ctx.redis, ctx.keys);
      if (!model) reasons.push('no worker has published its model manifest yet (start `pathembed worker`)');
      workers = (await liveWorkers(ctx.redis, ctx.keys)).length;
    } catch (err) {
      reasons.push(`Redis is not reachable: ${(err as Error).message}`);
    }
    const body = {
      status: reasons.length === 0 ? 'ok' : 'unavailable',
      redis: !reasons.some((r) => r.startsWith('Redis')),
      model: model
        ? { name: model.name, version: model.version, sha256: model.sha256, synthetic: model.synthetic }
        : null,
      workers,
      ...(reasons.length > 0 ? { reasons } : {}),
    };
    res.status(reasons.length === 0 ? 200 : 503).json(body);
  });

  return router;
}
