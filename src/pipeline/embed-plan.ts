/**
 * Embedding a plan's patches (all, or a chunk [start, end)) as a bounded pipeline:
 *
 *   read batch k+1, k+2 (fetch, decode, cut) ──┐
 *                                               ├─ at most READ_AHEAD_BATCHES + 1 batches in memory
 *   infer batch k ──────────────────────────────┘
 *
 * While the model runs batch k, the patches of the next READ_AHEAD_BATCHES batches are read
 * (their frames fetched and decoded through the shared frame cache, whose batching and
 * in-flight de-duplication bound the requests), so on a machine where inference is the slow
 * stage, slide reading is hidden behind it. Nothing more is read ahead, so memory stays bounded
 * whatever the slide's size. Embeddings come out in patch order. An abort stops the job within
 * one batch: reads in flight are aborted, the running batch is not reported, and the generator
 * throws JOB_CANCELLED.
 */
import { setMaxListeners } from 'node:events';
import { isPathembedError, PathembedError } from '../errors.js';
import { sharedIccTransforms } from '../wsi/icc-transform.js';
import type { LevelScale } from '../wsi/patch-reader.js';
import { cancelledError, throwIfCancelled } from './cancellation.js';
import type { PatchFailure, PatchOutcome, PlannedPatch, SlidePlan } from './job-types.js';
import type { PipelineDeps, RunContext } from './pipeline-deps.js';
import { openReadingSession, type ReadingSession } from './reading-session.js';
import { StageClock } from './stage-clock.js';

/**
 * Batches read ahead of the one being embedded. Two keep the model fed when reading a batch
 * takes up to twice as long as embedding one (a burst of slow frames), at a cost of two batches
 * of pixels (2 x 32 x 147 KiB = 9.4 MiB at the default batch size).
 */
export const READ_AHEAD_BATCHES = 2;
const RGB_CHANNELS = 3;
/** Abort listeners one patch read may hold at once (its frames' fetches and its own wait). */
const LISTENERS_PER_READ = 8;
const MS_PER_S = 1000;

/**
 * Errors that `frameErrors: skip` turns into a failed patch: the stored pixels of a frame are
 * corrupt, which no retry can mend. Transport errors (timeouts, 5xx, 429) are left to fail the job
 * instead, since they say the store is unwell, not the slide, and a retry may read every patch.
 */
const SKIPPABLE_PATCH_ERRORS: ReadonlySet<string> = new Set(['FRAME_DECODE_ERROR']);

/** A chunk of a plan: patch indices [start, end). */
export interface PatchRange {
  readonly start: number;
  readonly end: number;
}

/** Counters an embedding run keeps for timings and progress. */
export class EmbedRunStats {
  readonly inferClock = new StageClock();
  done = 0;
  /** Patches reported as failed under `frameErrors: skip` (counted in `done` too). */
  failed = 0;
}

export function checkRange(range: PatchRange | undefined, patchCount: number): PatchRange {
  if (!range) return { start: 0, end: patchCount };
  const { start, end } = range;
  if (
    !Number.isSafeInteger(start) ||
    !Number.isSafeInteger(end) ||
    start < 0 ||
    end < start ||
    end > patchCount
  ) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `Patch range [${start}, ${end}) is not within the plan's ${patchCount} patches`,
      { start, end, patchCount },
    );
  }
  return range;
}

function aboutPatch(err: unknown, patch: PlannedPatch): unknown {
  if (!isPathembedError(err) || err.details.patchIndex !== undefined) return err;
  return new PathembedError(
    err.code,
    `${err.message} [reading patch ${patch.index} at x=${patch.x} y=${patch.y}]`,
    { ...err.details, patchIndex: patch.index },
    { cause: err },
  );
}

/** Embeds plan patches on an open reading session (shared with planning in one process). */
export async function* embedOnSession(
  session: ReadingSession,
  plan: SlidePlan,
  range: PatchRange | undefined,
  deps: PipelineDeps,
  ctx: RunContext,
  stats: EmbedRunStats = new EmbedRunStats(),
): AsyncGenerator<PatchOutcome> {
  const { start, end } = checkRange(range, plan.patches.length);
  const patches = plan.patches.slice(start, end);
  const batchSize = deps.options.batchSize;
  const batchCount = Math.ceil(patches.length / batchSize);
  const choice: LevelScale = { level: plan.level, scale: plan.downsample };
  const patchBytes = plan.patchSizePx * plan.patchSizePx * RGB_CHANNELS;
  const width = deps.engine.embeddingWidth;
  // Our own controller: stops read-ahead when the consumer stops early or a batch fails, and
  // follows the job's signal.
  const reading = new AbortController();
  // Every patch read in flight listens on this signal (through the frame cache): up to
  // (READ_AHEAD_BATCHES + 1) x batch size listeners by design, not a leak.
  setMaxListeners((READ_AHEAD_BATCHES + 1) * batchSize * LISTENERS_PER_READ, reading.signal);
  const onAbort = () => reading.abort(ctx.signal?.reason);
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  if (ctx.signal?.aborted) onAbort();

  // The plan's ICC transform, applied to each patch as read (after any downsampling).
  const transform =
    plan.iccProfile && plan.sourceIccProfileBase64
      ? await sharedIccTransforms(deps.options.iccProfileDir).transform(
          new Uint8Array(Buffer.from(plan.sourceIccProfileBase64, 'base64')),
          plan.iccProfile,
        )
      : undefined;
  // Each frame goes back to the decoder once the last patch of this range that needs it is read,
  // so a job holds a few rows of frames, not the cache's whole budget.
  session.reader.expectPatches(choice, patches);
  const skipCorrupt = plan.frameErrors === 'skip';
  const readPatch = async (patch: PlannedPatch): Promise<Uint8Array | PatchFailure> => {
    try {
      const rgb = await session.reader.readScaled(choice, patch, {
        signal: reading.signal,
        requireInside: plan.requirePatchesInside,
      });
      if (rgb.data.byteLength !== patchBytes) {
        throw new PathembedError(
          'INTERNAL',
          `Patch ${patch.index} read as ${rgb.width}x${rgb.height}, not ${plan.patchSizePx}x${plan.patchSizePx}`,
        );
      }
      return transform ? transform(rgb.data) : rgb.data;
    } catch (err) {
      const about = aboutPatch(err, patch);
      if (skipCorrupt && isPathembedError(about) && SKIPPABLE_PATCH_ERRORS.has(about.code)) {
        deps.logger.warn(
          { patchIndex: patch.index, code: about.code, err: about.message },
          'patch left out: its frame could not be decoded (frameErrors: skip)',
        );
        return { code: about.code, message: about.message };
      }
      throw about;
    }
  };
  const readBatch = (b: number): Promise<(Uint8Array | PatchFailure)[]> =>
    Promise.all(patches.slice(b * batchSize, (b + 1) * batchSize).map(readPatch));

  const inFlight: Promise<(Uint8Array | PatchFailure)[]>[] = [];
  let nextToRead = 0;
  const readAhead = () => {
    while (inFlight.length < READ_AHEAD_BATCHES + 1 && nextToRead < batchCount) {
      const batch = readBatch(nextToRead++);
      // Batches abandoned by a cancel or an earlier failure must not become unhandled rejections.
      batch.catch(() => undefined);
      inFlight.push(batch);
    }
  };
  const startedMs = performance.now();
  try {
    readAhead();
    for (let b = 0; b < batchCount; b++) {
      throwIfCancelled(ctx.signal);
      const read = await inFlight.shift()!;
      // Start reading the following batches before the model takes this one.
      readAhead();
      throwIfCancelled(ctx.signal);
      const pixels = read.filter((r): r is Uint8Array => r instanceof Uint8Array);
      const embeddings =
        pixels.length > 0 ? await stats.inferClock.time(() => deps.engine.embed(pixels)) : [];
      // A cancel during inference stops here: the batch that was running is not reported.
      throwIfCancelled(ctx.signal);
      const first = b * batchSize;
      if (embeddings.length !== pixels.length) {
        throw new PathembedError(
          'INFERENCE_FAILED',
          `The model returned ${embeddings.length} embeddings for a batch of ${pixels.length} patches`,
        );
      }
      // The engine answers one embedding per patch it was given, in order; failed patches keep
      // their place in the stream.
      let next = 0;
      for (let i = 0; i < read.length; i++) {
        const patch = patches[first + i]!;
        const r = read[i]!;
        if (!(r instanceof Uint8Array)) {
          stats.done++;
          stats.failed++;
          yield { index: patch.index, failed: r };
          continue;
        }
        const embedding = embeddings[next++]!;
        if (embedding.length !== width || !embedding.every(Number.isFinite)) {
          throw new PathembedError(
            'INFERENCE_FAILED',
            `The model returned a non-finite or ${embedding.length}-wide embedding for patch ${patch.index}`,
            { patchIndex: patch.index },
          );
        }
        stats.done++;
        yield { index: patch.index, embedding };
      }
      const elapsedS = (performance.now() - startedMs) / MS_PER_S;
      ctx.onProgress?.({
        planned: patches.length,
        done: Math.min(first + read.length, patches.length),
        patchesPerSecond: elapsedS > 0 ? (first + read.length) / elapsedS : 0,
      });
    }
  } catch (err) {
    if (ctx.signal?.aborted) throw cancelledError(ctx.signal.reason);
    throw err;
  } finally {
    ctx.signal?.removeEventListener('abort', onAbort);
    reading.abort();
  }
}

/**
 * The embeddings of plan patches [range.start, range.end) (default: all), in patch order, as they
 * are computed. A chunk worker runs one range; concatenating the ranges gives the whole run.
 */
export async function* embedPlan(
  plan: SlidePlan,
  range: PatchRange | undefined,
  deps: PipelineDeps,
  ctx: RunContext = {},
): AsyncGenerator<PatchOutcome> {
  checkRange(range, plan.patches.length);
  const session = await openReadingSession(deps, plan.source, ctx);
  try {
    yield* embedOnSession(session, plan, range, deps, ctx);
  } finally {
    await session.close();
  }
}
