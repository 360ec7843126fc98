/**
 * The JSON result of a plan: its header built from the plan and the model, and the writing of a
 * stream of embeddings into it (one process, or the queue's assembler reading chunk files), each
 * embedding paired with its planned rectangle and tissue fraction.
 */
import { PathembedError } from '../errors.js';
import type { EmbeddingEncoding } from '../results/embedding-codec.js';
import {
  type ResultModel,
  type StoredResultSummary,
  TARGET_GRID_COORDINATES,
} from '../results/result-document.js';
import type { ResultSink } from '../results/result-sink.js';
import { resultSource } from '../results/result-source.js';
import { type ResultHeaderInput, type ResultSummaryInput, ResultWriter } from '../results/result-writer.js';
import { spacingMmToUm } from '../units.js';
import type { PatchRange } from './embed-plan.js';
import { jobKeyFor } from './job-key.js';
import { isFailedPatch, type PatchOutcome, type SlidePlan } from './job-types.js';
import { PatchFailureTally } from './patch-failures.js';
import { meanGridSpacingUm } from './plan-geometry.js';

export interface JsonOutputOptions {
  readonly model: ResultModel;
  readonly batchSize: number;
  readonly embeddingWidth: number;
  /** Default float32-array. */
  readonly embeddingEncoding?: EmbeddingEncoding;
  /** The chunk this document holds; default the whole plan. */
  readonly range?: PatchRange;
}

export function resultHeaderFor(plan: SlidePlan, options: JsonOutputOptions): ResultHeaderInput {
  const range = options.range;
  const whole = !range || (range.start === 0 && range.end === plan.patches.length);
  return {
    jobKey: jobKeyFor(plan, options.model.sha256),
    source: resultSource(plan.source, {
      studyInstanceUid: plan.studyInstanceUid,
      seriesInstanceUid: plan.seriesInstanceUid,
      instanceUids: plan.level.instances.map((i) => i.sopInstanceUid),
    }),
    model: { name: options.model.name, version: options.model.version, sha256: options.model.sha256 },
    parameters: {
      pixelSpacingUm: plan.pixelSpacingUm,
      stridePx: plan.stridePx,
      minTissue: plan.minTissue,
      patchSizePx: plan.patchSizePx,
      patchSelection: plan.patchSelection,
      requirePatchesInside: plan.requirePatchesInside,
      batchSize: options.batchSize,
    },
    range: whole ? null : { start: range.start, end: range.end },
    level: {
      index: plan.level.index,
      widthPx: plan.level.widthPx,
      heightPx: plan.level.heightPx,
      pixelSpacingUm: spacingMmToUm(plan.level.pixelSpacingMm),
      scaleFromGrid: plan.downsample,
    },
    baseLevel: {
      widthPx: plan.baseLevel.widthPx,
      heightPx: plan.baseLevel.heightPx,
      pixelSpacingUm: spacingMmToUm(plan.baseLevel.pixelSpacingMm),
    },
    grid: {
      coordinates: 'target-grid',
      description: TARGET_GRID_COORDINATES,
      pixelSpacingUm: meanGridSpacingUm(plan),
      widthPx: plan.widthPx,
      heightPx: plan.heightPx,
    },
    tissue: plan.tissue,
    embeddingDimension: options.embeddingWidth,
    embeddingEncoding: options.embeddingEncoding ?? 'float32-array',
  };
}

/** Opens a result writer for the plan on a file path (atomic) or any sink. */
export async function openJsonResult(
  plan: SlidePlan,
  target: string | ResultSink,
  options: JsonOutputOptions,
): Promise<ResultWriter> {
  const header = resultHeaderFor(plan, options);
  return typeof target === 'string' ? ResultWriter.create(target, header) : ResultWriter.open(target, header);
}

/** Appends one embedding with its planned rectangle, or records the patch as failed. */
export async function writePlannedEmbedding(
  writer: ResultWriter,
  plan: SlidePlan,
  e: PatchOutcome,
): Promise<void> {
  const patch = plan.patches[e.index];
  if (!patch || patch.index !== e.index) {
    throw new PathembedError('INTERNAL', `Embedding of patch ${e.index} has no planned patch`, {
      index: e.index,
    });
  }
  if (isFailedPatch(e)) writer.writeFailedPatch(patch, e.failed);
  else await writer.writePatch({ ...patch, embedding: e.embedding });
}

/**
 * Writes a whole JSON result from embeddings in patch order (e.g. the queue's assembler over
 * chunk files). Nothing is published unless every embedding was written; a failure leaves no file.
 * `timings` may be a function: it is called after the last embedding is written, so a caller can
 * report times it only knows then (the assembler sums its chunks' stage times as it reads them).
 */
export async function writeJsonResult(
  plan: SlidePlan,
  embeddings: AsyncIterable<PatchOutcome>,
  target: string | ResultSink,
  options: JsonOutputOptions & {
    readonly timings?: ResultSummaryInput['timings'] | (() => ResultSummaryInput['timings']);
  },
): Promise<StoredResultSummary> {
  const started = performance.now();
  const writer = await openJsonResult(plan, target, options);
  const failures = new PatchFailureTally();
  try {
    for await (const e of embeddings) {
      if (isFailedPatch(e)) failures.add(e.failed);
      await writePlannedEmbedding(writer, plan, e);
    }
    failures.assertSomeEmbedded(writer.patchCount);
  } catch (err) {
    await writer.abort();
    throw err;
  }
  const totalMs = performance.now() - started;
  return writer.finish({
    plannedPatchCount: plan.patches.length,
    timings:
      typeof options.timings === 'function'
        ? options.timings()
        : (options.timings ?? { planMs: 0, fetchMs: 0, decodeMs: 0, inferMs: 0, totalMs }),
  });
}
