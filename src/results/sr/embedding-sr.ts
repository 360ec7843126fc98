/**
 * The DICOM Comprehensive SR of an embedding job: a TID 1500 Measurement Report in the source
 * slide's patient and study (a new series), with the model as algorithm (TID 4019), the slide-level
 * mean embedding as one NUM per component under private codes EMB0000…, and, up to a configured
 * number of patches, one TID 1410 group per patch with its region on the slide's level-0 image and
 * its embedding. Above that number the SR names the JSON result holding the patches instead.
 * docs/sr.md describes the content and the private codes.
 */

import type { DicomJsonDataset } from '../../dicom-json.js';
import { Tag } from '../../dicom-tags.js';
import { SopClass } from '../../uids.js';
import { DCM, embeddingComponentCode, PRIVATE, UCUM } from './codes.js';
import {
  assertText,
  assertUid,
  type Dataset,
  type ImageReference,
  invalidArgument,
  numItem,
  textItem,
} from './content-items.js';
import { deviceUidFor, srUidsFor } from './derived-uids.js';
import { copyPatientAndStudy, dicomDate, dicomTime, fitLo, sopCommon } from './instance-common.js';
import {
  type AlgorithmIdentificationOptions,
  imageLibrary,
  measurementGroup,
  measurementReport,
  observationContext,
  planarRoiMeasurementGroup,
  type SpecimenSubject,
} from './templates.js';

export const SR_MANUFACTURER = 'pathembed';
export const SR_SERIES_NUMBER = 9100;
export const SR_INSTANCE_NUMBER = 1;
const SOFTWARE_VERSION = '0.1.0';

/** Image pixels per target-grid pixel, along columns (x) and rows (y). */
export interface GridScale {
  readonly x: number;
  readonly y: number;
}

/** One patch for the SR: its rectangle in the target grid and its embedding. */
export interface SrPatch {
  readonly index: number;
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
  readonly embedding: Float32Array;
}

export interface EmbeddingSrInput {
  /** Deterministic job key: the SR's UIDs derive from it. */
  readonly jobKey: string;
  /** DICOM JSON metadata of one source instance (patient, study, specimen are copied from it). */
  readonly sourceMetadata: DicomJsonDataset;
  /** The instances the patches were read from, listed as evidence. */
  readonly evidence: readonly ImageReference[];
  /**
   * The image patch regions are drawn on (level 0) and its pixels per target-grid pixel along
   * columns (x) and rows (y): a patch at grid (x, y) covers columns x·scale.x … (x+width)·scale.x
   * of its total pixel matrix.
   */
  readonly regionImage: ImageReference & { readonly scaleFromGrid: GridScale };
  readonly model: { readonly name: string; readonly version: string; readonly sha256: string };
  /** Parameters quoted in TID 4019, as name → value. */
  readonly parameters: Readonly<Record<string, string | number | boolean>>;
  readonly pixelSpacingUm: number;
  readonly patchSizePx: number;
  readonly patchCount: number;
  readonly meanEmbedding: Float32Array;
  /** Per-patch content; given when the job has at most `maxPatches` patches. */
  readonly patches?: readonly SrPatch[];
  readonly maxPatches: number;
  /** How the SR names the JSON result that holds every patch (file name or job URL). */
  readonly jsonResultName: string;
  /**
   * The job's bulk annotations (ANN), when written with the SR: listed in Pertinent Other Evidence
   * and named in the slide-level group. When they hold every embedding component, the per-patch
   * groups are left out of the SR (the ANN holds the same numbers in a fraction of the bytes).
   */
  readonly bulkAnnotations?: AnnReference;
  /** Content date/time; default now. */
  readonly contentTime?: Date;
}

/** Where the job's ANN is, for the SR to point at. */
export interface AnnReference {
  readonly seriesInstanceUid: string;
  readonly sopInstanceUid: string;
  readonly annotationCount: number;
  /** Whether it holds every embedding component of every patch. */
  readonly includesEmbedding: boolean;
}

export interface BuiltSr {
  readonly dataset: Dataset;
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string;
  readonly sopInstanceUid: string;
  /** Whether the per-patch groups are in the SR (else only the slide-level content). */
  readonly includesPatches: boolean;
}

function specimenOf(source: DicomJsonDataset): SpecimenSubject | undefined {
  const description = source[Tag.SpecimenDescriptionSequence]?.Value?.[0] as DicomJsonDataset | undefined;
  const specimenUid = description?.[Tag.SpecimenUID]?.Value?.[0];
  if (typeof specimenUid !== 'string') return undefined;
  const identifier = description?.[Tag.SpecimenIdentifier]?.Value?.[0];
  const container = source[Tag.ContainerIdentifier]?.Value?.[0];
  return {
    specimenUid,
    ...(typeof identifier === 'string' && identifier ? { specimenIdentifier: identifier } : {}),
    ...(typeof container === 'string' && container ? { containerIdentifier: container } : {}),
  };
}

function embeddingMeasurements(embedding: Float32Array): Dataset[] {
  return Array.from(embedding, (v, i) => numItem('CONTAINS', embeddingComponentCode(i), v, UCUM.noUnits));
}

/** Closed rectangle (5 points) of a patch in the region image's total pixel matrix. */
export function patchRegion(patch: SrPatch, scale: GridScale): Array<[number, number]> {
  const x0 = patch.x * scale.x;
  const y0 = patch.y * scale.y;
  const x1 = (patch.x + patch.width) * scale.x;
  const y1 = (patch.y + patch.height) * scale.y;
  return [
    [x0, y0],
    [x1, y0],
    [x1, y1],
    [x0, y1],
    [x0, y0],
  ];
}

function validate(input: EmbeddingSrInput): void {
  const where = 'buildEmbeddingSr';
  assertText(where, 'jobKey', input.jobKey);
  assertText(where, 'jsonResultName', input.jsonResultName);
  const study = input.sourceMetadata[Tag.StudyInstanceUID]?.Value?.[0];
  const series = input.sourceMetadata[Tag.SeriesInstanceUID]?.Value?.[0];
  assertUid(where, 'sourceMetadata StudyInstanceUID', study);
  assertUid(where, 'sourceMetadata SeriesInstanceUID', series);
  if (input.evidence.length === 0) throw invalidArgument(where, 'evidence', 'must list the instances used');
  const { scaleFromGrid } = input.regionImage;
  if (!(scaleFromGrid?.x > 0 && scaleFromGrid.y > 0)) {
    throw invalidArgument(
      where,
      'regionImage.scaleFromGrid',
      `must be positive {x, y}, got ${JSON.stringify(scaleFromGrid)}`,
    );
  }
  if (!(input.pixelSpacingUm > 0)) throw invalidArgument(where, 'pixelSpacingUm', 'must be positive');
  if (!Number.isInteger(input.patchSizePx) || input.patchSizePx <= 0) {
    throw invalidArgument(where, 'patchSizePx', 'must be a positive integer');
  }
  if (!Number.isInteger(input.patchCount) || input.patchCount < 1) {
    throw invalidArgument(
      where,
      'patchCount',
      'must be at least 1 (an SR of no patches has no mean embedding)',
    );
  }
  if (input.meanEmbedding.length === 0) throw invalidArgument(where, 'meanEmbedding', 'must not be empty');
  const bad = input.meanEmbedding.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw invalidArgument(where, `meanEmbedding[${bad}]`, 'is not finite');
  if (!/^[0-9a-f]{64}$/.test(input.model.sha256))
    throw invalidArgument(where, 'model.sha256', 'must be hex sha256');
  if (!Number.isInteger(input.maxPatches) || input.maxPatches < 0) {
    throw invalidArgument(where, 'maxPatches', 'must be a non-negative integer');
  }
  input.patches?.forEach((p, i) => {
    if (p.embedding.length !== input.meanEmbedding.length) {
      throw invalidArgument(
        where,
        `patches[${i}].embedding`,
        `has ${p.embedding.length} components, the mean has ${input.meanEmbedding.length}`,
      );
    }
  });
}

/** Builds the SR dataset (dcmjs naturalized form); encode it with `encodePart10`. */
export function buildEmbeddingSr(input: EmbeddingSrInput): BuiltSr {
  validate(input);
  const uids = srUidsFor(input.jobKey);
  // validate() checked that both UIDs are present.
  const studyInstanceUid = input.sourceMetadata[Tag.StudyInstanceUID]!.Value![0] as string;
  const sourceSeriesUid = input.sourceMetadata[Tag.SeriesInstanceUID]!.Value![0] as string;
  const now = input.contentTime ?? new Date();
  const ann = input.bulkAnnotations;
  const includesPatches =
    input.patches !== undefined &&
    input.patches.length === input.patchCount &&
    input.patchCount <= input.maxPatches &&
    !ann?.includesEmbedding;

  const algorithm: AlgorithmIdentificationOptions = {
    name: input.model.name,
    version: input.model.version,
    parameters: [
      `modelSha256=${input.model.sha256}`,
      ...Object.entries(input.parameters).map(([k, v]) => `${k}=${v}`),
    ],
  };
  const slideMeasurements = [
    numItem('CONTAINS', DCM.horizontalPixelSpacing, input.pixelSpacingUm, UCUM.micrometer),
    numItem('CONTAINS', DCM.verticalPixelSpacing, input.pixelSpacingUm, UCUM.micrometer),
    numItem('CONTAINS', PRIVATE.patchSize, input.patchSizePx, UCUM.pixels),
    numItem('CONTAINS', PRIVATE.patchCount, input.patchCount, UCUM.patches),
    ...embeddingMeasurements(input.meanEmbedding),
  ];
  if (ann) {
    slideMeasurements.push(
      textItem(
        'CONTAINS',
        DCM.comment,
        `The patches' regions, tissue fractions and principal component scores${ann.includesEmbedding ? ' and embeddings' : ''} are ` +
          `in the Microscopy Bulk Simple Annotations ${ann.sopInstanceUid} (series ${ann.seriesInstanceUid}), ` +
          `${ann.annotationCount} annotations, listed in Pertinent Other Evidence.`,
      ),
    );
  }
  if (!includesPatches && !ann?.includesEmbedding) {
    slideMeasurements.push(
      textItem(
        'CONTAINS',
        DCM.comment,
        `This SR carries the slide-level mean embedding of ${input.patchCount} patches only (more than the ` +
          `${input.maxPatches} per-patch groups an SR may hold). Every patch with its region and embedding is in ` +
          `the JSON result ${input.jsonResultName}.`,
      ),
    );
  }
  const groups: Dataset[] = [
    measurementGroup({
      tracking: { identifier: 'slide-level mean embedding', uid: uids.meanGroupUid },
      finding: PRIVATE.slideMeanEmbedding,
      algorithm,
      sourceImages: [input.regionImage],
      measurements: slideMeasurements,
    }),
  ];
  if (includesPatches) {
    for (const patch of input.patches!) {
      groups.push(
        planarRoiMeasurementGroup({
          tracking: {
            identifier: `patch ${patch.index} at x=${patch.x} y=${patch.y} (target grid, ${input.pixelSpacingUm} um/px)`,
            uid: uids.patchGroupUid(patch.index),
          },
          region: patchRegion(patch, input.regionImage.scaleFromGrid),
          image: input.regionImage,
          finding: PRIVATE.patchEmbedding,
          algorithm,
          measurements: embeddingMeasurements(patch.embedding),
        }),
      );
    }
  }

  const specimen = specimenOf(input.sourceMetadata);
  const root = measurementReport({
    observationContext: observationContext({
      device: {
        uid: deviceUidFor(input.model.sha256),
        name: `${input.model.name} ${input.model.version}`,
        manufacturer: SR_MANUFACTURER,
        modelName: input.model.name,
      },
      ...(specimen ? { specimen } : {}),
    }),
    procedureReported: DCM.wholeSlideImaging,
    imageLibrary: imageLibrary([input.regionImage]),
    measurementGroups: groups,
  });

  const evidence = new Map<string, ImageReference>();
  for (const ref of [...input.evidence, input.regionImage]) {
    evidence.set(ref.sopInstanceUid, { sopClassUid: ref.sopClassUid, sopInstanceUid: ref.sopInstanceUid });
  }
  const dataset: Dataset = {
    ...sopCommon(SopClass.ComprehensiveSR, uids.sopInstanceUid, now),
    ...copyPatientAndStudy(input.sourceMetadata),
    StudyInstanceUID: studyInstanceUid,
    Modality: 'SR',
    SeriesInstanceUID: uids.seriesInstanceUid,
    SeriesNumber: SR_SERIES_NUMBER,
    SeriesDescription: fitLo(`Path Foundation embeddings (${input.model.name} ${input.model.version})`),
    SeriesDate: dicomDate(now),
    SeriesTime: dicomTime(now),
    ReferencedPerformedProcedureStepSequence: [],
    Manufacturer: SR_MANUFACTURER,
    ManufacturerModelName: SR_MANUFACTURER,
    SoftwareVersions: SOFTWARE_VERSION,
    InstanceNumber: SR_INSTANCE_NUMBER,
    CompletionFlag: 'COMPLETE',
    VerificationFlag: 'UNVERIFIED',
    ContentDate: dicomDate(now),
    ContentTime: dicomTime(now),
    PerformedProcedureCodeSequence: [],
    CurrentRequestedProcedureEvidenceSequence: [
      {
        StudyInstanceUID: studyInstanceUid,
        ReferencedSeriesSequence: [
          {
            SeriesInstanceUID: sourceSeriesUid,
            ReferencedSOPSequence: [...evidence.values()].map((r) => ({
              ReferencedSOPClassUID: r.sopClassUid,
              ReferencedSOPInstanceUID: r.sopInstanceUid,
            })),
          },
        ],
      },
    ],
    ...(ann
      ? {
          PertinentOtherEvidenceSequence: [
            {
              StudyInstanceUID: studyInstanceUid,
              ReferencedSeriesSequence: [
                {
                  SeriesInstanceUID: ann.seriesInstanceUid,
                  ReferencedSOPSequence: [
                    {
                      ReferencedSOPClassUID: SopClass.MicroscopyBulkSimpleAnnotations,
                      ReferencedSOPInstanceUID: ann.sopInstanceUid,
                    },
                  ],
                },
              ],
            },
          ],
        }
      : {}),
    ...root,
  };
  return {
    dataset,
    studyInstanceUid,
    seriesInstanceUid: uids.seriesInstanceUid,
    sopInstanceUid: uids.sopInstanceUid,
    includesPatches,
  };
}
