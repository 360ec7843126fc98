/**
 * The Express application, separate from listening so tests run it on a free port and `serve`
 * decides host and port. Routes: /v1 (API key or the web page's session cookie when keys are
 * configured), the web page /ui with its login and the operators' view /ui/queues (docs/ui.md),
 * health, metrics, OpenAPI; one error middleware at the end turns every error into the registry's
 * status and body.
 */

import { QueueEvents } from 'bullmq';
import express, { type Express } from 'express';
import type { Config } from '../config.js';
import { type AllowedStore, parseAllowList } from '../dicomweb/index.js';
import { PathembedError } from '../errors.js';
import type { Logger } from '../log.js';
import { BatchService } from '../queue/batch-service.js';
import { JobReconciler } from '../queue/job-reconciler.js';
import { JobSubmitter } from '../queue/job-submitter.js';
import { QueueContext } from '../queue/queue-context.js';
import { QUEUE_NAME } from '../queue/queue-jobs.js';
import { contentSecurityPolicy, QUEUES_CSP } from '../ui/content-security-policy.js';
import { uiRouter } from '../ui/ui-router.js';
import { type UiLogin, UiSessions } from '../ui/ui-session.js';
import { viewerRouter } from '../ui/viewer-routes.js';
import { ApiKeyVerifier, requireApiKey } from './api-keys.js';
import { ApiMetrics } from './api-metrics.js';
import { batchesRouter } from './batches-routes.js';
import { errorMiddleware } from './error-middleware.js';
import { healthRouter } from './health-routes.js';
import { jobsRouter } from './jobs-routes.js';
import { openApiDocument } from './openapi.js';
import { predictRouter } from './predict-routes.js';
import { PredictService } from './predict-service.js';
import { QUEUES_BOARD_PATH, queuesBoardRouter } from './queues-board.js';
import { searchRouter } from './search-routes.js';
import { StoreViewerBackend } from './store-viewer-backend.js';

export interface AppDeps {
  readonly config: Config;
  readonly logger: Logger;
  readonly ctx: QueueContext;
  /** Completion events of predict jobs. */
  readonly events: QueueEvents;
  /** Where the app registers what `Api.close` must release (the viewer's open slides). */
  readonly closers?: Array<() => Promise<void>>;
}

export interface Api {
  readonly app: Express;
  readonly ctx: QueueContext;
  close(): Promise<void>;
}

export function createApp(deps: AppDeps): Express {
  const { config, logger, ctx, events } = deps;
  const allowList: readonly AllowedStore[] = parseAllowList(config.PATHEMBED_ALLOWED_STORES);
  const verifier = new ApiKeyVerifier(config.PATHEMBED_API_KEYS);
  const login: UiLogin | undefined = verifier.enabled
    ? {
        sessions: new UiSessions({
          ...(config.PATHEMBED_UI_SESSION_SECRET ? { secret: config.PATHEMBED_UI_SESSION_SECRET } : {}),
          ttlMs: config.PATHEMBED_UI_SESSION_HOURS * 3_600_000,
          secureCookie: config.PATHEMBED_UI_SECURE_COOKIE,
        }),
        verifyKey: (key) => verifier.verify(key),
        knowsKeyId: (keyId) => verifier.knowsKeyId(keyId),
      }
    : undefined;
  const auth = requireApiKey(verifier, login);
  const metrics = new ApiMetrics({ queue: ctx.queue, redis: ctx.redis, keys: ctx.keys });
  const submitter = new JobSubmitter(ctx, logger);
  const batches = new BatchService(ctx, submitter, logger);
  const predictor = new PredictService({ config, ctx, events, allowList, logger });
  const openApi = openApiDocument();
  const viewer = new StoreViewerBackend(config, ctx, submitter, logger);
  deps.closers?.push(() => viewer.close());

  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.use(express.json({ limit: config.PATHEMBED_BODY_LIMIT }));

  const ops = express.Router();
  if (config.PATHEMBED_PROTECT_HEALTH) ops.use(auth);
  ops.use(healthRouter(ctx));
  ops.get('/metrics', async (_req, res) => {
    const { contentType, body } = await metrics.render();
    res.type(contentType).send(body);
  });
  app.use(ops);
  app.get('/openapi.json', (_req, res) => {
    res.json(openApi);
  });

  const v1 = express.Router();
  v1.use(auth);
  v1.use(jobsRouter({ config, ctx, submitter, allowList }));
  v1.use(batchesRouter({ config, ctx, submitter, batches, allowList }));
  v1.use(searchRouter({ config, ctx, submitter, batches }));
  v1.use(predictRouter(predictor, logger));
  v1.use(viewerRouter(viewer));
  app.use('/v1', v1);

  app.use(QUEUES_BOARD_PATH, contentSecurityPolicy(QUEUES_CSP), auth, queuesBoardRouter(ctx.queue));
  app.use('/ui', uiRouter({ mode: 'service', ...(login ? { login } : {}), queues: true }));
  app.get('/', (_req, res) => {
    res.redirect(302, '/ui/');
  });

  app.use((req, _res, next) => {
    next(new PathembedError('NOT_FOUND', `No route ${req.method} ${req.path}`));
  });
  app.use(errorMiddleware(logger, metrics));
  return app;
}

/** Opens the queue connections and builds the app; `close` releases them. */
export async function createApi(config: Config, logger: Logger): Promise<Api> {
  const ctx = new QueueContext(config, { failFast: true });
  try {
    // A missing bucket or bad credentials stop the API at start, not at the first result request.
    await ctx.results.check();
  } catch (err) {
    await ctx.close();
    throw err;
  }
  const events = new QueueEvents(QUEUE_NAME, {
    connection: ctx.connection(),
    prefix: config.PATHEMBED_QUEUE_PREFIX,
  });
  await events.waitUntilReady();
  const closers: Array<() => Promise<void>> = [];
  const app = createApp({ config, logger, ctx, events, closers });
  // Repairs jobs a crashed API left without a queue job (and any other record whose job died).
  const reconciler = new JobReconciler(ctx, logger);
  reconciler.start();
  return {
    app,
    ctx,
    async close() {
      await reconciler.stop();
      for (const close of closers) await close();
      await events.close();
      await ctx.close();
    },
  };
}
