/**
 * Planning a job: open the slide, build its pyramid, choose the level that serves the target
 * spacing, compute the tissue mask and lay the patch grid over it (or validate explicit patches).
 * The plan is plain JSON, so the API or a parent job can hand it to chunk workers, which then read
 * patches without asking the store for metadata again.
 */

import { type DicomJsonDataset, str } from '../dicom-json.js';
import { PathembedError } from '../errors.js';
import { type IccProfileName, iccProfileOf } from '../wsi/icc-transform.js';
import { chooseLevel } from '../wsi/level-choice.js';
import { buildPatchGrid, explicitPatches } from '../wsi/patch-grid.js';
import { targetGridSize } from '../wsi/patch-reader.js';
import type { SlidePyramid } from '../wsi/slide-level.js';
import { buildSlidePyramid } from '../wsi/slide-pyramid.js';
import { computeTissueMask } from '../wsi/tissue-mask.js';
import { cancelledIfAborted } from './cancellation.js';
import {
  type EmbedOptions,
  FRAME_ERROR_POLICIES,
  type FrameErrorPolicy,
  type PlanBaseLevel,
  type PlannedPatch,
  type SlidePlan,
  type SlideSourceSpec,
} from './job-types.js';
import type { EmbedDefaults, PipelineDeps, RunContext } from './pipeline-deps.js';

/** What planning needs: the engine only for its patch size, so a plan can be made without a model. */
export type PlanningDeps = Pick<PipelineDeps, 'options' | 'slides' | 'logger'> & {
  readonly engine: Pick<PipelineDeps['engine'], 'patchSize'>;
};

import { openReadingSession, type ReadingSession } from './reading-session.js';

const SOP_INSTANCE_UID = '00080018';

/** Options with the configuration's defaults filled in, checked, naming the bad one. */
export interface ResolvedOptions {
  readonly pixelSpacingUm: number;
  readonly stridePx: number;
  readonly minTissue: number;
  readonly patches?: readonly { readonly x: number; readonly y: number }[];
  readonly requirePatchesInside: boolean;
  readonly iccProfile?: IccProfileName;
  readonly frameErrors: FrameErrorPolicy;
}

function invalid(option: string, problem: string, value: unknown): PathembedError {
  return new PathembedError('INVALID_ARGUMENT', `Option ${option} ${problem}, got ${JSON.stringify(value)}`, {
    option,
  });
}

export function resolveOptions(options: EmbedOptions, defaults: EmbedDefaults): ResolvedOptions {
  const pixelSpacingUm = options.pixelSpacingUm ?? defaults.pixelSpacingUm;
  const stridePx = options.stridePx ?? defaults.stridePx;
  const minTissue = options.minTissue ?? defaults.minTissue;
  if (!(pixelSpacingUm > 0) || !Number.isFinite(pixelSpacingUm)) {
    throw invalid('pixelSpacingUm', 'must be a positive number of µm/px', pixelSpacingUm);
  }
  if (!Number.isSafeInteger(stridePx) || stridePx < 1)
    throw invalid('stridePx', 'must be a positive integer', stridePx);
  if (!(minTissue >= 0 && minTissue <= 1)) throw invalid('minTissue', 'must be within 0..1', minTissue);
  const frameErrors = options.frameErrors ?? defaults.frameErrors;
  if (!FRAME_ERROR_POLICIES.includes(frameErrors)) {
    throw invalid('frameErrors', `must be one of ${FRAME_ERROR_POLICIES.join(', ')}`, frameErrors);
  }
  if (options.patches !== undefined && options.patches.length === 0) {
    throw invalid('patches', 'must list at least one patch when given', []);
  }
  return {
    pixelSpacingUm,
    stridePx,
    minTissue,
    ...(options.patches ? { patches: options.patches } : {}),
    requirePatchesInside: options.requirePatchesInside ?? false,
    ...(options.iccProfile ? { iccProfile: options.iccProfile } : {}),
    frameErrors,
  };
}

/** The ICC profile of the level's first instance (base64), fetched when it is bulk data. */
async function levelIccProfile(
  session: ReadingSession,
  metadata: readonly DicomJsonDataset[],
  instanceUid: string,
  signal: AbortSignal | undefined,
): Promise<string | undefined> {
  const ds = metadata.find((d) => str(d, SOP_INSTANCE_UID) === instanceUid);
  const where = ds ? iccProfileOf(ds) : undefined;
  if (!where) return undefined;
  if ('inline' in where) return Buffer.from(where.inline).toString('base64');
  if (!session.source.fetchBulkData) {
    throw new PathembedError(
      'ICC_TRANSFORM_FAILED',
      `${session.source.description} cannot fetch its ICC profile`,
    );
  }
  return Buffer.from(await session.source.fetchBulkData(where.bulkDataUri, signal)).toString('base64');
}

function baseLevelOf(pyramid: SlidePyramid): PlanBaseLevel {
  // A pyramid has at least one level and a level at least one instance (buildSlidePyramid and the
  // pyramid JSON schema both ensure it).
  const level0 = pyramid.levels[0]!;
  const first = [...level0.instances].sort(
    (a, b) => a.concatenationFrameOffset - b.concatenationFrameOffset,
  )[0]!;
  return {
    widthPx: level0.widthPx,
    heightPx: level0.heightPx,
    pixelSpacingMm: level0.pixelSpacingMm,
    sopInstanceUid: first.sopInstanceUid,
  };
}

export interface PlanWithMetadata {
  readonly plan: SlidePlan;
  /** The series metadata the plan was built from (the SR copies patient and study from it). */
  readonly metadata: DicomJsonDataset[];
}

/** Plans on an open reading session (shared with the embedding when one process does both). */
export async function planOnSession(
  session: ReadingSession,
  spec: SlideSourceSpec,
  options: EmbedOptions,
  deps: PlanningDeps,
  ctx: RunContext,
): Promise<PlanWithMetadata> {
  const resolved = resolveOptions(options, deps.options.defaults);
  const { options: pipeline } = deps;
  const patchSizePx = deps.engine.patchSize;
  return cancelledIfAborted(ctx.signal, async () => {
    const metadata = await session.source.seriesMetadata(ctx.signal);
    const pyramid = buildSlidePyramid(metadata);
    const choice = chooseLevel(pyramid.levels, resolved.pixelSpacingUm, {
      tolerance: deps.slides.reading.levelTolerance,
    });
    let patches: readonly PlannedPatch[];
    let tissue: SlidePlan['tissue'] = null;
    let candidates: number;
    if (resolved.patches) {
      patches = explicitPatches(choice, resolved.patches, undefined, {
        patchSizePx,
        requireInside: resolved.requirePatchesInside,
      });
      candidates = patches.length;
    } else {
      const mask = await computeTissueMask(session.reader, pyramid.levels, {
        spacingUm: pipeline.tissueSpacingUm,
        signal: ctx.signal,
      });
      const grid = buildPatchGrid(choice, mask, {
        pixelSpacingUm: resolved.pixelSpacingUm,
        patchSizePx,
        stridePx: resolved.stridePx,
        minTissue: resolved.minTissue,
      });
      patches = grid.patches;
      tissue = grid.tissue;
      candidates = grid.candidates;
    }
    if (patches.length > pipeline.maxPatchesPerJob) {
      throw new PathembedError(
        'PAYLOAD_TOO_LARGE',
        `The job plans ${patches.length} patches, more than PATHEMBED_MAX_PATCHES_PER_JOB (${pipeline.maxPatchesPerJob}); raise the stride, the pixel spacing or the minimum tissue`,
        { patches: patches.length, max: pipeline.maxPatchesPerJob },
      );
    }
    const size = targetGridSize(choice);
    const sourceIccProfileBase64 = resolved.iccProfile
      ? await levelIccProfile(session, metadata, choice.level.instances[0]!.sopInstanceUid, ctx.signal)
      : undefined;
    const plan: SlidePlan = {
      version: 1,
      source: spec,
      studyInstanceUid: pyramid.studyInstanceUid,
      seriesInstanceUid: pyramid.seriesInstanceUid,
      pixelSpacingUm: resolved.pixelSpacingUm,
      level: choice.level,
      downsample: choice.scale,
      patchSizePx,
      stridePx: resolved.stridePx,
      minTissue: resolved.minTissue,
      patchSelection: resolved.patches ? 'explicit' : 'tissue-grid',
      requirePatchesInside: resolved.requirePatchesInside,
      candidates,
      baseLevel: baseLevelOf(pyramid),
      widthPx: size.widthPx,
      heightPx: size.heightPx,
      patches,
      tissue,
      ...(resolved.iccProfile ? { iccProfile: resolved.iccProfile } : {}),
      ...(sourceIccProfileBase64 ? { sourceIccProfileBase64 } : {}),
      ...(resolved.frameErrors === 'skip' ? { frameErrors: 'skip' as const } : {}),
    };
    deps.logger.info(
      {
        source: session.source.description,
        level: plan.level.index,
        downsample: plan.downsample,
        patches: patches.length,
        candidates,
        tissueFraction: tissue?.fraction,
      },
      'slide planned',
    );
    return { plan, metadata };
  });
}

/**
 * Plans a job: source → pyramid → level for the target spacing → tissue mask → patch grid (or
 * the explicit patches, validated). Throws the slide's typed errors (NOT_A_WSI, NO_MATCHING_LEVEL,
 * PATCH_OUTSIDE_IMAGE, DICOMWEB_*, …), PAYLOAD_TOO_LARGE above PATHEMBED_MAX_PATCHES_PER_JOB, and
 * JOB_CANCELLED when `ctx.signal` aborts.
 */
export async function planSlide(
  spec: SlideSourceSpec,
  options: EmbedOptions,
  deps: PlanningDeps,
  ctx: RunContext = {},
): Promise<SlidePlan> {
  const session = await openReadingSession(deps, spec, ctx);
  try {
    return (await planOnSession(session, spec, options, deps, ctx)).plan;
  } finally {
    await session.close();
  }
}
