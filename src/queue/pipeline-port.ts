/**
 * What the queue needs from the pipeline, results and wsi layers, in one interface: plan a slide,
 * embed a range of its patches, write the JSON result and the SR, read explicit patches for
 * /v1/predict, embed pixels. The workers code against this port; `createPipelinePort` binds it to
 * the real modules, so the queue depends on their public functions in this one file only.
 */

import type { DicomJsonDataset } from '../dicom-json.js';
import type { ModelManifest } from '../embed/index.js';
import type { RectPx } from '../geometry.js';
import type { EmbedOptions, PatchFileKind, PatchOutcome, SlidePlan } from '../pipeline/index.js';
import type { ResultHeaderInput } from '../results/index.js';
import type { IccProfileName } from '../wsi/icc-transform.js';
import type { DicomWebSourceSpec } from './queue-jobs.js';
import type { ResultUpload } from './result-store.js';

export interface RunContext {
  /** Per-job store token (from the vault), if the job has one. */
  readonly token?: string;
  /** Aborts between batches (cancellation, shutdown). */
  readonly signal: AbortSignal;
}

export interface PlanRange {
  readonly start: number;
  readonly end: number;
}

/**
 * Busy milliseconds of each embedding stage (wall time during which at least one of its operations
 * ran, see StageClock) of one run: a chunk job's, or summed over a job's chunks.
 */
export interface StageBusyMs {
  fetchMs: number;
  decodeMs: number;
  inferMs: number;
}

export interface JsonResultInfo {
  readonly jobId: string;
  /** When planning started and ended (epoch ms), for the result's timings. */
  readonly startedAt: number;
  readonly plannedAt: number;
  /**
   * The stage times for the result's timings, read once every embedding has been written (so an
   * assembler may sum them while it streams its chunk files). None: zeros.
   */
  readonly stageMs?: () => StageBusyMs;
}

export interface PlannedSlide {
  readonly plan: SlidePlan;
  /**
   * Metadata of the plan's instances (per-frame groups dropped): what the SR copies patient,
   * study and specimen from, saved with the plan so the assemble job need not ask the store.
   */
  readonly metadata: DicomJsonDataset[];
}

export interface SrInfo {
  /** How the SR names the JSON result (the job's result URL). */
  readonly jsonResultName: string;
  /** DICOMweb base URL to store it to over STOW-RS; none: only written to `upload`. */
  readonly stowTo?: string;
  /** The job's bulk annotations, written before the SR, for the SR to refer to. */
  readonly bulkAnnotations?: AnnWritten;
}

export interface AnnInfo {
  /** Every embedding component as a measurement too (the job's annEmbedding). */
  readonly includeEmbedding: boolean;
  /** DICOMweb base URL to store it to over STOW-RS; none: only written to `upload`. */
  readonly stowTo?: string;
}

export interface AnnWritten {
  readonly studyUid: string;
  readonly seriesUid: string;
  readonly sopInstanceUid: string;
  readonly annotationCount: number;
  readonly includesEmbedding: boolean;
}

export interface SrWritten {
  readonly studyUid: string;
  readonly seriesUid: string;
  readonly sopInstanceUid: string;
}

export interface DicomPatchOptions {
  /** Path Foundation's image_dimensions: coordinates are in the level resized to this size. */
  readonly resize?: { readonly width: number; readonly height: number };
  /** Transform from the slide's ICC profile to this one (none when the slide has no profile). */
  readonly icc?: IccProfileName;
}

export interface PipelinePort {
  /** The manifest of the model this process embeds with. */
  readonly manifest: ModelManifest;
  /** The execution provider the model runs on (cpu, cuda, …), for the worker registry. */
  readonly executionProvider: string;
  plan(source: DicomWebSourceSpec, options: EmbedOptions, run: RunContext): Promise<PlannedSlide>;
  /**
   * Embeddings of plan patches [start, end), in patch order. When `stageMs` is given, the run's
   * stage busy times are written into it as the iteration ends (completed, failed or stopped).
   */
  embed(
    plan: SlidePlan,
    range: PlanRange,
    run: RunContext,
    stageMs?: StageBusyMs,
  ): AsyncIterable<PatchOutcome>;
  /** The JSON result's header for a plan (source, geometry, model): what the search index is built with. */
  resultHeader(plan: SlidePlan): ResultHeaderInput;
  /** Streams the JSON result of `embeddings` (every plan patch, in order) into `upload`. */
  writeJson(
    plan: SlidePlan,
    embeddings: AsyncIterable<PatchOutcome>,
    upload: ResultUpload,
    info: JsonResultInfo,
  ): Promise<void>;
  /**
   * Writes the DICOM bulk annotations of the embeddings into `upload` (and stores them over
   * STOW-RS when `info.stowTo` is set). `embeddings` is read twice (principal components first),
   * so each call must give the same stream anew.
   */
  writeAnn(
    planned: PlannedSlide,
    embeddings: () => AsyncIterable<PatchOutcome>,
    upload: ResultUpload,
    info: AnnInfo,
    run: RunContext,
  ): Promise<AnnWritten>;
  /**
   * Streams the HDF5 or Parquet result of `embeddings` (every plan patch, in order; failed patches
   * are left out) into `upload`
   * and commits it; returns its patch count and size.
   */
  writePatchFile(
    kind: PatchFileKind,
    plan: SlidePlan,
    embeddings: AsyncIterable<PatchOutcome>,
    upload: ResultUpload,
    info: { readonly jobId: string },
  ): Promise<{ readonly patchCount: number; readonly bytes: number }>;
  /** Writes the DICOM SR of `embeddings` into `upload`; stores it over STOW-RS when `info.stowTo` is set. */
  writeSr(
    planned: PlannedSlide,
    embeddings: AsyncIterable<PatchOutcome>,
    upload: ResultUpload,
    info: SrInfo,
    run: RunContext,
  ): Promise<SrWritten>;
  /**
   * RGB patches (224x224x3) of a DICOM series at the native spacing of its (given) level, or of
   * that level resized to `options.resize`.
   */
  readDicomPatches(
    source: DicomWebSourceSpec,
    patches: readonly RectPx[],
    requireInside: boolean,
    run: RunContext,
    options?: DicomPatchOptions,
  ): Promise<Uint8Array[]>;
  /** A transform of RGB pixels from `profile` (ICC bytes) to `target` (LittleCMS, cached). */
  iccTransform(profile: Uint8Array, target: IccProfileName): Promise<(rgb: Uint8Array) => Uint8Array>;
  /** Embeds RGB patches (224x224x3 each), in order. */
  embedPixels(patches: readonly Uint8Array[]): Promise<Float32Array[]>;
  close(): Promise<void>;
}
