/**
 * The operators' view: bull-board over the service's BullMQ queue, mounted at /ui/queues behind
 * the API keys (a browser signs in through /ui/login; its session cookie counts as the key). It
 * shows waiting, active, failed and completed slide, chunk and assemble jobs and lets an operator
 * retry or remove them.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Queue } from 'bullmq';
import type { Router } from 'express';

export const QUEUES_BOARD_PATH = '/ui/queues';

export function queuesBoardRouter(queue: Queue): Router {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(QUEUES_BOARD_PATH);
  createBullBoard({
    queues: [new BullMQAdapter(queue)],
    serverAdapter,
    options: { uiConfig: { boardTitle: 'pathembed queues' } },
  });
  return serverAdapter.getRouter() as Router;
}
