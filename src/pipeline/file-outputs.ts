/**
 * The HDF5 and Parquet results of a plan (for multiple-instance-learning and dataframe tools):
 * their header is the JSON result's (resultHeaderFor), their patches the plan's rectangles paired
 * with the embeddings in patch order. One process writes them beside the JSON while it embeds;
 * the queue's assembler writes each from the chunk files.
 */
import { PathembedError } from '../errors.js';
import { Hdf5ResultWriter, type PatchFileSummary } from '../results/hdf5-writer.js';
import { ParquetResultWriter } from '../results/parquet-writer.js';
import type { ResultSink } from '../results/result-sink.js';
import type { ResultPatch } from '../results/result-writer.js';
import { isFailedPatch, type PatchEmbedding, type PatchOutcome, type SlidePlan } from './job-types.js';
import { type JsonOutputOptions, resultHeaderFor } from './json-output.js';
import { PatchFailureTally } from './patch-failures.js';

export const PATCH_FILE_KINDS = ['hdf5', 'parquet'] as const;
export type PatchFileKind = (typeof PATCH_FILE_KINDS)[number];

/** What the HDF5 and Parquet writers have in common. */
export interface PatchFileWriter {
  readonly target: string;
  writePatch(patch: ResultPatch): Promise<void>;
  finish(): Promise<PatchFileSummary>;
  abort(): Promise<void>;
}

export type { PatchFileSummary };

/** Opens the `kind` result of `plan` on a file path (temporary file + rename) or a sink. */
export function openPatchFile(
  kind: PatchFileKind,
  plan: SlidePlan,
  target: string | ResultSink,
  options: JsonOutputOptions,
): Promise<PatchFileWriter> {
  const header = resultHeaderFor(plan, options);
  return kind === 'hdf5' ? Hdf5ResultWriter.open(target, header) : ParquetResultWriter.open(target, header);
}

/** The plan's rectangle of an embedding, with the embedding: what every result file writes. */
export function plannedPatch(plan: SlidePlan, e: PatchEmbedding): ResultPatch {
  const patch = plan.patches[e.index];
  if (!patch || patch.index !== e.index) {
    throw new PathembedError('INTERNAL', `Embedding of patch ${e.index} has no planned patch`, {
      index: e.index,
    });
  }
  return { ...patch, embedding: e.embedding };
}

/**
 * Writes a whole `kind` result from embeddings in patch order, leaving failed patches out. Nothing is published unless every
 * embedding was written; a failure leaves no file.
 */
export async function writePatchFile(
  kind: PatchFileKind,
  plan: SlidePlan,
  embeddings: AsyncIterable<PatchOutcome>,
  target: string | ResultSink,
  options: JsonOutputOptions,
): Promise<PatchFileSummary> {
  const writer = await openPatchFile(kind, plan, target, options);
  const failures = new PatchFailureTally();
  let embedded = 0;
  try {
    for await (const e of embeddings) {
      // A patch left out under frameErrors: skip has no row (the JSON result lists it).
      if (isFailedPatch(e)) {
        failures.add(e.failed);
        continue;
      }
      await writer.writePatch(plannedPatch(plan, e));
      embedded++;
    }
    // As the JSON result: every patch failed is the frames' error, not an empty file.
    failures.assertSomeEmbedded(embedded);
  } catch (err) {
    await writer.abort();
    throw err;
  }
  return writer.finish();
}
