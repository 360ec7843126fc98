/**
 * SR templates (PS3.16) as builder functions named after their TID, in the spirit of highdicom:
 * each takes typed options, checks them up front naming the bad argument, and returns the
 * content items the template defines. Only the rows this project fills are implemented.
 */
import type { Code } from './codes.js';
import { DCM, RFC5646, SCT } from './codes.js';
import {
  assertText,
  assertUid,
  codeItem,
  containerItem,
  type Dataset,
  type ImageReference,
  imageItem,
  invalidArgument,
  type RelationshipType,
  scoordItem,
  textItem,
  uidrefItem,
} from './content-items.js';

/** TID 1204 Language of Content Item and Descendants. */
export function languageOfContent(language: Code = RFC5646.englishUs): Dataset[] {
  return [codeItem('HAS CONCEPT MOD', DCM.languageOfContent, language)];
}

export interface DeviceObserver {
  readonly uid: string;
  readonly name: string;
  readonly manufacturer?: string;
  readonly modelName?: string;
}

/** TID 1004 Device Observer Identifying Attributes, preceded by Observer Type = Device (TID 1002). */
export function deviceObserverContext(device: DeviceObserver): Dataset[] {
  assertUid('TID 1004 Device Observer', 'uid', device.uid);
  assertText('TID 1004 Device Observer', 'name', device.name);
  const items = [
    codeItem('HAS OBS CONTEXT', DCM.observerType, DCM.device),
    uidrefItem('HAS OBS CONTEXT', DCM.deviceObserverUid, device.uid),
    textItem('HAS OBS CONTEXT', DCM.deviceObserverName, device.name),
  ];
  if (device.manufacturer)
    items.push(textItem('HAS OBS CONTEXT', DCM.deviceObserverManufacturer, device.manufacturer));
  if (device.modelName)
    items.push(textItem('HAS OBS CONTEXT', DCM.deviceObserverModelName, device.modelName));
  return items;
}

export interface SpecimenSubject {
  readonly specimenUid: string;
  readonly specimenIdentifier?: string;
  readonly containerIdentifier?: string;
}

/** TID 1009 Subject Context, Specimen (with Subject Class = Specimen from TID 1006). */
export function specimenSubjectContext(specimen: SpecimenSubject): Dataset[] {
  assertUid('TID 1009 Subject Context, Specimen', 'specimenUid', specimen.specimenUid);
  const items = [
    codeItem('HAS OBS CONTEXT', DCM.subjectClass, DCM.specimen),
    uidrefItem('HAS OBS CONTEXT', DCM.specimenUid, specimen.specimenUid),
  ];
  if (specimen.specimenIdentifier) {
    items.push(textItem('HAS OBS CONTEXT', DCM.specimenIdentifier, specimen.specimenIdentifier));
  }
  if (specimen.containerIdentifier) {
    items.push(textItem('HAS OBS CONTEXT', DCM.specimenContainerIdentifier, specimen.containerIdentifier));
  }
  return items;
}

/** TID 1001 Observation Context: the observer (a device here) and, for a slide, the specimen. */
export function observationContext(options: {
  device: DeviceObserver;
  specimen?: SpecimenSubject;
}): Dataset[] {
  return [
    ...deviceObserverContext(options.device),
    ...(options.specimen ? specimenSubjectContext(options.specimen) : []),
  ];
}

export interface AlgorithmIdentificationOptions {
  readonly name: string;
  readonly version: string;
  /** Free-text parameters, one item each ("pixelSpacingUm=0.5"). */
  readonly parameters?: readonly string[];
}

/** TID 4019 Algorithm Identification. */
export function algorithmIdentification(options: AlgorithmIdentificationOptions): Dataset[] {
  assertText('TID 4019 Algorithm Identification', 'name', options.name);
  assertText('TID 4019 Algorithm Identification', 'version', options.version);
  const parameters = options.parameters ?? [];
  parameters.forEach((p, i) => {
    assertText('TID 4019 Algorithm Identification', `parameters[${i}]`, p);
  });
  return [
    textItem('HAS CONCEPT MOD', DCM.algorithmName, options.name),
    textItem('HAS CONCEPT MOD', DCM.algorithmVersion, options.version),
    ...parameters.map((p) => textItem('HAS CONCEPT MOD', DCM.algorithmParameters, p)),
  ];
}

/** TID 1600 Image Library: one group listing the images the measurements were made on. */
export function imageLibrary(images: readonly ImageReference[]): Dataset {
  if (images.length === 0) throw invalidArgument('TID 1600 Image Library', 'images', 'must not be empty');
  return containerItem('CONTAINS', DCM.imageLibrary, [
    containerItem(
      'CONTAINS',
      DCM.imageLibraryGroup,
      images.map((image) => imageItem('CONTAINS', SCT.source, image)),
    ),
  ]);
}

export interface TrackingOptions {
  /** Human-readable name of the group. */
  readonly identifier: string;
  readonly uid: string;
}

function tracking(where: string, t: TrackingOptions): Dataset[] {
  assertText(where, 'tracking.identifier', t.identifier);
  assertUid(where, 'tracking.uid', t.uid);
  return [
    textItem('CONTAINS', DCM.trackingIdentifier, t.identifier),
    uidrefItem('CONTAINS', DCM.trackingUniqueIdentifier, t.uid),
  ];
}

export interface MeasurementGroupOptions {
  readonly tracking: TrackingOptions;
  readonly finding?: Code;
  readonly algorithm: AlgorithmIdentificationOptions;
  /** Images the measurements were derived from (TID 1501 "Source"). */
  readonly sourceImages?: readonly ImageReference[];
  /** NUM (and TEXT) items, CONTAINS. */
  readonly measurements: readonly Dataset[];
}

/** TID 1501 Measurement and Qualitative Evaluation Group (measurements of the whole image). */
export function measurementGroup(options: MeasurementGroupOptions): Dataset {
  const where = 'TID 1501 Measurement Group';
  if (options.measurements.length === 0) throw invalidArgument(where, 'measurements', 'must not be empty');
  return containerItem('CONTAINS', DCM.measurementGroup, [
    ...tracking(where, options.tracking),
    ...(options.finding ? [codeItem('CONTAINS', DCM.finding, options.finding)] : []),
    ...(options.sourceImages ?? []).map((image) => imageItem('CONTAINS', SCT.source, image)),
    ...algorithmIdentification(options.algorithm),
    ...options.measurements,
  ]);
}

export interface PlanarRoiGroupOptions extends Omit<MeasurementGroupOptions, 'sourceImages'> {
  /** Closed polygon (first point repeated last) in the image's total pixel matrix. */
  readonly region: ReadonlyArray<readonly [number, number]>;
  readonly image: ImageReference;
}

/** TID 1410 Planar ROI Measurements and Qualitative Evaluations: measurements of one image region. */
export function planarRoiMeasurementGroup(options: PlanarRoiGroupOptions): Dataset {
  const where = 'TID 1410 Planar ROI Measurements';
  if (options.measurements.length === 0) throw invalidArgument(where, 'measurements', 'must not be empty');
  const first = options.region[0];
  const last = options.region[options.region.length - 1];
  if (options.region.length < 4 || !first || !last || first[0] !== last[0] || first[1] !== last[1]) {
    throw invalidArgument(
      where,
      'region',
      'must be a closed polygon (3+ vertices, first point repeated last)',
    );
  }
  return containerItem('CONTAINS', DCM.measurementGroup, [
    ...tracking(where, options.tracking),
    scoordItem('CONTAINS', DCM.imageRegion, 'POLYLINE', options.region, options.image, 'VOLUME'),
    ...(options.finding ? [codeItem('CONTAINS', DCM.finding, options.finding)] : []),
    ...algorithmIdentification(options.algorithm),
    ...options.measurements,
  ]);
}

export interface MeasurementReportOptions {
  readonly observationContext: readonly Dataset[];
  readonly procedureReported: Code;
  readonly imageLibrary: Dataset;
  readonly measurementGroups: readonly Dataset[];
  readonly language?: Code;
}

/** TID 1500 Measurement Report: the document's root container. */
export function measurementReport(options: MeasurementReportOptions): Dataset {
  if (options.measurementGroups.length === 0) {
    throw invalidArgument('TID 1500 Measurement Report', 'measurementGroups', 'must not be empty');
  }
  const relationshipOfGroups: RelationshipType = 'CONTAINS';
  return containerItem(
    undefined,
    DCM.imagingMeasurementReport,
    [
      ...languageOfContent(options.language),
      ...options.observationContext,
      codeItem('HAS CONCEPT MOD', DCM.procedureReported, options.procedureReported),
      options.imageLibrary,
      containerItem(relationshipOfGroups, DCM.imagingMeasurements, options.measurementGroups),
    ],
    { templateId: '1500' },
  );
}
