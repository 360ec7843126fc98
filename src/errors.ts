/**
 * The error registry: every error the service can raise, with its stable code, HTTP status and
 * whether retrying can help. Code elsewhere throws `new PathembedError('CODE', message, details)`;
 * the API maps `httpStatus`, the queue uses `retryable` to decide between a retry and failing at
 * once. docs/errors.md lists every code, and a test fails when one is missing there.
 */

export interface ErrorSpec {
  /** HTTP status the API answers with. */
  readonly httpStatus: number;
  /** True when the same call may succeed later (network, store overload); false for bad input. */
  readonly retryable: boolean;
  /** One line for docs/errors.md: what the code means. */
  readonly summary: string;
}

export const ERROR_CODES = {
  // Input and configuration
  CONFIG_INVALID: {
    httpStatus: 500,
    retryable: false,
    summary: 'An environment variable has an invalid value.',
  },
  INVALID_ARGUMENT: {
    httpStatus: 400,
    retryable: false,
    summary: 'A request or command argument is invalid.',
  },
  INVALID_SERIES_REFERENCE: {
    httpStatus: 400,
    retryable: false,
    summary:
      'A series reference is not a DICOMweb series URL, a Google Healthcare series path or base+study+series.',
  },
  UNAPPROVED_DICOM_STORE: {
    httpStatus: 403,
    retryable: false,
    summary: 'The DICOMweb store is not on the allow-list (PATHEMBED_ALLOWED_STORES).',
  },
  UNAUTHORIZED: { httpStatus: 401, retryable: false, summary: 'The API key is missing or wrong.' },
  NOT_FOUND: { httpStatus: 404, retryable: false, summary: 'The job or resource does not exist.' },
  PAYLOAD_TOO_LARGE: {
    httpStatus: 413,
    retryable: false,
    summary: 'A request or a job exceeds a configured limit.',
  },
  TOO_MANY_JOBS: { httpStatus: 429, retryable: true, summary: 'Too many jobs in flight for this API key.' },
  INVALID_SEARCH_FILTER: {
    httpStatus: 400,
    retryable: false,
    summary: 'A search source filters on a key that is not on the QIDO allow-list, or with a bad value.',
  },
  NO_SLIDE_SERIES: {
    httpStatus: 422,
    retryable: false,
    summary:
      'The studies and searches of a request matched no series holding a VOLUME whole-slide image (skipped series are listed).',
  },

  // DICOMweb wire
  DICOMWEB_HTTP_ERROR: {
    httpStatus: 502,
    retryable: false,
    summary: 'The DICOMweb store answered with an error status.',
  },
  DICOMWEB_NOT_FOUND: {
    httpStatus: 404,
    retryable: false,
    summary: 'The store has no such study, series, instance or frame.',
  },
  DICOMWEB_UNAUTHORIZED: {
    httpStatus: 401,
    retryable: false,
    summary: 'The store refused the credentials (401/403), even after one token refresh.',
  },
  DICOMWEB_UNAVAILABLE: {
    httpStatus: 503,
    retryable: true,
    summary: 'The store kept failing (408, 429, 5xx, connection errors) after all retries.',
  },
  DICOMWEB_TIMEOUT: {
    httpStatus: 504,
    retryable: true,
    summary: 'A request to the store timed out after all retries.',
  },
  DICOMWEB_BAD_RESPONSE: {
    httpStatus: 502,
    retryable: false,
    summary: 'The store answered with a body that is not valid DICOM JSON or multipart.',
  },
  STOW_FAILED: {
    httpStatus: 502,
    retryable: false,
    summary: 'The store refused the STOW-RS upload of a result.',
  },
  AUTH_FAILED: {
    httpStatus: 500,
    retryable: false,
    summary: 'No credentials could be obtained (Application Default Credentials).',
  },

  // Slide model
  NOT_A_WSI: {
    httpStatus: 422,
    retryable: false,
    summary: 'The series holds no VL Whole Slide Microscopy VOLUME image.',
  },
  UNSUPPORTED_WSI: {
    httpStatus: 422,
    retryable: false,
    summary:
      'The slide uses a feature the service does not read (focal planes, optical paths, bit depth, fluorescence).',
  },
  DICOM_TILED_FULL_ERROR: {
    httpStatus: 422,
    retryable: false,
    summary: 'A TILED_FULL level has a frame count that does not match its tile grid.',
  },
  INVALID_DICOM: {
    httpStatus: 422,
    retryable: false,
    summary: 'A DICOM dataset lacks a required attribute or has a wrong value.',
  },
  NO_MATCHING_LEVEL: {
    httpStatus: 422,
    retryable: false,
    summary:
      'No level can serve the requested pixel spacing (needs more than 8x downsampling or upsampling).',
  },
  RESIZE_DOWNSAMPLING_TOO_LARGE: {
    httpStatus: 400,
    retryable: false,
    summary:
      "A predict request asks to resize a DICOM level to dimensions that need more than 8x downsampling (Path Foundation's limit).",
  },
  IMAGE_DIMENSION_TOO_LARGE: {
    httpStatus: 400,
    retryable: false,
    summary: "A predict request asks to resize an image beyond 10000 px on a side (Path Foundation's limit).",
  },
  INSTANCES_NOT_CONCATENATED: {
    httpStatus: 400,
    retryable: false,
    summary: 'A predict request names instances of more than one pyramid level in one dicom_path.',
  },
  EZ_WSI_STATE_INVALID: {
    httpStatus: 400,
    retryable: false,
    summary: 'The ez_wsi_state extension of a predict request is malformed.',
  },
  GCS_READ_FAILED: {
    httpStatus: 502,
    retryable: true,
    summary: 'Cloud Storage did not return the image_file_uri object (missing object, store error, timeout).',
  },
  GCS_UNAUTHORIZED: {
    httpStatus: 401,
    retryable: false,
    summary:
      "Cloud Storage refused the credentials (the request's bearer_token, or the service's ADC) for image_file_uri.",
  },
  UNAPPROVED_GCS_BUCKET: {
    httpStatus: 403,
    retryable: false,
    summary: 'The image_file_uri is not under an approved Cloud Storage prefix (PATHEMBED_ALLOWED_GCS).',
  },
  ICC_TRANSFORM_FAILED: {
    httpStatus: 422,
    retryable: false,
    summary: "The slide's or image's ICC profile could not be read or transformed to the requested profile.",
  },
  PATCH_OUTSIDE_IMAGE: {
    httpStatus: 400,
    retryable: false,
    summary: 'A patch lies partly outside the image and the caller required it fully inside.',
  },
  LOCAL_SOURCE_ERROR: {
    httpStatus: 422,
    retryable: false,
    summary: 'A local folder cannot be read as a DICOM slide.',
  },

  // Codecs
  UNSUPPORTED_TRANSFER_SYNTAX: {
    httpStatus: 422,
    retryable: false,
    summary: 'A frame uses a transfer syntax with no decoder.',
  },
  UNSUPPORTED_PHOTOMETRIC: {
    httpStatus: 422,
    retryable: false,
    summary: 'A frame uses a photometric interpretation the decoder cannot turn into RGB.',
  },
  FRAME_DECODE_ERROR: {
    httpStatus: 422,
    retryable: false,
    summary: 'A frame could not be decoded (corrupt codestream).',
  },
  FRAME_DECODER_UNAVAILABLE: {
    httpStatus: 500,
    retryable: true,
    summary:
      "A frame decoder could not be loaded, or the decode workers stopped before they were ready: the fault is this worker's, not the frame's, so `frameErrors: skip` never skips it and the job is retried.",
  },

  // Model
  MODEL_NOT_FOUND: {
    httpStatus: 500,
    retryable: false,
    summary: 'The ONNX model file does not exist; run `pathembed model build`.',
  },
  MODEL_CONTRACT_MISMATCH: {
    httpStatus: 500,
    retryable: false,
    summary: 'The ONNX model does not take [N,224,224,3] float32 and return [N,384] float32.',
  },
  JPEG_DECODER_UNAVAILABLE: {
    httpStatus: 500,
    retryable: false,
    summary:
      "PATHEMBED_JPEG_DECODER=native, but libjpeg-turbo's TurboJPEG library (PATHEMBED_LIBTURBOJPEG) cannot be loaded.",
  },
  EXECUTION_PROVIDER_UNAVAILABLE: {
    httpStatus: 500,
    retryable: false,
    summary: 'The configured execution provider (cuda, tensorrt) cannot be loaded on this machine.',
  },
  GPU_PROVIDER_INVALID: {
    httpStatus: 500,
    retryable: false,
    summary:
      'A GPU provider library is missing, differs from its pinned sha256, or does not match the installed onnxruntime-node release.',
  },
  INFERENCE_FAILED: {
    httpStatus: 500,
    retryable: true,
    summary: 'ONNX Runtime failed while running a batch.',
  },

  // Service readiness
  SERVICE_UNAVAILABLE: {
    httpStatus: 503,
    retryable: true,
    summary:
      'The service cannot take work yet: no worker has published its model (start `pathembed worker`; GET /readyz says when it is ready) or Redis is unreachable.',
  },
  PREDICT_TIMEOUT: {
    httpStatus: 504,
    retryable: true,
    summary:
      '/v1/predict waited PATHEMBED_PREDICT_TIMEOUT_MS for the workers without an answer (none running, or all busy).',
  },

  // Pipeline and jobs
  JOB_CANCELLED: { httpStatus: 409, retryable: false, summary: 'The job was cancelled.' },
  JOB_NOT_COMPLETED: {
    httpStatus: 409,
    retryable: true,
    summary: 'The job has not completed (or failed or was cancelled), so it has no result to search yet.',
  },
  RESULT_WRITE_FAILED: {
    httpStatus: 500,
    retryable: true,
    summary:
      'A result (JSON, SR, plan or chunk file) could not be written, e.g. the results disk is full; its temporary file is removed.',
  },
  RESULT_STORE_UNAVAILABLE: {
    httpStatus: 503,
    retryable: true,
    summary:
      'The result store (folder or S3 bucket) could not be read: the object store answered 5xx or could not be reached.',
  },
  INTERNAL: { httpStatus: 500, retryable: false, summary: 'An unexpected error; the message says where.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The one error base of the service. `details` must never carry secrets (tokens, keys). */
export class PathembedError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'PathembedError';
    this.code = code;
    this.details = details;
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code].httpStatus;
  }

  get retryable(): boolean {
    return ERROR_CODES[this.code].retryable;
  }

  toJSON(): { code: ErrorCode; message: string; details: Readonly<Record<string, unknown>> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export function isPathembedError(err: unknown, code?: ErrorCode): err is PathembedError {
  return err instanceof PathembedError && (code === undefined || err.code === code);
}

/** Wraps anything thrown into a PathembedError, keeping typed ones as they are. */
export function toPathembedError(err: unknown, where: string): PathembedError {
  if (err instanceof PathembedError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new PathembedError('INTERNAL', `${where}: ${message}`, {}, { cause: err });
}
