/**
 * The embedding pipeline, public API: plan a slide, embed a plan (or a chunk of it) through the
 * bounded read-ahead pipeline, run a whole job into a JSON result, HDF5 and Parquet files, and an SR. Runs without Redis
 * or Express; the CLI, the queue workers and the tests inject config, logger, engine and sources.
 */
export {
  ANN_PRINCIPAL_COMPONENTS,
  type AnnOutput,
  type AnnOutputOptions,
  buildAnnForPlan,
} from './ann-output.js';
export { cancelledError, throwIfCancelled } from './cancellation.js';
export {
  checkRange,
  EmbedRunStats,
  embedOnSession,
  embedPlan,
  type PatchRange,
  READ_AHEAD_BATCHES,
} from './embed-plan.js';
export {
  openPatchFile,
  PATCH_FILE_KINDS,
  type PatchFileKind,
  type PatchFileSummary,
  type PatchFileWriter,
  plannedPatch,
  writePatchFile,
} from './file-outputs.js';
export { jobKeyFor } from './job-key.js';
export {
  type EmbedOptions,
  type FailedPatch,
  FRAME_ERROR_POLICIES,
  type FrameErrorPolicy,
  isFailedPatch,
  type JobProgress,
  type PatchEmbedding,
  type PatchFailure,
  type PatchOutcome,
  type PlanBaseLevel,
  type PlannedPatch,
  type RectPx,
  type SlidePlan,
  type SlideSourceSpec,
  type StageTimings,
} from './job-types.js';
export {
  type JsonOutputOptions,
  openJsonResult,
  resultHeaderFor,
  writeJsonResult,
  writePlannedEmbedding,
} from './json-output.js';
export { PatchFailureTally } from './patch-failures.js';
export type {
  EmbedDefaults,
  PipelineDeps,
  PipelineEngine,
  PipelineOptions,
  RunContext,
} from './pipeline-deps.js';
export { gridSpacingUm, level0PerGridPixel, meanGridSpacingUm } from './plan-geometry.js';
export {
  type PlanningDeps,
  type PlanWithMetadata,
  planOnSession,
  planSlide,
  type ResolvedOptions,
  resolveOptions,
} from './plan-slide.js';
export { openReadingSession, type ReadingSession } from './reading-session.js';
export {
  type AnnOutcome,
  assertSrStored,
  type JobOutcome,
  type JobOutputOptions,
  runEmbeddingJob,
  type SrOutcome,
  type StowOutcome,
} from './run-job.js';
export { buildSrForPlan, type SrOutput, type SrOutputOptions, stowDestinationFor } from './sr-output.js';
export { StageClock } from './stage-clock.js';
