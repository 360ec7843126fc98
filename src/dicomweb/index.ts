/**
 * The DICOMweb wire, public API: series references, the allow-list, auth providers, the retry
 * policy, the multipart reader, the client (QIDO-RS, WADO-RS, STOW-RS) and the series frame source.
 */
export {
  type AuthProvider,
  bearerAuth,
  GOOGLE_HEALTHCARE_SCOPE,
  type GoogleAuthOptions,
  googleAuth,
  noAuth,
} from './auth.js';
export { ConcurrencyLimiter, StoreLimiters } from './concurrency-limiter.js';
export {
  DICOM_JSON,
  DicomWebClient,
  type DicomWebClientOptions,
  type DicomWebStats,
  type FetchFramesOptions,
  FRAMES_ACCEPT,
  type RequestOptions,
  WSI_INSTANCE_FIELDS,
} from './dicomweb-client.js';
export {
  encodeMultipart,
  type MultipartPart,
  type MultipartReadOptions,
  multipartBoundary,
  type ParsedContentType,
  parseContentType,
  readMultipart,
  transferSyntaxOf,
} from './multipart.js';
export {
  backoffDelayMs,
  decideRetry,
  parseRetryAfterMs,
  RETRYABLE_ERROR_CODES,
  RETRYABLE_STATUSES,
  type RetryDecision,
  type RetryPolicy,
} from './retry-policy.js';
export { isSameStore } from './same-store.js';
export {
  ACCEPTED_SERIES_FORMS,
  ACCEPTED_STUDY_FORMS,
  describeSeriesReference,
  formatSeriesUrl,
  formatStudyUrl,
  GOOGLE_HEALTHCARE_API_BASE,
  isValidUid,
  looksLikeStudyReference,
  normaliseBaseUrl,
  parseSeriesReference,
  parseStudyReference,
  redactReference,
  type SeriesReference,
  type SeriesReferenceInput,
  type StudyReference,
  type StudyReferenceInput,
} from './series-reference.js';
export {
  type FoundSlides,
  findStudySlides,
  MAX_FILTER_VALUE_CHARS,
  parseSearchSpec,
  SEARCH_FILTER_KEYS,
  SEARCH_PAGE_SIZE,
  type SearchOptions,
  type SearchSpec,
  type SkippedSeries,
  searchSlides,
} from './slide-series-search.js';
export {
  type AllowedStore,
  assertApprovedStore,
  isApprovedStore,
  parseAllowList,
  safeUrlForMessage,
} from './store-allow-list.js';
export type { StowFailure, StowReference, StowResult } from './stow-response.js';
