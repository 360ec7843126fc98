/**
 * DICOM UIDs the service names: transfer syntaxes, SOP classes and root OIDs, in one place so no
 * module spells a UID literal of its own.
 */

export const TransferSyntax = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
  DeflatedExplicitVRLittleEndian: '1.2.840.10008.1.2.1.99',
  ExplicitVRBigEndian: '1.2.840.10008.1.2.2',
  JpegBaseline: '1.2.840.10008.1.2.4.50',
  JpegExtended: '1.2.840.10008.1.2.4.51',
  JpegLossless: '1.2.840.10008.1.2.4.57',
  JpegLosslessSV1: '1.2.840.10008.1.2.4.70',
  JpegLsLossless: '1.2.840.10008.1.2.4.80',
  JpegLsNearLossless: '1.2.840.10008.1.2.4.81',
  Jpeg2000Lossless: '1.2.840.10008.1.2.4.90',
  Jpeg2000: '1.2.840.10008.1.2.4.91',
  HtJpeg2000Lossless: '1.2.840.10008.1.2.4.201',
  HtJpeg2000RpclLossless: '1.2.840.10008.1.2.4.202',
  HtJpeg2000: '1.2.840.10008.1.2.4.203',
  RleLossless: '1.2.840.10008.1.2.5',
} as const;

export type TransferSyntaxUid = (typeof TransferSyntax)[keyof typeof TransferSyntax];

export const SopClass = {
  VLWholeSlideMicroscopyImage: '1.2.840.10008.5.1.4.1.1.77.1.6',
  ComprehensiveSR: '1.2.840.10008.5.1.4.1.1.88.33',
  EnhancedSR: '1.2.840.10008.5.1.4.1.1.88.22',
  MicroscopyBulkSimpleAnnotations: '1.2.840.10008.5.1.4.1.1.91.1',
  Segmentation: '1.2.840.10008.5.1.4.1.1.66.4',
  ParametricMap: '1.2.840.10008.5.1.4.1.1.30',
} as const;

/** Root for UUID-derived UIDs (PS3.5 B.2): "2.25." followed by the UUID as one decimal integer. */
export const UUID_UID_ROOT = '2.25';
