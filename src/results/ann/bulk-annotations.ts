/**
 * The DICOM Microscopy Bulk Simple Annotations (ANN, PS3.3 A.87) of an embedding job: one instance
 * in the source slide's patient and study (a new series), holding one annotation group with every
 * patch as a RECTANGLE in the level-0 image's total pixel matrix (2D, PS3.3 C.37.1.2) and one
 * measurement column per quantity (tissue fraction, principal component scores, optionally every
 * embedding component) as float32 arrays. The columns are handed over as typed arrays and written
 * without copying (see encodePart10Parts). docs/ann.md describes the content and codes.
 */
import type { DicomJsonDataset } from '../../dicom-json.js';
import { Tag } from '../../dicom-tags.js';
import { SopClass } from '../../uids.js';
import type { Code } from '../sr/codes.js';
import {
  assertText,
  assertUid,
  codeSequence,
  type Dataset,
  type ImageReference,
  invalidArgument,
} from '../sr/content-items.js';
import { annUidsFor } from '../sr/derived-uids.js';
import { copyPatientAndStudy, dicomDate, dicomTime, fitLo, sopCommon } from '../sr/instance-common.js';
import { ANN_CODES } from './codes.js';

export const ANN_MANUFACTURER = 'pathembed';
/** Beside the SR's series 9100, so a viewer lists pathembed's two series together. */
export const ANN_SERIES_NUMBER = 9101;
export const ANN_INSTANCE_NUMBER = 1;
const SOFTWARE_VERSION = '0.1.0';
/** Enhanced General Equipment needs a serial number (type 1); software has none, so its name. */
const DEVICE_SERIAL_NUMBER = 'pathembed';
/** Content Label (CS, PS3.3 C.10.9): upper case, digits, space and underscore. */
const CONTENT_LABEL = 'PATCH_EMBEDDINGS';
/** A RECTANGLE is four (column, row) points: top left, top right, bottom right, bottom left. */
export const RECTANGLE_POINTS = 4;
export const POINT_COORDINATES = 2;
export const COORDINATES_PER_PATCH = RECTANGLE_POINTS * POINT_COORDINATES;
const LT_MAX_CHARS = 10240;

/** One measurement column: a value per annotation, in annotation order. */
export interface AnnMeasurement {
  readonly name: Code;
  readonly unit: Code;
  readonly values: Float32Array;
}

export interface AnnInput {
  /** Deterministic job key: the ANN's UIDs derive from it. */
  readonly jobKey: string;
  /** DICOM JSON of the level-0 instance (patient, study, frame of reference are copied from it). */
  readonly sourceMetadata: DicomJsonDataset;
  /** The image the coordinates refer to (level 0; a concatenation's source UID, not a part's). */
  readonly referencedImage: ImageReference;
  /** The instances the patches were read from, listed with the referenced image as references. */
  readonly evidence: readonly ImageReference[];
  readonly model: { readonly name: string; readonly version: string; readonly sha256: string };
  readonly parameters: Readonly<Record<string, string | number | boolean>>;
  readonly annotationCount: number;
  /**
   * Rectangle corners in the referenced image's total pixel matrix, (column, row) with (0, 0) the
   * top left corner of its top left pixel: COORDINATES_PER_PATCH numbers per annotation. Float32
   * when every value is exact in float32 (written as Point Coordinates Data), else Float64
   * (Double Point Coordinates Data).
   */
  readonly points: Float32Array | Float64Array;
  readonly measurements: readonly AnnMeasurement[];
  /** Whether the measurements include every embedding component (its UIDs differ then). */
  readonly withEmbedding: boolean;
  readonly contentTime?: Date;
}

export interface BuiltAnn {
  readonly dataset: Dataset;
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string;
  readonly sopInstanceUid: string;
  readonly annotationCount: number;
}

function firstString(source: DicomJsonDataset, tag: string): string | undefined {
  const v = source[tag]?.Value?.[0];
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

function validate(input: AnnInput): void {
  const where = 'buildBulkAnnotations';
  assertText(where, 'jobKey', input.jobKey);
  assertUid(
    where,
    'sourceMetadata StudyInstanceUID',
    firstString(input.sourceMetadata, Tag.StudyInstanceUID),
  );
  assertUid(
    where,
    'sourceMetadata SeriesInstanceUID',
    firstString(input.sourceMetadata, Tag.SeriesInstanceUID),
  );
  assertUid(where, 'referencedImage.sopInstanceUid', input.referencedImage.sopInstanceUid);
  const n = input.annotationCount;
  if (!Number.isInteger(n) || n < 1) {
    throw invalidArgument(
      where,
      'annotationCount',
      `must be at least 1 (an ANN group holds one or more), got ${n}`,
    );
  }
  if (input.points.length !== n * COORDINATES_PER_PATCH) {
    throw invalidArgument(
      where,
      'points',
      `holds ${input.points.length} numbers, ${n} rectangles need ${n * COORDINATES_PER_PATCH}`,
    );
  }
  const bad = input.points.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw invalidArgument(where, `points[${bad}]`, 'is not finite');
  if (!/^[0-9a-f]{64}$/.test(input.model.sha256)) {
    throw invalidArgument(where, 'model.sha256', 'must be hex sha256');
  }
  input.measurements.forEach((m, i) => {
    if (m.values.length !== n) {
      throw invalidArgument(
        where,
        `measurements[${i}] (${m.name.meaning})`,
        `has ${m.values.length} values for ${n} annotations`,
      );
    }
  });
}

function measurementItem(m: AnnMeasurement): Dataset {
  // Every annotation has a value, so no Annotation Index List (PS3.3 C.37.1.2: absent = all, in order).
  return {
    ConceptNameCodeSequence: codeSequence(m.name),
    MeasurementUnitsCodeSequence: codeSequence(m.unit),
    MeasurementValuesSequence: [{ FloatingPointValues: m.values }],
  };
}

/** Builds the ANN dataset (dcmjs naturalized form, columns as typed arrays); encode with encodePart10Parts. */
export function buildBulkAnnotations(input: AnnInput): BuiltAnn {
  validate(input);
  const uids = annUidsFor(input.jobKey, input.withEmbedding);
  const source = input.sourceMetadata;
  const studyInstanceUid = firstString(source, Tag.StudyInstanceUID)!;
  const sourceSeriesUid = firstString(source, Tag.SeriesInstanceUID)!;
  const now = input.contentTime ?? new Date();
  const parameters = [
    `modelSha256=${input.model.sha256}`,
    ...Object.entries(input.parameters).map(([k, v]) => `${k}=${v}`),
  ].join('; ');
  const group: Dataset = {
    AnnotationGroupNumber: 1,
    AnnotationGroupUID: uids.patchGroupUid,
    AnnotationGroupLabel: 'embedded patches',
    AnnotationGroupDescription:
      'The patches embedded by the model, as rectangles on level 0, with their tissue fraction and principal component scores',
    AnnotationGroupGenerationType: 'AUTOMATIC',
    AnnotationGroupAlgorithmIdentificationSequence: [
      {
        AlgorithmFamilyCodeSequence: codeSequence(ANN_CODES.artificialIntelligence),
        AlgorithmName: fitLo(input.model.name),
        AlgorithmVersion: fitLo(input.model.version),
        AlgorithmParameters: parameters.slice(0, LT_MAX_CHARS),
        AlgorithmSource: ANN_MANUFACTURER,
      },
    ],
    AnnotationPropertyCategoryCodeSequence: codeSequence(ANN_CODES.anatomicalStructure),
    AnnotationPropertyTypeCodeSequence: codeSequence(ANN_CODES.tissue),
    NumberOfAnnotations: input.annotationCount,
    AnnotationAppliesToAllOpticalPaths: 'YES',
    GraphicType: 'RECTANGLE',
    ...(input.points instanceof Float32Array
      ? { PointCoordinatesData: input.points }
      : { DoublePointCoordinatesData: input.points }),
    MeasurementsSequence: input.measurements.map(measurementItem),
  };
  const references = new Map<string, ImageReference>();
  for (const ref of [input.referencedImage, ...input.evidence]) references.set(ref.sopInstanceUid, ref);
  const dataset: Dataset = {
    ...sopCommon(SopClass.MicroscopyBulkSimpleAnnotations, uids.sopInstanceUid, now),
    ...copyPatientAndStudy(source),
    StudyInstanceUID: studyInstanceUid,
    Modality: 'ANN',
    SeriesInstanceUID: uids.seriesInstanceUid,
    SeriesNumber: ANN_SERIES_NUMBER,
    SeriesDescription: fitLo(`Patch embeddings (${input.model.name} ${input.model.version})`),
    SeriesDate: dicomDate(now),
    SeriesTime: dicomTime(now),
    // General Series: Laterality is type 2C (paired body parts). A slide seldom says; empty is
    // DICOM's "unknown", which is what the job knows then (dciodvfy warns, docs/ann.md).
    Laterality: firstString(source, Tag.Laterality) ?? '',
    Manufacturer: ANN_MANUFACTURER,
    ManufacturerModelName: ANN_MANUFACTURER,
    DeviceSerialNumber: DEVICE_SERIAL_NUMBER,
    SoftwareVersions: SOFTWARE_VERSION,
    InstanceNumber: ANN_INSTANCE_NUMBER,
    ContentLabel: CONTENT_LABEL,
    ContentDescription: fitLo(`Patches embedded by ${input.model.name} ${input.model.version}`),
    ContentCreatorName: '',
    ContentDate: dicomDate(now),
    ContentTime: dicomTime(now),
    AnnotationCoordinateType: '2D',
    // Coordinates are in the total pixel matrix, not per frame (PS3.3 C.37.1.2).
    PixelOriginInterpretation: 'VOLUME',
    ReferencedImageSequence: [
      {
        ReferencedSOPClassUID: input.referencedImage.sopClassUid,
        ReferencedSOPInstanceUID: input.referencedImage.sopInstanceUid,
      },
    ],
    ReferencedSeriesSequence: [
      {
        SeriesInstanceUID: sourceSeriesUid,
        ReferencedInstanceSequence: [...references.values()].map((r) => ({
          ReferencedSOPClassUID: r.sopClassUid,
          ReferencedSOPInstanceUID: r.sopInstanceUid,
        })),
      },
    ],
    AnnotationGroupSequence: [group],
  };
  return {
    dataset,
    studyInstanceUid,
    seriesInstanceUid: uids.seriesInstanceUid,
    sopInstanceUid: uids.sopInstanceUid,
    annotationCount: input.annotationCount,
  };
}
