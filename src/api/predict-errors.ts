/**
 * Error codes of Google's Path Foundation serving API (/predict), and the one table mapping this
 * service's registry codes onto them. A prediction that fails carries
 * `{ error: { code, description } }` with these codes, so clients written against Google's
 * endpoint (EZ-WSI DICOMweb) handle our errors as they handle Google's.
 */
import type { ErrorCode } from '../errors.js';
import { isPathembedError } from '../errors.js';

export const PREDICT_ERROR_CODES = [
  'INTERNAL_ERROR',
  'INVALID_REQUEST_FIELD_ERROR',
  'INVALID_CREDENTIALS_ERROR',
  'HTTP_ERROR',
  'DICOM_PATH_ERROR',
  'UNAPPROVED_DICOM_STORE_ERROR',
  'TOO_MANY_PATCHES_ERROR',
  'LEVEL_NOT_FOUND_ERROR',
  'INVALID_ICC_PROFILE_TRANSFORM_ERROR',
  'IMAGE_DIMENSION_ERROR',
  'DICOM_TILED_FULL_ERROR',
  'DICOM_ERROR',
  'DICOM_IMAGE_DOWNSAMPLING_TOO_LARGE_ERROR',
  'PATCH_OUTSIDE_OF_IMAGE_DIMENSIONS_ERROR',
  'PATCH_DIMENSIONS_DO_NOT_MATCH_ENDPOINT_INPUT_DIMENSIONS_ERROR',
  'IMAGE_ERROR',
  'INSTANCES_NOT_CONCATENATED_ERROR',
  'EZ_WSI_STATE_ERROR',
  'INVALID_RESPONSE_ERROR',
  'GCS_IMAGE_PATH_FORMAT_ERROR',
  'UNAPPROVED_GCS_BUCKET_ERROR',
] as const;
export type PredictErrorCode = (typeof PREDICT_ERROR_CODES)[number];

/** Google truncates descriptions to this many characters; so do we. */
export const MAX_DESCRIPTION_CHARS = 1024;

/**
 * Registry code → Path Foundation code. Partial so that a code added to the registry does not break
 * the build; a unit test fails until it is mapped here, and until then it maps to INTERNAL_ERROR.
 */
export const PREDICT_CODE_OF: Partial<Record<ErrorCode, PredictErrorCode>> = {
  CONFIG_INVALID: 'INTERNAL_ERROR',
  INVALID_ARGUMENT: 'INVALID_REQUEST_FIELD_ERROR',
  INVALID_SERIES_REFERENCE: 'DICOM_PATH_ERROR',
  UNAPPROVED_DICOM_STORE: 'UNAPPROVED_DICOM_STORE_ERROR',
  UNAUTHORIZED: 'INVALID_CREDENTIALS_ERROR',
  NOT_FOUND: 'DICOM_PATH_ERROR',
  PAYLOAD_TOO_LARGE: 'TOO_MANY_PATCHES_ERROR',
  TOO_MANY_JOBS: 'INTERNAL_ERROR',
  INVALID_SEARCH_FILTER: 'INVALID_REQUEST_FIELD_ERROR',
  NO_SLIDE_SERIES: 'DICOM_ERROR',
  DICOMWEB_HTTP_ERROR: 'HTTP_ERROR',
  // Google answers a series or instance the store does not have with DICOM_PATH_ERROR ("could not
  // find DICOM imaging"), not as an HTTP failure.
  DICOMWEB_NOT_FOUND: 'DICOM_PATH_ERROR',
  DICOMWEB_UNAUTHORIZED: 'INVALID_CREDENTIALS_ERROR',
  DICOMWEB_UNAVAILABLE: 'HTTP_ERROR',
  DICOMWEB_TIMEOUT: 'HTTP_ERROR',
  DICOMWEB_BAD_RESPONSE: 'HTTP_ERROR',
  STOW_FAILED: 'HTTP_ERROR',
  AUTH_FAILED: 'INVALID_CREDENTIALS_ERROR',
  NOT_A_WSI: 'DICOM_ERROR',
  UNSUPPORTED_WSI: 'DICOM_ERROR',
  DICOM_TILED_FULL_ERROR: 'DICOM_TILED_FULL_ERROR',
  INVALID_DICOM: 'DICOM_ERROR',
  NO_MATCHING_LEVEL: 'LEVEL_NOT_FOUND_ERROR',
  PATCH_OUTSIDE_IMAGE: 'PATCH_OUTSIDE_OF_IMAGE_DIMENSIONS_ERROR',
  RESIZE_DOWNSAMPLING_TOO_LARGE: 'DICOM_IMAGE_DOWNSAMPLING_TOO_LARGE_ERROR',
  IMAGE_DIMENSION_TOO_LARGE: 'IMAGE_DIMENSION_ERROR',
  INSTANCES_NOT_CONCATENATED: 'INSTANCES_NOT_CONCATENATED_ERROR',
  EZ_WSI_STATE_INVALID: 'EZ_WSI_STATE_ERROR',
  ICC_TRANSFORM_FAILED: 'INVALID_ICC_PROFILE_TRANSFORM_ERROR',
  GCS_READ_FAILED: 'HTTP_ERROR',
  GCS_UNAUTHORIZED: 'INVALID_CREDENTIALS_ERROR',
  UNAPPROVED_GCS_BUCKET: 'UNAPPROVED_GCS_BUCKET_ERROR',
  LOCAL_SOURCE_ERROR: 'IMAGE_ERROR',
  UNSUPPORTED_TRANSFER_SYNTAX: 'IMAGE_ERROR',
  UNSUPPORTED_PHOTOMETRIC: 'IMAGE_ERROR',
  FRAME_DECODE_ERROR: 'IMAGE_ERROR',
  // The worker's decoder, not the image: Google's server would have answered from a working one.
  FRAME_DECODER_UNAVAILABLE: 'INTERNAL_ERROR',
  MODEL_NOT_FOUND: 'INTERNAL_ERROR',
  MODEL_CONTRACT_MISMATCH: 'INTERNAL_ERROR',
  EXECUTION_PROVIDER_UNAVAILABLE: 'INTERNAL_ERROR',
  JPEG_DECODER_UNAVAILABLE: 'INTERNAL_ERROR',
  GPU_PROVIDER_INVALID: 'INTERNAL_ERROR',
  INFERENCE_FAILED: 'INTERNAL_ERROR',
  // Path Foundation has no code for an unready or overloaded service; the description says which.
  SERVICE_UNAVAILABLE: 'INTERNAL_ERROR',
  PREDICT_TIMEOUT: 'INTERNAL_ERROR',
  JOB_CANCELLED: 'INTERNAL_ERROR',
  JOB_NOT_COMPLETED: 'INTERNAL_ERROR',
  RESULT_WRITE_FAILED: 'INTERNAL_ERROR',
  RESULT_STORE_UNAVAILABLE: 'INTERNAL_ERROR',
  INTERNAL: 'INTERNAL_ERROR',
};

export interface PredictError {
  readonly code: PredictErrorCode;
  readonly description: string;
}

export function predictError(code: PredictErrorCode, description: string): PredictError {
  return { code, description: description.slice(0, MAX_DESCRIPTION_CHARS) };
}

/** Any thrown value as a Path Foundation error (registry codes through the table). */
export function toPredictError(err: unknown): PredictError {
  if (isPathembedError(err)) return predictError(PREDICT_CODE_OF[err.code] ?? 'INTERNAL_ERROR', err.message);
  return predictError('INTERNAL_ERROR', err instanceof Error ? err.message : String(err));
}
