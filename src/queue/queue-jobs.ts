/**
 * The BullMQ side of the job contract: the one queue's name, its job names and what each job
 * carries. A slide job plans; it fans out into chunk jobs under an assemble parent (a BullMQ
 * flow); predict jobs serve /v1/predict. Job data never holds a token: tokens live sealed in Redis
 * (token-vault.ts) and `hasToken` says whether to look.
 */
import type { EmbedOptions, SlideSourceSpec } from '../pipeline/index.js';

/** A job option the API validates; its values belong to the pipeline. */
export { FRAME_ERROR_POLICIES } from '../pipeline/index.js';

/** One queue for every kind of job, so one priority order and one rate limit govern the workers. */
export const QUEUE_NAME = 'embed';

export const JOB_NAMES = {
  slide: 'slide',
  chunk: 'chunk',
  assemble: 'assemble',
  predict: 'predict',
} as const;
export type JobName = (typeof JOB_NAMES)[keyof typeof JOB_NAMES];

/** json: the full result; hdf5 and parquet: the same embeddings for ML tools; dicom-sr: the SR; dicom-ann: the patches as DICOM bulk annotations. */
export const OUTPUT_KINDS = ['json', 'dicom-sr', 'dicom-ann', 'hdf5', 'parquet'] as const;
export type OutputKind = (typeof OUTPUT_KINDS)[number];

/** BullMQ priority of predict jobs: 1 runs before anything else (lower runs first). */
export const PREDICT_PRIORITY = 1;
/** Request priorities 1 (first) … 10 (last) map to BullMQ priorities after predict's. */
export const MIN_REQUEST_PRIORITY = 1;
export const MAX_REQUEST_PRIORITY = 10;
export const DEFAULT_REQUEST_PRIORITY = 5;

/**
 * A slide job plans; its chunk and assemble jobs embed and write. Within one request priority the
 * second run first: a slide already planned is finished before another is planned. With one
 * priority for both, a cohort planned every slide before embedding any (its plans and flows all
 * in Redis, no result until the last plan), and a worker killed late lost the most work.
 */
export type JobStage = 'plan' | 'embed';
const STAGES_PER_PRIORITY = 2;

export function bullPriority(requestPriority: number, stage: JobStage): number {
  // Request priority p gives 2p (embed) and 2p + 1 (plan): above predict's 1, and a more urgent
  // request's planning still comes before a less urgent one's embedding.
  return STAGES_PER_PRIORITY * requestPriority + (stage === 'plan' ? 1 : 0);
}

export type DicomWebSourceSpec = Extract<SlideSourceSpec, { kind: 'dicomweb' }>;

export interface SlideJobData {
  readonly jobId: string;
  readonly source: DicomWebSourceSpec;
  readonly options: EmbedOptions;
  readonly outputs: readonly OutputKind[];
  /** DICOMweb base URL the SR is stored to (STOW-RS); none: the SR is only written to results. */
  readonly srDestination?: string;
  /** The bulk annotations (dicom-ann) hold every embedding component too. */
  readonly annEmbedding?: boolean;
  readonly hasToken: boolean;
  readonly priority: number;
}

export interface ChunkJobData {
  readonly jobId: string;
  readonly chunkIndex: number;
  /** Plan patch indices [start, end). */
  readonly start: number;
  readonly end: number;
  readonly hasToken: boolean;
}

export interface AssembleJobData {
  readonly jobId: string;
  readonly chunkCount: number;
  readonly outputs: readonly OutputKind[];
  /** Where the SR and the bulk annotations are stored over STOW-RS, when set. */
  readonly srDestination?: string;
  readonly annEmbedding?: boolean;
  readonly hasToken: boolean;
}

/** BullMQ ids of a job's parts (BullMQ refuses ':' in custom ids). */
export const bullJobIds = {
  slide: (jobId: string) => jobId,
  assemble: (jobId: string) => `${jobId}-assemble`,
  chunk: (jobId: string, chunkIndex: number) => `${jobId}-c${chunkIndex}`,
};

/** Chunk ranges of a plan with `patchCount` patches, `chunkPatches` each (the last may be short). */
export function chunkRanges(patchCount: number, chunkPatches: number): Array<{ start: number; end: number }> {
  const ranges: Array<{ start: number; end: number }> = [];
  for (let start = 0; start < patchCount; start += chunkPatches) {
    ranges.push({ start, end: Math.min(patchCount, start + chunkPatches) });
  }
  return ranges;
}
