/**
 * The operators' view: bull-board over the service's BullMQ queue, mounted at /ui/queues behind
 * the API keys (a browser signs in through /ui/login; its session cookie counts as the key). It
 * shows waiting, active, failed and completed slide, chunk and assemble jobs of every key, so it
 * is read-only: any API key signs in, and a tenant must not retry, remove or clean other tenants'
 * jobs or pause the shared queue (the job API is where a key acts on its own jobs). Its HTML links a web font from Google's CDN; the link is taken out of the
 * page, so the board makes no request beyond this origin (it falls back to the system font).
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Queue } from 'bullmq';
import { type RequestHandler, Router } from 'express';

export const QUEUES_BOARD_PATH = '/ui/queues';

export function queuesBoardRouter(queue: Queue): Router {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(QUEUES_BOARD_PATH);
  createBullBoard({
    queues: [new BullMQAdapter(queue, { readOnlyMode: true })],
    serverAdapter,
    options: { uiConfig: { boardTitle: 'pathembed queues' } },
  });
  const router = Router();
  router.use(withoutCdnLinks);
  router.use(serverAdapter.getRouter() as Router);
  return router;
}

/** `<link>` elements to another origin (the Google Fonts stylesheet of bull-board's page). */
const CDN_LINK = /<link[^>]+href="https?:\/\/[^"]*"[^>]*>/g;

const withoutCdnLinks: RequestHandler = (_req, res, next) => {
  const send = res.send.bind(res);
  res.send = (body?: unknown) => send(typeof body === 'string' ? body.replace(CDN_LINK, '') : body);
  next();
};
