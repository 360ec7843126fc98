/**
 * The chunk job: embeds plan patches [start, end) and writes them as one chunk file. A chunk whose
 * file exists is done and is skipped, so a chunk finished by a worker that then died is never
 * redone; one that was running when its worker died is taken over (stalled-job recovery) and
 * redone from its start, and the file is written atomically, so the result holds each patch once.
 */
import type { Job } from 'bullmq';
import { PathembedError } from '../errors.js';
import type { PatchOutcome } from '../pipeline/index.js';
import { cancelledError } from './cancellation.js';
import { encodeChunk } from './chunk-file.js';
import type { StageBusyMs } from './pipeline-port.js';
import type { ChunkJobData } from './queue-jobs.js';
import { resultKeys } from './result-store.js';
import { recordPatches } from './service-metrics.js';
import { jobToken, type WorkerContext } from './worker-context.js';

export interface ChunkResult {
  readonly patches: number;
  readonly skipped: boolean;
}

export async function processChunk(
  w: WorkerContext,
  job: Job<ChunkJobData>,
  signal?: AbortSignal,
): Promise<ChunkResult> {
  const d = job.data;
  const { ctx } = w;
  const record = await ctx.records.get(d.jobId);
  if (!record || record.state === 'cancelled') throw cancelledError(d.jobId);
  if (record.state === 'failed') {
    // Another chunk already failed the slide: this one's work would be thrown away.
    throw new PathembedError(
      'INTERNAL',
      `Job ${d.jobId} has already failed (${record.error?.code ?? 'unknown'})`,
    );
  }
  if (record.state === 'writing' || record.state === 'completed') {
    // The assembler runs only once every chunk is done, so this is a second run of a chunk (a
    // slide job retried after a worker died re-adds its flow): writing now would leave a file
    // behind that nothing reads.
    w.logger.info({ jobId: d.jobId, chunk: d.chunkIndex }, 'chunk of an assembled job; not redone');
    return { patches: 0, skipped: true };
  }
  const key = resultKeys.chunk(d.jobId, d.chunkIndex);
  if (await ctx.results.exists(key)) {
    await ctx.records.chunkDone(d.jobId, d.chunkIndex, d.end - d.start);
    w.logger.info({ jobId: d.jobId, chunk: d.chunkIndex }, 'chunk already written; not redone');
    return { patches: d.end - d.start, skipped: true };
  }
  const plan = await w.plans.get(d.jobId);
  const token = await jobToken(w.ctx, d.jobId, d.hasToken);
  const watch = await w.cancels.watch(d.jobId, anySignal([signal, w.shutdown]));
  w.logger.info({ jobId: d.jobId, chunk: d.chunkIndex, start: d.start, end: d.end }, 'embedding chunk');
  const embeddings: PatchOutcome[] = [];
  // This chunk's busy time per stage, stored in its file for the assembler to sum.
  const stageMs: StageBusyMs = { fetchMs: 0, decodeMs: 0, inferMs: 0 };
  try {
    for await (const e of w.pipeline.embed(
      plan,
      { start: d.start, end: d.end },
      { token, signal: watch.signal },
      stageMs,
    )) {
      embeddings.push(e);
      // The pipeline checks the signal between batches; this catches an abort it did not see.
      if (watch.signal.aborted) throw watch.signal.reason;
    }
  } catch (err) {
    if (watch.signal.aborted) throw watch.signal.reason;
    throw err;
  } finally {
    watch.release();
  }
  if (embeddings.length !== d.end - d.start) {
    throw new PathembedError(
      'INTERNAL',
      `Chunk ${d.chunkIndex} of job ${d.jobId} produced ${embeddings.length} embeddings for ${d.end - d.start} patches`,
    );
  }
  // A job that failed or was cancelled meanwhile has had its files removed; writing now would
  // leave a chunk behind that nothing reads.
  const now = await ctx.records.state(d.jobId);
  if (now === undefined || now === 'cancelled') throw cancelledError(d.jobId);
  if (now === 'failed') {
    throw new PathembedError('INTERNAL', `Job ${d.jobId} failed while chunk ${d.chunkIndex} ran`);
  }
  await ctx.results.put(key, encodeChunk(d.start, embeddings, stageMs));
  await ctx.records.chunkDone(d.jobId, d.chunkIndex, embeddings.length);
  await Promise.all([
    recordPatches(ctx.redis, ctx.keys, embeddings.length),
    w.frames.flush(ctx.redis, ctx.keys),
  ]);
  w.logger.info(
    { jobId: d.jobId, chunk: d.chunkIndex, patches: embeddings.length, ...stageMs },
    'chunk embedded',
  );
  return { patches: embeddings.length, skipped: false };
}

/** A signal that aborts when any of `signals` does. */
export function anySignal(signals: ReadonlyArray<AbortSignal | undefined>): AbortSignal {
  return AbortSignal.any(signals.filter((s): s is AbortSignal => s !== undefined));
}
