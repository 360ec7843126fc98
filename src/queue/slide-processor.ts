/**
 * The slide job: plans the patch grid (store metadata, tissue mask), saves the plan to the result
 * store, and fans the plan out as a BullMQ flow: an 'assemble' parent whose children are chunk jobs
 * of PATHEMBED_CHUNK_PATCHES patches each, so several workers embed one slide at once and the
 * parent runs only when every chunk is done.
 */
import type { Job } from 'bullmq';
import { PathembedError } from '../errors.js';
import { cancelledError } from './cancellation.js';
import { isFinal } from './job-record.js';
import {
  type AssembleJobData,
  bullJobIds,
  bullPriority,
  type ChunkJobData,
  chunkRanges,
  JOB_NAMES,
  QUEUE_NAME,
  type SlideJobData,
} from './queue-jobs.js';
import { resultKeys } from './result-store.js';
import { jobRetryOptions } from './retry-policy.js';
import { jobToken, type WorkerContext } from './worker-context.js';

export interface SlideResult {
  readonly planned: number;
  readonly chunks: number;
}

export async function processSlide(
  w: WorkerContext,
  job: Job<SlideJobData>,
  signal?: AbortSignal,
): Promise<SlideResult> {
  const d = job.data;
  const { ctx, config } = w;
  const state = await ctx.records.state(d.jobId);
  // 'writing': the flow this job added has run every chunk (a retry after a worker died while
  // this job was finishing); planning again would add the chunks a second time.
  if (state === undefined || isFinal(state) || state === 'writing') {
    if (state === 'cancelled') throw cancelledError(d.jobId);
    return { planned: 0, chunks: 0 };
  }
  await ctx.records.transition(d.jobId, 'planning', { startedAt: Date.now() });
  const token = await jobToken(w.ctx, d.jobId, d.hasToken);
  const watch = await w.cancels.watch(d.jobId, signal);
  let planned: Awaited<ReturnType<typeof w.pipeline.plan>>;
  try {
    planned = await w.pipeline.plan(d.source, d.options, { token, signal: watch.signal });
  } catch (err) {
    if (watch.signal.aborted) throw watch.signal.reason;
    throw err;
  } finally {
    watch.release();
  }
  const { plan } = planned;
  const patchCount = plan.patches.length;
  if (patchCount > config.PATHEMBED_MAX_PATCHES_PER_JOB) {
    throw new PathembedError(
      'PAYLOAD_TOO_LARGE',
      `The slide plans ${patchCount} patches; a job may have at most ${config.PATHEMBED_MAX_PATCHES_PER_JOB} (PATHEMBED_MAX_PATCHES_PER_JOB). Use a coarser stride or a higher minTissue.`,
      { planned: patchCount, limit: config.PATHEMBED_MAX_PATCHES_PER_JOB },
    );
  }
  await ctx.results.put(resultKeys.metadata(d.jobId), JSON.stringify(planned.metadata));
  // The plan last: chunk and assemble jobs start only after it, so its presence means both exist.
  await ctx.results.put(resultKeys.plan(d.jobId), JSON.stringify(plan));
  const ranges = chunkRanges(patchCount, config.PATHEMBED_CHUNK_PATCHES);
  // State and counts first: a fast chunk or the assemble job must never see an older state.
  await ctx.records.transition(d.jobId, 'embedding', {
    plannedAt: Date.now(),
    planned: patchCount,
    chunkCount: ranges.length,
  });
  const priority = bullPriority(d.priority, 'embed');
  const assemble: AssembleJobData = {
    jobId: d.jobId,
    chunkCount: ranges.length,
    outputs: d.outputs,
    srDestination: d.srDestination,
    ...(d.annEmbedding ? { annEmbedding: true } : {}),
    hasToken: d.hasToken,
  };
  // Fixed ids make the fan-out idempotent: a slide job retried after this point adds nothing new.
  await w.flows.add({
    name: JOB_NAMES.assemble,
    queueName: QUEUE_NAME,
    data: assemble,
    opts: {
      jobId: bullJobIds.assemble(d.jobId),
      priority,
      ...jobRetryOptions(config),
      removeOnComplete: true,
    },
    children: ranges.map((range, chunkIndex) => {
      const data: ChunkJobData = { jobId: d.jobId, chunkIndex, ...range, hasToken: d.hasToken };
      return {
        name: JOB_NAMES.chunk,
        queueName: QUEUE_NAME,
        data,
        opts: {
          jobId: bullJobIds.chunk(d.jobId, chunkIndex),
          priority,
          ...jobRetryOptions(config),
          // A chunk that cannot be embedded fails the slide; the parent must not assemble a hole.
          failParentOnFailure: true,
          removeOnComplete: true,
        },
      };
    }),
  });
  w.logger.info({ jobId: d.jobId, planned: patchCount, chunks: ranges.length }, 'slide planned');
  return { planned: patchCount, chunks: ranges.length };
}
