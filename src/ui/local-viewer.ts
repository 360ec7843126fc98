/**
 * The local viewer: the web page over one finished result on this machine, with no Redis and no
 * queue (`pathembed demo --serve`, `pathembed view`). It answers the few /v1 routes the page uses
 * for its one job ("local"): the job's status, its JSON result, the slide's tiles and regions read
 * from the slide's folder (or DICOMweb series) through a SlideOpener, the patch overlay, and
 * POST /v1/search through the same search core as the service (src/search), over an index built
 * from the result file in memory. No API keys: it is meant to listen on 127.0.0.1 (the commands'
 * default).
 */
import express, { type ErrorRequestHandler, type Express } from 'express';
import { z } from 'zod';
import { ERROR_CODES, isPathembedError, PathembedError } from '../errors.js';
import type { Logger } from '../log.js';
import { buildPatchOverlay, type PatchOverlay } from '../results/patch-overlay.js';
import { readResult, streamResult } from '../results/result-reader.js';
import { type BuildOptions, indexOfDocument, MemoryIndexes, searchSimilar } from '../search/index.js';
import type { SlideSourceSpec } from '../slide-source-spec.js';
import type { SlideAccess, SlideOpener } from '../wsi/slide-opener.js';
import { SlideCache } from './slide-cache.js';
import { uiRouter } from './ui-router.js';
import type { SlideLease, ViewerBackend } from './viewer-backend.js';
import { viewerRouter } from './viewer-routes.js';

/** Most neighbours one query may ask for (the service's default PATHEMBED_SIMILARITY_MAX_K). */
const MAX_NEIGHBOURS = 100;

/** The id the local viewer gives its one job. */
export const LOCAL_JOB_ID = 'local';

export interface LocalViewerOptions {
  /** The JSON result file. */
  readonly resultPath: string;
  /** Where the slide is read from: the result's own folder or series. */
  readonly slide: SlideSourceSpec;
  readonly opener: SlideOpener;
  /** The store token for a DICOMweb slide (the command's --token). */
  readonly access?: SlideAccess;
  /** How the result's search index is built (exact or HNSW by size, as the service does). */
  readonly search: BuildOptions;
  readonly logger?: Logger;
  /**
   * Answer only requests whose Host is this machine's loopback name (localhost, 127.0.0.1, [::1]);
   * default true. The viewer has no sign-in, so on loopback this is what keeps a web page the user
   * visits from reading it through a DNS name rebound to 127.0.0.1. Off when it listens on another
   * address, whose names it cannot know.
   */
  readonly loopbackHostsOnly?: boolean;
}

/** Host names (without port) that reach a loopback listener. */
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** The host name of a Host header, without its port (IPv6 stays bracketed). */
function hostName(header: string | undefined): string {
  const host = (header ?? '').toLowerCase();
  return host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0]!;
}

export interface LocalViewer {
  readonly app: Express;
  readonly patchCount: number;
  close(): Promise<void>;
}

const searchBodySchema = z.strictObject({
  jobId: z.string().optional(),
  batchId: z.string().optional(),
  patch: z.strictObject({ jobId: z.string().optional(), x: z.number(), y: z.number() }).optional(),
  embedding: z.array(z.number()).optional(),
  k: z.number().int().min(1).max(MAX_NEIGHBOURS).default(20),
});

function notFound(id: string): PathembedError {
  return new PathembedError(
    'NOT_FOUND',
    `No job ${id}: this viewer shows one local result, "${LOCAL_JOB_ID}"`,
    {
      jobId: id,
    },
  );
}

export async function createLocalViewer(options: LocalViewerOptions): Promise<LocalViewer> {
  const { resultPath, slide, opener } = options;
  const doc = await readResult(resultPath);
  const source: Record<string, unknown> =
    slide.kind === 'local' ? { kind: 'local', folder: slide.folder } : { ...slide };
  const indexes = new MemoryIndexes([await indexOfDocument(LOCAL_JOB_ID, doc, options.search)]);
  const slides = new SlideCache(1);
  let overlay: Promise<PatchOverlay> | undefined;
  const check = (id: string) => {
    if (id !== LOCAL_JOB_ID) throw notFound(id);
  };
  const backend: ViewerBackend = {
    async openSlide(jobId): Promise<SlideLease> {
      check(jobId);
      return slides.lease(LOCAL_JOB_ID, () => opener.openSlideReader(slide, options.access ?? {}));
    },
    async overlay(jobId) {
      check(jobId);
      overlay ??= buildPatchOverlay(() => streamResult(resultPath));
      return overlay;
    },
    close: () => slides.close(),
  };

  const status = {
    id: LOCAL_JOB_ID,
    state: 'completed',
    source: { ...source, url: slide.kind === 'local' ? slide.folder : null },
    outputs: ['json'],
    progress: {
      planned: doc.summary.patchCount,
      done: doc.summary.patchCount,
      chunks: null,
      patchesPerSecond: null,
    },
    timings: { createdAt: doc.header.createdAt, finishedAt: doc.header.createdAt },
    error: null,
    results: { json: `/v1/jobs/${LOCAL_JOB_ID}/result` },
    model: doc.header.model,
  };

  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  if (options.loopbackHostsOnly ?? true) {
    app.use((req, _res, next) => {
      if (LOOPBACK_HOSTS.has(hostName(req.headers.host))) return next();
      next(
        new PathembedError(
          'INVALID_ARGUMENT',
          `The local viewer answers only requests to localhost, 127.0.0.1 or [::1], not to Host "${req.headers.host ?? ''}": it has no sign-in. Open the link it printed.`,
        ),
      );
    });
  }
  app.use(express.json({ limit: '1mb' }));
  const v1 = express.Router();
  v1.use((_req, res, next) => {
    res.locals.keyId = 'anonymous';
    next();
  });
  v1.get('/jobs', (_req, res) => {
    res.json({ jobs: [status], total: 1, limit: 1, offset: 0, next: null });
  });
  v1.get('/jobs/:id', (req, res) => {
    check(req.params.id);
    res.json(status);
  });
  v1.get('/jobs/:id/result', (req, res) => {
    check(req.params.id);
    res.type('application/json').sendFile(resultPath);
  });
  v1.post('/search', async (req, res) => {
    const parsed = searchBodySchema.safeParse(req.body);
    if (!parsed.success) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `Invalid search: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      );
    }
    const body = parsed.data;
    if (body.batchId !== undefined) {
      throw new PathembedError('NOT_FOUND', `No batch ${body.batchId}: the local viewer shows one result`);
    }
    const jobId = body.jobId ?? body.patch?.jobId ?? LOCAL_JOB_ID;
    check(jobId);
    if ((body.patch === undefined) === (body.embedding === undefined)) {
      throw new PathembedError('INVALID_ARGUMENT', 'Give exactly one of "patch" and "embedding"');
    }
    res.json(
      await searchSimilar(indexes, {
        scope: { jobId },
        target: body.patch
          ? { patch: { jobId, x: body.patch.x, y: body.patch.y } }
          : { embedding: Float32Array.from(body.embedding ?? []) },
        k: body.k,
      }),
    );
  });
  v1.use(viewerRouter(backend));
  app.use('/v1', v1);
  app.use('/ui', uiRouter({ mode: 'local', queues: false, localJobId: LOCAL_JOB_ID }));
  app.get('/', (_req, res) => {
    res.redirect(302, `/ui/#/jobs/${LOCAL_JOB_ID}`);
  });
  app.use((req, _res, next) => {
    next(new PathembedError('NOT_FOUND', `No route ${req.method} ${req.path}`));
  });
  app.use(localErrors(options.logger));
  return { app, patchCount: doc.patches.length, close: () => backend.close() };
}

function localErrors(logger: Logger | undefined): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const e = isPathembedError(err)
      ? err
      : (err as { type?: string }).type === 'entity.parse.failed'
        ? new PathembedError('INVALID_ARGUMENT', 'The request body is not valid JSON')
        : new PathembedError('INTERNAL', 'Internal error', {}, { cause: err });
    if (e.code === 'INTERNAL') logger?.error({ err, path: req.path }, 'request failed');
    if (res.headersSent) {
      req.socket.destroy();
      return;
    }
    res.status(ERROR_CODES[e.code].httpStatus).json({ error: e.toJSON() });
  };
}
