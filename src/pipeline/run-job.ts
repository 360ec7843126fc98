/**
 * One embedding job in one process, as the CLI (and the demo) run it: plan the slide, embed every
 * patch (or a range) through the bounded pipeline straight into the streamed JSON result (and the
 * HDF5 and Parquet files when asked, fed the same embeddings in the same pass), then, when asked,
 * build the bulk annotations (ANN) and the SR from the finished JSON (the SR referring to the
 * ANN), write them to files and store them over STOW-RS.
 *
 * The JSON is complete and renamed into place before the DICOM objects are attempted, so a refused
 * or failed upload never loses it: the outcome reports the upload's error code beside the JSON's path.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { isPathembedError, PathembedError, toPathembedError } from '../errors.js';
import type { EmbeddingEncoding } from '../results/embedding-codec.js';
import type { ResultModel, ResultTimings, StoredResultSummary } from '../results/result-document.js';
import { streamResult } from '../results/result-reader.js';
import { fileSink } from '../results/result-sink.js';
import { publicBaseUrl } from '../results/result-source.js';
import { stowSr, writeSrFile } from '../results/sr/store-sr.js';
import { buildAnnForPlan } from './ann-output.js';
import { EmbedRunStats, embedOnSession, type PatchRange } from './embed-plan.js';
import {
  openPatchFile,
  type PatchFileKind,
  type PatchFileSummary,
  type PatchFileWriter,
  plannedPatch,
} from './file-outputs.js';
import { jobKeyFor } from './job-key.js';
import {
  type EmbedOptions,
  isFailedPatch,
  type PatchEmbedding,
  type SlidePlan,
  type SlideSourceSpec,
} from './job-types.js';
import { openJsonResult, writePlannedEmbedding } from './json-output.js';
import { PatchFailureTally } from './patch-failures.js';
import type { PipelineDeps, RunContext } from './pipeline-deps.js';
import { planOnSession } from './plan-slide.js';
import { openReadingSession } from './reading-session.js';
import { buildSrForPlan, stowDestinationFor } from './sr-output.js';

const MICROSECONDS_PER_MS = 1000;
/** Timings are reported to the microsecond. */
const round = (ms: number) => Math.round(ms * MICROSECONDS_PER_MS) / MICROSECONDS_PER_MS;

export interface JobOutputOptions {
  /** Where the JSON result is written (atomically). */
  readonly jsonPath: string;
  /** Default float32-array. */
  readonly embeddingEncoding?: EmbeddingEncoding;
  /** Embed only plan patches [start, end). */
  readonly range?: PatchRange;
  /** Also write the HDF5 result (features, level-0 coords) here, atomically. */
  readonly hdf5Path?: string;
  /** Also write the Parquet result (one row per patch) here, atomically. */
  readonly parquetPath?: string;
  /** Also write the SR here. */
  readonly srPath?: string;
  /** Also store the SR over STOW-RS: `true` for the default destination, or a DICOMweb base URL. */
  readonly stow?: boolean | string;
  /** How the SR names the JSON result; default the JSON file's name. */
  readonly jsonResultName?: string;
  /** Also write the Microscopy Bulk Simple Annotations here (and store it when `stow` is set). */
  readonly annPath?: string;
  /** The ANN holds every embedding component too (the `annEmbedding` job option). */
  readonly annEmbedding?: boolean;
}

export type StowOutcome =
  | {
      readonly ok: true;
      readonly destination: string;
      readonly sopInstanceUid: string;
      readonly status: number;
      readonly retrieveUrl?: string;
    }
  | {
      readonly ok: false;
      readonly destination: string;
      readonly error: { readonly code: string; readonly message: string };
    };

export interface SrOutcome {
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string;
  readonly sopInstanceUid: string;
  readonly includesPatches: boolean;
  readonly bytes: number;
  readonly path?: string;
  readonly stow?: StowOutcome;
}

export interface AnnOutcome {
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string;
  readonly sopInstanceUid: string;
  readonly annotationCount: number;
  readonly includesEmbedding: boolean;
  readonly bytes: number;
  readonly path: string;
  readonly stow?: StowOutcome;
}

export interface JobOutcome {
  readonly jobKey: string;
  readonly plan: SlidePlan;
  readonly jsonPath: string;
  readonly summary: StoredResultSummary;
  readonly timings: ResultTimings;
  /** The HDF5 and Parquet files written, when asked for. */
  readonly files?: Partial<Record<PatchFileKind, PatchFileSummary & { readonly path: string }>>;
  /** Present when an SR was asked for and the job embedded at least one patch. */
  readonly sr?: SrOutcome;
  /** Why no SR was written although one was asked for. */
  readonly srSkipped?: string;
  /** Present when an ANN was asked for and the job embedded at least one patch. */
  readonly ann?: AnnOutcome;
}

function modelOf(deps: PipelineDeps): ResultModel {
  const m = deps.engine.manifest;
  return { name: m.name, version: m.version, sha256: m.sha256 };
}

async function* storedEmbeddings(jsonPath: string): AsyncGenerator<PatchEmbedding> {
  const stream = await streamResult(jsonPath);
  for await (const p of stream.patches()) yield { index: p.index, embedding: p.embedding };
}

/**
 * Plans and embeds a slide into a JSON result, and optionally writes and stores its SR (see the
 * module doc). Throws the typed errors of planning and embedding (JOB_CANCELLED on abort, with no
 * partial JSON left); SR upload failures are reported in `outcome.sr.stow` instead.
 */
export async function runEmbeddingJob(
  spec: SlideSourceSpec,
  options: EmbedOptions,
  output: JobOutputOptions,
  deps: PipelineDeps,
  ctx: RunContext = {},
): Promise<JobOutcome> {
  const started = performance.now();
  if (output.range && (output.srPath || output.stow || output.annPath)) {
    // An SR reports the whole slide (its mean is over every patch), as do the ANN's principal
    // components; a chunk cannot write either.
    throw new PathembedError(
      'INVALID_ARGUMENT',
      'An SR or ANN covers the whole slide: do not combine a patch range with srPath, annPath or stow',
      {
        argument: 'range',
      },
    );
  }
  const model = modelOf(deps);
  const session = await openReadingSession(deps, spec, ctx);
  let plan: SlidePlan;
  let metadata: Awaited<ReturnType<typeof planOnSession>>['metadata'];
  let summary: StoredResultSummary;
  const files: NonNullable<JobOutcome['files']> = {};
  const stats = new EmbedRunStats();
  const failures = new PatchFailureTally();
  try {
    ({ plan, metadata } = await planOnSession(session, spec, options, deps, ctx));
    const planMs = performance.now() - started;
    const fetchAtPlan = session.fetchClock.ms;
    const decodeAtPlan = session.decodeClock.ms;
    const outputOptions = {
      model,
      batchSize: deps.options.batchSize,
      embeddingWidth: deps.engine.embeddingWidth,
      ...(output.embeddingEncoding ? { embeddingEncoding: output.embeddingEncoding } : {}),
      ...(output.range ? { range: output.range } : {}),
    };
    const writer = await openJsonResult(plan, output.jsonPath, outputOptions);
    const fileWriters: Array<[PatchFileKind, PatchFileWriter]> = [];
    try {
      for (const [kind, filePath] of [
        ['hdf5', output.hdf5Path],
        ['parquet', output.parquetPath],
      ] as const) {
        if (filePath) fileWriters.push([kind, await openPatchFile(kind, plan, filePath, outputOptions)]);
      }
      for await (const e of embedOnSession(session, plan, output.range, deps, ctx, stats)) {
        if (isFailedPatch(e)) failures.add(e.failed);
        await writePlannedEmbedding(writer, plan, e);
        // A patch left out (frameErrors: skip) has no row in the files; the JSON lists it.
        if (!isFailedPatch(e)) for (const [, w] of fileWriters) await w.writePatch(plannedPatch(plan, e));
      }
      failures.assertSomeEmbedded(writer.patchCount);
    } catch (err) {
      await Promise.all([writer.abort(), ...fileWriters.map(([, w]) => w.abort())]);
      throw err;
    }
    try {
      for (const [kind, w] of fileWriters) files[kind] = { ...(await w.finish()), path: w.target };
    } catch (err) {
      // Every output or none: a file that failed takes the others (and the JSON) with it.
      await Promise.all([writer.abort(), ...fileWriters.map(([, w]) => w.abort())]);
      await Promise.all(Object.values(files).map((f) => rm(f.path, { force: true })));
      throw err;
    }
    try {
      summary = await writer.finish({
        plannedPatchCount: plan.patches.length,
        timings: {
          planMs: round(planMs),
          fetchMs: round(session.fetchClock.ms - fetchAtPlan),
          decodeMs: round(session.decodeClock.ms - decodeAtPlan),
          inferMs: round(stats.inferClock.ms),
          totalMs: round(performance.now() - started),
        },
      });
    } catch (err) {
      await Promise.all(Object.values(files).map((f) => rm(f.path, { force: true })));
      throw err;
    }
  } finally {
    await session.close();
  }
  const jobKey = jobKeyFor(plan, model.sha256);
  deps.logger.info(
    {
      jsonPath: output.jsonPath,
      patches: summary.patchCount,
      failedPatches: summary.failedPatchCount,
      patchesPerSecond: summary.patchesPerSecond,
    },
    'JSON result written',
  );
  const outcome = {
    jobKey,
    plan,
    jsonPath: output.jsonPath,
    summary,
    timings: summary.timings,
    ...(Object.keys(files).length > 0 ? { files } : {}),
  };
  if (!output.srPath && !output.stow && !output.annPath) return outcome;
  if (summary.patchCount === 0) {
    deps.logger.warn(
      { jsonPath: output.jsonPath },
      'no patch was embedded (no tissue?), so no SR or ANN is written',
    );
    return {
      ...outcome,
      srSkipped: 'The job embedded no patch (no tissue found?), so there is no mean embedding to report.',
    };
  }
  const ann = output.annPath
    ? await writeAndStoreAnn(plan, metadata, { ...output, annPath: output.annPath }, deps, ctx)
    : undefined;
  if (!output.srPath && !output.stow) return { ...outcome, ...(ann ? { ann } : {}) };
  return {
    ...outcome,
    sr: await writeAndStoreSr(plan, metadata, output, deps, ctx, ann),
    ...(ann ? { ann } : {}),
  };
}

type PlanMetadata = Awaited<ReturnType<typeof planOnSession>>['metadata'];

/** STOW-RS of one instance; a failure is reported in the outcome, not thrown (the JSON is kept). */
async function stowInstance(
  plan: SlidePlan,
  bytes: Uint8Array,
  sopInstanceUid: string,
  what: 'SR' | 'ANN',
  output: JobOutputOptions,
  deps: PipelineDeps,
  ctx: RunContext,
): Promise<StowOutcome> {
  const destination = stowDestinationFor(
    plan,
    deps.options.srDestination,
    typeof output.stow === 'string' ? output.stow : undefined,
  );
  const shown = publicBaseUrl(destination);
  try {
    const client = deps.slides.stowClient(plan.source, destination, { token: ctx.token });
    const label = what === 'SR' ? 'the SR' : 'the bulk annotations';
    const stored = await stowSr(client, bytes, sopInstanceUid, destination, ctx.signal, label);
    deps.logger.info({ destination: shown, sopInstanceUid }, `${what} stored`);
    return { ok: true, destination: shown, ...stored };
  } catch (err) {
    const e = isPathembedError(err) ? err : toPathembedError(err, `STOW-RS of the ${what}`);
    deps.logger.error(
      { destination: shown, code: e.code, err: e.message },
      `storing the ${what} failed; the JSON result is kept`,
    );
    return { ok: false, destination: shown, error: { code: e.code, message: e.message } };
  }
}

async function writeAndStoreAnn(
  plan: SlidePlan,
  metadata: PlanMetadata,
  output: JobOutputOptions & { annPath: string },
  deps: PipelineDeps,
  ctx: RunContext,
): Promise<AnnOutcome> {
  const includeEmbedding = output.annEmbedding ?? false;
  const { parts, byteLength, ann } = await buildAnnForPlan(
    plan,
    metadata,
    () => storedEmbeddings(output.jsonPath),
    { model: modelOf(deps), embeddingWidth: deps.engine.embeddingWidth, includeEmbedding },
  );
  const sink = await fileSink(output.annPath);
  try {
    for (const part of parts) await sink.write(part);
    await sink.commit();
  } catch (err) {
    await sink.abort();
    throw err;
  }
  deps.logger.info(
    { annPath: output.annPath, annotations: ann.annotationCount, bytes: byteLength },
    'ANN written',
  );
  const base: AnnOutcome = {
    studyInstanceUid: ann.studyInstanceUid,
    seriesInstanceUid: ann.seriesInstanceUid,
    sopInstanceUid: ann.sopInstanceUid,
    annotationCount: ann.annotationCount,
    includesEmbedding: includeEmbedding,
    bytes: byteLength,
    path: output.annPath,
  };
  if (!output.stow) return base;
  // STOW-RS sends one body: the parts become one buffer here (and only here).
  const bytes = Buffer.concat(parts);
  return { ...base, stow: await stowInstance(plan, bytes, ann.sopInstanceUid, 'ANN', output, deps, ctx) };
}

async function writeAndStoreSr(
  plan: SlidePlan,
  metadata: PlanMetadata,
  output: JobOutputOptions,
  deps: PipelineDeps,
  ctx: RunContext,
  ann?: AnnOutcome,
): Promise<SrOutcome> {
  const { bytes, sr } = await buildSrForPlan(plan, metadata, storedEmbeddings(output.jsonPath), {
    model: modelOf(deps),
    embeddingWidth: deps.engine.embeddingWidth,
    maxPatches: deps.options.srMaxPatches,
    jsonResultName: output.jsonResultName ?? path.basename(output.jsonPath),
    ...(ann
      ? {
          bulkAnnotations: {
            seriesInstanceUid: ann.seriesInstanceUid,
            sopInstanceUid: ann.sopInstanceUid,
            annotationCount: ann.annotationCount,
            includesEmbedding: ann.includesEmbedding,
          },
        }
      : {}),
  });
  if (output.srPath) await writeSrFile(output.srPath, bytes);
  const base: SrOutcome = {
    studyInstanceUid: sr.studyInstanceUid,
    seriesInstanceUid: sr.seriesInstanceUid,
    sopInstanceUid: sr.sopInstanceUid,
    includesPatches: sr.includesPatches,
    bytes: bytes.length,
    ...(output.srPath ? { path: output.srPath } : {}),
  };
  if (!output.stow) return base;
  return { ...base, stow: await stowInstance(plan, bytes, sr.sopInstanceUid, 'SR', output, deps, ctx) };
}

/** Throws the upload's error when the outcome says the SR (or the ANN) could not be stored. */
export function assertSrStored(outcome: JobOutcome): void {
  for (const stow of [outcome.ann?.stow, outcome.sr?.stow]) {
    if (!stow || stow.ok) continue;
    throw new PathembedError(
      stow.error.code as ConstructorParameters<typeof PathembedError>[0],
      `${stow.error.message} (the JSON result is kept at ${outcome.jsonPath})`,
      { destination: stow.destination, jsonPath: outcome.jsonPath },
    );
  }
}
