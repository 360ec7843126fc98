/**
 * The DICOM SR of a plan: the slide-level mean over a stream of embeddings, the per-patch groups
 * when the job has at most PATHEMBED_SR_MAX_PATCHES patches (kept in memory only up to that
 * number, so a large slide costs nothing here), the level-0 image as the regions' reference, and
 * where to store it.
 */
import type { DicomJsonDataset } from '../dicom-json.js';
import { Tag } from '../dicom-tags.js';
import { PathembedError } from '../errors.js';
import type { ResultModel } from '../results/result-document.js';
import { RunningMean } from '../results/running-mean.js';
import { encodePart10 } from '../results/sr/dicom-part10.js';
import { type BuiltSr, buildEmbeddingSr, type SrPatch } from '../results/sr/embedding-sr.js';
import { SopClass } from '../uids.js';
import { jobKeyFor } from './job-key.js';
import { isFailedPatch, type PatchOutcome, type SlidePlan } from './job-types.js';
import { PatchFailureTally } from './patch-failures.js';
import { level0PerGridPixel, meanGridSpacingUm } from './plan-geometry.js';

export interface SrOutputOptions {
  readonly model: ResultModel;
  readonly embeddingWidth: number;
  /** PATHEMBED_SR_MAX_PATCHES. */
  readonly maxPatches: number;
  /** How the SR names the JSON result (file name, or the job's result URL). */
  readonly jsonResultName: string;
  readonly contentTime?: Date;
}

export interface SrOutput {
  readonly bytes: Uint8Array;
  readonly sr: BuiltSr;
}

function sopInstanceUidOf(ds: DicomJsonDataset): string | undefined {
  const v = ds[Tag.SOPInstanceUID]?.Value?.[0];
  return typeof v === 'string' ? v : undefined;
}

/** Builds and encodes the SR of `plan` from its embeddings (in patch order, every planned patch). */
export async function buildSrForPlan(
  plan: SlidePlan,
  metadata: readonly DicomJsonDataset[],
  embeddings: AsyncIterable<PatchOutcome>,
  options: SrOutputOptions,
): Promise<SrOutput> {
  const mean = new RunningMean(options.embeddingWidth);
  let patches: SrPatch[] | undefined = [];
  const failures = new PatchFailureTally();
  for await (const e of embeddings) {
    // A failed patch (frameErrors: skip) has nothing to report; the JSON result lists it.
    if (isFailedPatch(e)) {
      failures.add(e.failed);
      continue;
    }
    mean.add(e.embedding);
    if (patches && mean.count > options.maxPatches) patches = undefined;
    if (patches) {
      const p = plan.patches[e.index];
      // Embeddings may be read back from stored results; one that names no planned patch is a bug.
      if (!p) {
        throw new PathembedError('INTERNAL', `Embedding of patch ${e.index} has no planned patch`, {
          index: e.index,
        });
      }
      patches.push({
        index: p.index,
        x: p.x,
        y: p.y,
        width: p.width,
        height: p.height,
        embedding: e.embedding,
      });
    }
  }
  failures.assertSomeEmbedded(mean.count);
  const meanEmbedding = mean.mean();
  if (!meanEmbedding) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      'The job embedded no patch, so there is no SR to write (no tissue?)',
      {
        plannedPatches: plan.patches.length,
      },
    );
  }
  const byUid = new Map(metadata.map((ds) => [sopInstanceUidOf(ds), ds]));
  // The plan was built from this metadata, so it holds at least one instance.
  const base = byUid.get(plan.baseLevel.sopInstanceUid) ?? metadata[0]!;
  const sopClassOf = (uid: string) =>
    (byUid.get(uid)?.[Tag.SOPClassUID]?.Value?.[0] as string | undefined) ??
    SopClass.VLWholeSlideMicroscopyImage;
  const sr = buildEmbeddingSr({
    jobKey: jobKeyFor(plan, options.model.sha256),
    sourceMetadata: base,
    evidence: plan.level.instances.map((i) => ({
      sopClassUid: sopClassOf(i.sopInstanceUid),
      sopInstanceUid: i.sopInstanceUid,
    })),
    regionImage: {
      sopClassUid: sopClassOf(plan.baseLevel.sopInstanceUid),
      sopInstanceUid: plan.baseLevel.sopInstanceUid,
      scaleFromGrid: level0PerGridPixel(plan),
    },
    model: options.model,
    parameters: {
      pixelSpacingUm: plan.pixelSpacingUm,
      patchSelection: plan.patchSelection,
      ...(plan.patchSelection === 'tissue-grid'
        ? { stridePx: plan.stridePx, minTissue: plan.minTissue }
        : {}),
      level: plan.level.index,
      downsample: plan.downsample,
    },
    pixelSpacingUm: meanGridSpacingUm(plan),
    patchSizePx: plan.patchSizePx,
    patchCount: mean.count,
    meanEmbedding,
    ...(patches ? { patches } : {}),
    maxPatches: options.maxPatches,
    jsonResultName: options.jsonResultName,
    ...(options.contentTime ? { contentTime: options.contentTime } : {}),
  });
  return { bytes: encodePart10(sr.dataset), sr };
}

/**
 * Where an SR goes over STOW-RS: the URL given, else PATHEMBED_SR_DESTINATION, else the store the
 * slide came from. A local slide needs one of the first two.
 */
export function stowDestinationFor(
  plan: SlidePlan,
  configured: string | undefined,
  explicit?: string,
): string {
  const destination =
    explicit ?? configured ?? (plan.source.kind === 'dicomweb' ? plan.source.baseUrl : undefined);
  if (!destination) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      'The slide was read from a folder, so there is no source store to STOW the SR to: give a destination URL or set PATHEMBED_SR_DESTINATION',
      { argument: 'stow' },
    );
  }
  return destination;
}
