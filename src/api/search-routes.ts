/**
 * POST /v1/search: the k patches nearest to a patch (a level-0 point inside it) or to an
 * embedding, within one completed job or across the completed jobs of a batch, by cosine
 * distance. Same API keys as /v1/jobs, and a caller sees only its own jobs and batches. The work
 * is the search core's (src/search): indexes are read from the result store, where the assemble
 * step wrote them, and kept in a cache bounded by PATHEMBED_SIMILARITY_CACHE_MB.
 */
import { Router } from 'express';
import type { Config } from '../config.js';
import { searchBuildOptions } from '../domain-options.js';
import { PathembedError } from '../errors.js';
import type { BatchService } from '../queue/batch-service.js';
import type { JobSubmitter } from '../queue/job-submitter.js';
import type { QueueContext } from '../queue/queue-context.js';
import { resultKeys } from '../queue/result-store.js';
import { parseResult } from '../results/index.js';
import {
  JobIndexCache,
  type SearchScope,
  type SearchTarget,
  StoredIndexes,
  searchSimilar,
} from '../search/index.js';
import { searchRequestSchema } from './search-schema.js';
import { parseOrThrow } from './validation.js';

export interface SearchRouteDeps {
  readonly config: Config;
  readonly ctx: QueueContext;
  readonly submitter: JobSubmitter;
  readonly batches: BatchService;
}

export function notCompleted(jobId: string, state: string): PathembedError {
  return new PathembedError(
    'JOB_NOT_COMPLETED',
    `Job ${jobId} is ${state}; only a completed job can be searched`,
    { jobId, state },
  );
}

export function searchRouter(deps: SearchRouteDeps): Router {
  const { config, ctx, submitter, batches } = deps;
  const cache = new JobIndexCache(config.PATHEMBED_SIMILARITY_CACHE_MB * 1024 * 1024);
  const build = searchBuildOptions(config);
  const router = Router();

  router.post('/search', async (req, res) => {
    const body = parseOrThrow(searchRequestSchema, req.body, 'request body');
    if (body.k > config.PATHEMBED_SIMILARITY_MAX_K) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `k is ${body.k}; at most ${config.PATHEMBED_SIMILARITY_MAX_K} neighbours (PATHEMBED_SIMILARITY_MAX_K)`,
        { fields: [{ path: 'k', reason: `at most ${config.PATHEMBED_SIMILARITY_MAX_K}` }] },
      );
    }
    const keyId = res.locals.keyId as string;
    const provider = new StoredIndexes({
      storage: ctx.results,
      cache,
      build,
      check: async (jobId) => {
        const record = await submitter.get(jobId, keyId);
        if (record.state !== 'completed') throw notCompleted(jobId, record.state);
      },
      readResult: async (jobId) => {
        const key = resultKeys.json(jobId);
        const bytes = await ctx.results.get(key);
        return bytes ? parseResult(bytes.toString('utf8'), key) : undefined;
      },
      missing: (jobId) =>
        new PathembedError(
          'NOT_FOUND',
          `Job ${jobId} has no search index and no JSON result to build one from`,
          { jobId },
        ),
    });

    let scope: SearchScope;
    if (body.jobId !== undefined) {
      scope = { jobId: body.jobId };
    } else {
      const batchId = body.batchId!;
      await batches.get(batchId, keyId);
      const ids = await batches.store.jobIds(batchId);
      const records = await ctx.records.getMany(ids);
      const completed = ids.filter((_, i) => records[i]?.state === 'completed');
      if (completed.length === 0) {
        throw new PathembedError(
          'JOB_NOT_COMPLETED',
          `No job of batch ${batchId} has completed yet (${ids.length} jobs)`,
          { batchId, jobs: ids.length },
        );
      }
      scope = { batchId, jobIds: completed };
    }
    const target: SearchTarget = body.patch
      ? { patch: { jobId: body.patch.jobId ?? body.jobId!, x: body.patch.x, y: body.patch.y } }
      : { embedding: Float32Array.from(body.embedding!) };
    res.json(await searchSimilar(provider, { scope, target, k: body.k }));
  });

  return router;
}
