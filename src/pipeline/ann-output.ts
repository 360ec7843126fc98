/**
 * The DICOM bulk annotations (ANN) of a plan, built from its embedding stream in two passes: the
 * first accumulates the covariance the principal components need (384 x 384, whatever the slide's
 * size), the second fills one float32 column per measurement and the rectangles' corners. Memory is
 * the columns themselves: N x 4 bytes per measurement (N x 1.6 KB with every embedding component),
 * never a patch object per patch. `embeddings` is called once per pass, so it must replay the same
 * stream (a stored JSON result or the queue's chunk files).
 */
import type { DicomJsonDataset } from '../dicom-json.js';
import { Tag } from '../dicom-tags.js';
import { PathembedError } from '../errors.js';
import {
  type AnnMeasurement,
  type BuiltAnn,
  buildBulkAnnotations,
  COORDINATES_PER_PATCH,
} from '../results/ann/bulk-annotations.js';
import { ANN_CODES, embeddingComponentCode, principalComponentCode, UCUM } from '../results/ann/codes.js';
import { CovarianceAccumulator, principalComponents, project } from '../results/embedding-pca.js';
import type { ResultModel } from '../results/result-document.js';
import { encodePart10Parts } from '../results/sr/dicom-part10.js';
import { SopClass } from '../uids.js';
import { jobKeyFor } from './job-key.js';
import { isFailedPatch, type PatchEmbedding, type PatchOutcome, type SlidePlan } from './job-types.js';
import { PatchFailureTally } from './patch-failures.js';
import { level0PerGridPixel } from './plan-geometry.js';

/** Three scores colour a patch (as RGB) in a viewer, the use the issue names. */
export const ANN_PRINCIPAL_COMPONENTS = 3;

export interface AnnOutputOptions {
  readonly model: ResultModel;
  readonly embeddingWidth: number;
  /** Also every embedding component as a measurement (the `annEmbedding` job option). */
  readonly includeEmbedding: boolean;
  readonly contentTime?: Date;
}

export interface AnnOutput {
  /** The Part 10 file as parts in order (the columns are parts of their own, not copied). */
  readonly parts: Uint8Array[];
  readonly byteLength: number;
  readonly ann: BuiltAnn;
}

function sopInstanceUidOf(ds: DicomJsonDataset): string | undefined {
  const v = ds[Tag.SOPInstanceUID]?.Value?.[0];
  return typeof v === 'string' ? v : undefined;
}

/** The patch an embedding names, checking the stream is in plan order without repeats. */
function plannedPatch(plan: SlidePlan, e: PatchEmbedding, previous: number) {
  const p = plan.patches[e.index];
  if (!p || e.index <= previous) {
    throw new PathembedError(
      'INTERNAL',
      `Embedding of patch ${e.index} ${p ? `comes after patch ${previous}` : 'has no planned patch'}`,
      { index: e.index, previous },
    );
  }
  return p;
}

/** Corners exact in float32 go as Point Coordinates Data; otherwise doubles keep them exact. */
function narrowed(points: Float64Array): Float32Array | Float64Array {
  const single = Float32Array.from(points);
  for (let i = 0; i < points.length; i++) if (single[i] !== points[i]) return points;
  return single;
}

/** Builds and encodes the ANN of `plan` from its embeddings (see the module doc). */
export async function buildAnnForPlan(
  plan: SlidePlan,
  metadata: readonly DicomJsonDataset[],
  embeddings: () => AsyncIterable<PatchOutcome>,
  options: AnnOutputOptions,
): Promise<AnnOutput> {
  const width = options.embeddingWidth;
  const covariance = new CovarianceAccumulator(width);
  const failures = new PatchFailureTally();
  let previous = -1;
  for await (const e of embeddings()) {
    // A failed patch (frameErrors: skip) has no embedding to place; the JSON result lists it.
    if (isFailedPatch(e)) {
      failures.add(e.failed);
      continue;
    }
    plannedPatch(plan, e, previous);
    previous = e.index;
    covariance.add(e.embedding);
  }
  const n = covariance.count;
  failures.assertSomeEmbedded(n);
  if (n === 0) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      'The job embedded no patch, so there are no bulk annotations to write (no tissue?)',
      { plannedPatches: plan.patches.length },
    );
  }
  const pca = principalComponents(covariance, Math.min(ANN_PRINCIPAL_COMPONENTS, width));

  const scale = level0PerGridPixel(plan);
  const points = new Float64Array(n * COORDINATES_PER_PATCH);
  const tissue = new Float32Array(n);
  const scores = pca.components.map(() => new Float32Array(n));
  const components = options.includeEmbedding ? Array.from({ length: width }, () => new Float32Array(n)) : [];
  let row = 0;
  previous = -1;
  for await (const e of embeddings()) {
    if (isFailedPatch(e)) continue;
    const p = plannedPatch(plan, e, previous);
    previous = e.index;
    if (row >= n) {
      throw new PathembedError('INTERNAL', `The embedding stream grew between passes (more than ${n})`);
    }
    const x0 = p.x * scale.x;
    const y0 = p.y * scale.y;
    const x1 = (p.x + p.width) * scale.x;
    const y1 = (p.y + p.height) * scale.y;
    points.set([x0, y0, x1, y0, x1, y1, x0, y1], row * COORDINATES_PER_PATCH);
    tissue[row] = p.tissueFraction;
    project(pca, e.embedding).forEach((s, c) => {
      scores[c]![row] = s;
    });
    for (let c = 0; c < components.length; c++) components[c]![row] = e.embedding[c]!;
    row++;
  }
  if (row !== n) {
    throw new PathembedError('INTERNAL', `The embedding stream changed between passes (${n}, then ${row})`);
  }

  const measurements: AnnMeasurement[] = [
    { name: ANN_CODES.tissueFraction, unit: UCUM.noUnits, values: tissue },
    ...scores.map((values, c) => ({ name: principalComponentCode(c), unit: UCUM.noUnits, values })),
    ...components.map((values, c) => ({ name: embeddingComponentCode(c), unit: UCUM.noUnits, values })),
  ];

  const byUid = new Map(metadata.map((ds) => [sopInstanceUidOf(ds), ds]));
  // The plan was built from this metadata, so it holds at least one instance.
  const base = byUid.get(plan.baseLevel.sopInstanceUid) ?? metadata[0]!;
  const sopClassOf = (uid: string) =>
    (byUid.get(uid)?.[Tag.SOPClassUID]?.Value?.[0] as string | undefined) ??
    SopClass.VLWholeSlideMicroscopyImage;
  // ANN coordinates may not refer to one part of a concatenation, only to its source (C.37.1.2).
  const concatenationSource = base[Tag.SOPInstanceUIDOfConcatenationSource]?.Value?.[0];
  const referencedUid =
    typeof concatenationSource === 'string' ? concatenationSource : plan.baseLevel.sopInstanceUid;
  const ann = buildBulkAnnotations({
    jobKey: jobKeyFor(plan, options.model.sha256),
    sourceMetadata: base,
    referencedImage: {
      sopClassUid: sopClassOf(plan.baseLevel.sopInstanceUid),
      sopInstanceUid: referencedUid,
    },
    evidence: plan.level.instances.map((i) => ({
      sopClassUid: sopClassOf(i.sopInstanceUid),
      sopInstanceUid: i.sopInstanceUid,
    })),
    model: options.model,
    parameters: {
      pixelSpacingUm: plan.pixelSpacingUm,
      patchSizePx: plan.patchSizePx,
      patchSelection: plan.patchSelection,
      level: plan.level.index,
      downsample: plan.downsample,
      principalComponentVariances: pca.variances.map((v) => v.toPrecision(6)).join(','),
    },
    annotationCount: n,
    points: narrowed(points),
    measurements,
    withEmbedding: options.includeEmbedding,
    ...(options.contentTime ? { contentTime: options.contentTime } : {}),
  });
  const parts = encodePart10Parts(ann.dataset);
  return { parts, byteLength: parts.reduce((s, p) => s + p.length, 0), ann };
}
