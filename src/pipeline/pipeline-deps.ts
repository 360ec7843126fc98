/**
 * What the pipeline is given rather than builds: its options, a logger, the embedding engine and
 * the SlideOpener that opens every slide. The CLI, the queue workers and the tests inject real
 * parts (or instrumented ones), and the pipeline never imports Express, BullMQ, Redis or the
 * process configuration.
 */
import type { ModelManifest } from '../embed/index.js';
import type { Logger } from '../log.js';
import type { SlideOpener } from '../wsi/slide-opener.js';
import type { FrameErrorPolicy, JobProgress } from './job-types.js';

/** Defaults of a job's options, filled in once by `resolveOptions`. */
export interface EmbedDefaults {
  /** Target pixel spacing of patches, µm/px. */
  readonly pixelSpacingUm: number;
  /** Grid stride in pixels at the target spacing. */
  readonly stridePx: number;
  /** Least tissue fraction of a grid patch. */
  readonly minTissue: number;
  /** What a corrupt frame does to a job that does not say. */
  readonly frameErrors: FrameErrorPolicy;
}

export interface PipelineOptions {
  readonly defaults: EmbedDefaults;
  /** Patches per inference batch (also recorded in results). */
  readonly batchSize: number;
  /** Pixel spacing of the tissue mask, µm/px. */
  readonly tissueSpacingUm: number;
  /** Most patches one slide job may plan (PAYLOAD_TOO_LARGE above). */
  readonly maxPatchesPerJob: number;
  /** Most per-patch groups in an SR; above it the SR carries slide-level content only. */
  readonly srMaxPatches: number;
  /** Folder of the ICC profiles patches may be transformed to (a job's iccProfile). */
  readonly iccProfileDir: string;
  /** Where SRs are stored when a job names no destination; default: the slide's own store. */
  readonly srDestination?: string;
}

/**
 * The engine as the pipeline uses it: an EmbeddingEngine, a WorkerEmbeddingEngine (the same in a
 * worker thread, so inference does not block reading), or a stand-in in tests.
 */
export interface PipelineEngine {
  readonly manifest: ModelManifest;
  /** Side of the square patches `embed` takes, in pixels. */
  readonly patchSize: number;
  /** Floats per embedding. */
  readonly embeddingWidth: number;
  /** One embedding per patch (RGB uint8, patchSize² x 3), in order. */
  embed(patches: readonly Uint8Array[]): Promise<Float32Array[]>;
}

export interface PipelineDeps {
  readonly options: PipelineOptions;
  readonly logger: Logger;
  readonly engine: PipelineEngine;
  /** Opens sources, readers and STOW clients, with a job's token where it may go. */
  readonly slides: SlideOpener;
}

export interface RunContext {
  /** Bearer token for the source store (and the SR destination when it is the same store). */
  readonly token?: string;
  /** Cancels the job: the pipeline stops within one batch with JOB_CANCELLED. */
  readonly signal?: AbortSignal;
  /** Called after every batch. */
  readonly onProgress?: (progress: JobProgress) => void;
}
