/**
 * Coded concepts the embedding SR uses: DICOM (DCM), SNOMED CT (SCT), UCUM units and the private
 * scheme 99PATHEMBED for what no standard names (the embedding components, patch size and count).
 * Every code is spelled here once; docs/sr.md lists the private ones.
 */
import { PathembedError } from '../../errors.js';

export interface Code {
  readonly value: string;
  readonly scheme: string;
  readonly meaning: string;
}

/** CodeValue is SH (16 chars), CodeMeaning LO (64 chars); checked so a bad code fails at build time. */
const MAX_CODE_VALUE_CHARS = 16;
const MAX_CODE_MEANING_CHARS = 64;

export function code(value: string, scheme: string, meaning: string): Code {
  if (value.length === 0 || value.length > MAX_CODE_VALUE_CHARS) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `code value '${value}' must be 1-${MAX_CODE_VALUE_CHARS} characters`,
      {
        argument: 'value',
      },
    );
  }
  if (meaning.length === 0 || meaning.length > MAX_CODE_MEANING_CHARS) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `code meaning '${meaning}' must be 1-${MAX_CODE_MEANING_CHARS} characters`,
      { argument: 'meaning' },
    );
  }
  return { value, scheme, meaning };
}

/** The private coding scheme; "99" marks a private designator (PS3.16 8.2). */
export const PRIVATE_SCHEME = '99PATHEMBED';
export const PRIVATE_SCHEME_NAME = 'pathembed private codes';
export const PRIVATE_SCHEME_ORGANIZATION = 'pathembed project';

export const DCM = {
  imagingMeasurementReport: code('126000', 'DCM', 'Imaging Measurement Report'),
  languageOfContent: code('121049', 'DCM', 'Language of Content Item and Descendants'),
  observerType: code('121005', 'DCM', 'Observer Type'),
  device: code('121007', 'DCM', 'Device'),
  deviceObserverUid: code('121012', 'DCM', 'Device Observer UID'),
  deviceObserverName: code('121013', 'DCM', 'Device Observer Name'),
  deviceObserverManufacturer: code('121014', 'DCM', 'Device Observer Manufacturer'),
  deviceObserverModelName: code('121015', 'DCM', 'Device Observer Model Name'),
  subjectClass: code('121024', 'DCM', 'Subject Class'),
  specimen: code('121027', 'DCM', 'Specimen'),
  specimenUid: code('121039', 'DCM', 'Specimen UID'),
  specimenIdentifier: code('121041', 'DCM', 'Specimen Identifier'),
  specimenContainerIdentifier: code('111700', 'DCM', 'Specimen Container Identifier'),
  procedureReported: code('121058', 'DCM', 'Procedure reported'),
  wholeSlideImaging: code('112703', 'DCM', 'Whole Slide Imaging'),
  imageLibrary: code('111028', 'DCM', 'Image Library'),
  imageLibraryGroup: code('126200', 'DCM', 'Image Library Group'),
  imagingMeasurements: code('126010', 'DCM', 'Imaging Measurements'),
  measurementGroup: code('125007', 'DCM', 'Measurement Group'),
  trackingIdentifier: code('112039', 'DCM', 'Tracking Identifier'),
  trackingUniqueIdentifier: code('112040', 'DCM', 'Tracking Unique Identifier'),
  imageRegion: code('111030', 'DCM', 'Image Region'),
  algorithmName: code('111001', 'DCM', 'Algorithm Name'),
  algorithmVersion: code('111003', 'DCM', 'Algorithm Version'),
  algorithmParameters: code('111002', 'DCM', 'Algorithm Parameters'),
  horizontalPixelSpacing: code('111026', 'DCM', 'Horizontal Pixel Spacing'),
  verticalPixelSpacing: code('111066', 'DCM', 'Vertical Pixel Spacing'),
  finding: code('121071', 'DCM', 'Finding'),
  comment: code('121106', 'DCM', 'Comment'),
} as const;

export const SCT = {
  source: code('260753009', 'SCT', 'Source'),
} as const;

export const RFC5646 = {
  englishUs: code('en-US', 'RFC5646', 'English (United States)'),
} as const;

export const UCUM = {
  noUnits: code('1', 'UCUM', 'no units'),
  micrometer: code('um', 'UCUM', 'micrometer'),
  pixels: code('{pixels}', 'UCUM', 'pixels'),
  patches: code('{patches}', 'UCUM', 'patches'),
} as const;

export const PRIVATE = {
  slideMeanEmbedding: code('EMBMEAN', PRIVATE_SCHEME, 'Slide-level mean embedding'),
  patchEmbedding: code('EMBPATCH', PRIVATE_SCHEME, 'Patch embedding'),
  patchSize: code('PATCHSIZE', PRIVATE_SCHEME, 'Patch size'),
  patchCount: code('PATCHCOUNT', PRIVATE_SCHEME, 'Number of patches embedded'),
} as const;

/** Component codes are EMB0000 … EMB9999; four digits cover any embedding width up to 10,000. */
const COMPONENT_DIGITS = 4;
const MAX_COMPONENTS = 10 ** COMPONENT_DIGITS;

/** The code of embedding component `i` (0-based): EMB0000 … EMB0383 for Path Foundation. */
export function embeddingComponentCode(i: number): Code {
  if (!Number.isInteger(i) || i < 0 || i >= MAX_COMPONENTS) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `embedding component index ${i} is outside 0-${MAX_COMPONENTS - 1}`,
      {
        argument: 'i',
      },
    );
  }
  return code(`EMB${String(i).padStart(COMPONENT_DIGITS, '0')}`, PRIVATE_SCHEME, `Embedding component ${i}`);
}
