/**
 * Series references: the one place that turns what a user types (a DICOMweb series URL, a Google
 * Healthcare store URL or short path, or a base+study+series object) into a validated
 * `SeriesReference`, and back into a URL. Everything downstream trusts the UIDs and base URL it
 * holds, so validation is strict here and the errors list the accepted forms.
 */
import { PathembedError } from '../errors.js';

/** A series in a DICOMweb store. `baseUrl` has no trailing slash, no query and no credentials. */
export interface SeriesReference {
  readonly baseUrl: string;
  readonly studyUid: string;
  readonly seriesUid: string;
  /** Restricts the series to these instances (a URL ending in `/instances/<uid>` gives one). */
  readonly instanceUids?: readonly string[];
}

/** What `parseSeriesReference` accepts: a string in one of the documented forms, or the parts. */
export type SeriesReferenceInput =
  | string
  | {
      readonly baseUrl: string;
      readonly studyUid: string;
      readonly seriesUid: string;
      readonly instanceUids?: readonly string[];
    };

/** Base of the Google Cloud Healthcare API that the short `projects/...` form resolves against. */
export const GOOGLE_HEALTHCARE_API_BASE = 'https://healthcare.googleapis.com/v1';
const GOOGLE_HEALTHCARE_HOST = 'healthcare.googleapis.com';

/** PS3.5 §9.1: a UID is at most 64 characters. */
export const MAX_UID_LENGTH = 64;
/** Digits in dot-separated, non-empty components (PS3.5 §9.1). */
const UID_PATTERN = /^[0-9]+(\.[0-9]+)*$/;

/** Shown in every INVALID_SERIES_REFERENCE message, so the user sees what would have worked. */
export const ACCEPTED_SERIES_FORMS = [
  '<base>/studies/<study uid>/series/<series uid>[/instances/<instance uid>] (a DICOMweb URL, http or https)',
  'https://healthcare.googleapis.com/v1/projects/P/locations/L/datasets/D/dicomStores/S/dicomWeb/studies/<uid>/series/<uid>',
  'projects/P/locations/L/datasets/D/dicomStores/S/dicomWeb/studies/<uid>/series/<uid> (Google Healthcare short form)',
  '{ baseUrl, studyUid, seriesUid, instanceUids? }',
] as const;

/** Shown when a study reference is refused: the study forms that batches and jobs accept. */
export const ACCEPTED_STUDY_FORMS = [
  '<base>/studies/<study uid> (a DICOMweb URL, http or https)',
  'https://healthcare.googleapis.com/v1/projects/P/locations/L/datasets/D/dicomStores/S/dicomWeb/studies/<uid>',
  'projects/P/locations/L/datasets/D/dicomStores/S/dicomWeb/studies/<uid> (Google Healthcare short form)',
  '{ baseUrl, studyUid }',
] as const;

/** A study in a DICOMweb store: expanded into its slide series by QIDO (slide-series-search.ts). */
export interface StudyReference {
  readonly baseUrl: string;
  readonly studyUid: string;
}

export type StudyReferenceInput = string | { readonly baseUrl: string; readonly studyUid: string };

const STUDY_PATH = /^(.*?)\/studies\/([^/]+)\/?$/;
const SERIES_PATH = /^(.*?)\/studies\/([^/]+)\/series\/([^/]+)(?:\/instances\/([^/]+))?\/?$/;
const GOOGLE_SHORT_FORM =
  /^\/?projects\/[^/]+\/locations\/[^/]+\/datasets\/[^/]+\/dicomStores\/[^/]+\/dicomWeb\//;
const GOOGLE_STORE_PATH =
  /^\/v1(?:beta1)?\/projects\/[^/]+\/locations\/[^/]+\/datasets\/[^/]+\/dicomStores\/[^/]+\/dicomWeb$/;

/** Longest echo of the user's input in a message. */
const MAX_SHOWN_INPUT_CHARS = 300;

/**
 * The input as it may be shown in a message: credentials, query and fragment replaced, because a
 * mistaken reference like `...?access_token=...` must not carry its secret into logs.
 */
export function redactReference(input: string): string {
  let shown = input;
  try {
    const url = new URL(input);
    if (url.username !== '' || url.password !== '') {
      url.username = 'REDACTED';
      url.password = '';
    }
    if (url.search !== '') url.search = '?REDACTED';
    if (url.hash !== '') url.hash = '#REDACTED';
    shown = url.href;
  } catch {
    // not a URL: shown as typed
  }
  return shown.length > MAX_SHOWN_INPUT_CHARS ? `${shown.slice(0, MAX_SHOWN_INPUT_CHARS)}…` : shown;
}

function invalid(input: string, problem: string, what: 'series' | 'study' = 'series'): PathembedError {
  const shown = redactReference(input);
  const acceptedForms = what === 'series' ? ACCEPTED_SERIES_FORMS : ACCEPTED_STUDY_FORMS;
  return new PathembedError(
    'INVALID_SERIES_REFERENCE',
    `Invalid ${what} reference ${JSON.stringify(shown)}: ${problem}. Accepted forms: ${acceptedForms.join('; ')}.`,
    { input: shown, problem, acceptedForms },
  );
}

/** True when `uid` is a syntactically valid DICOM UID (digits and dots, at most 64 characters). */
export function isValidUid(uid: string): boolean {
  return uid.length > 0 && uid.length <= MAX_UID_LENGTH && UID_PATTERN.test(uid);
}

function checkUid(input: string, what: string, uid: unknown): string {
  if (typeof uid !== 'string' || uid.length === 0) throw invalid(input, `the ${what} is missing`);
  if (uid.length > MAX_UID_LENGTH) {
    throw invalid(
      input,
      `the ${what} is ${uid.length} characters long; a DICOM UID has at most ${MAX_UID_LENGTH}`,
    );
  }
  if (!UID_PATTERN.test(uid)) {
    throw invalid(
      input,
      `the ${what} ${JSON.stringify(uid)} is not a DICOM UID (digits in dot-separated components, e.g. 1.2.840.113619.2.1)`,
    );
  }
  return uid;
}

function checkScheme(url: URL, input: string): void {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw invalid(input, `the scheme ${url.protocol.replace(/:$/, '')} is not http or https`);
  }
  // Credentials and queries would end up in logs, job records and SR references; tokens go through
  // PATHEMBED_AUTH instead.
  if (url.username !== '' || url.password !== '') {
    throw invalid(
      input,
      'the URL carries credentials (user:password@); pass them with PATHEMBED_AUTH / a bearer token instead',
    );
  }
  if (url.search !== '' || url.hash !== '') {
    throw invalid(input, 'the URL has a query string or fragment; give the plain DICOMweb path');
  }
}

function baseFrom(url: URL, basePath: string, input: string): string {
  const pathname = basePath.replace(/\/+$/, '');
  if (url.hostname === GOOGLE_HEALTHCARE_HOST && !GOOGLE_STORE_PATH.test(pathname)) {
    throw invalid(
      input,
      'a Google Healthcare URL must name the store as /v1/projects/P/locations/L/datasets/D/dicomStores/S/dicomWeb',
    );
  }
  return `${url.origin}${pathname}`;
}

/**
 * Validates and normalises a store base URL: http(s) only, no credentials, no query or fragment,
 * no trailing slash. Throws INVALID_SERIES_REFERENCE.
 */
export function normaliseBaseUrl(raw: string, input: string = raw): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid(input, `${JSON.stringify(raw)} is not an absolute URL`);
  }
  checkScheme(url, input);
  return baseFrom(url, url.pathname, input);
}

/** The input as an absolute URL (the Google short form resolved), scheme and credentials checked. */
function absoluteUrl(input: string, what: 'series' | 'study'): URL {
  const trimmed = input.trim();
  if (trimmed === '') throw invalid(input, 'it is empty', what);
  const absolute = GOOGLE_SHORT_FORM.test(trimmed)
    ? `${GOOGLE_HEALTHCARE_API_BASE}/${trimmed.replace(/^\//, '')}`
    : trimmed;
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(absolute)) {
    throw invalid(input, 'it is neither an http(s) URL nor a Google Healthcare projects/... path', what);
  }
  let url: URL;
  try {
    url = new URL(absolute);
  } catch {
    throw invalid(input, 'it is not a valid URL', what);
  }
  try {
    checkScheme(url, input);
  } catch (err) {
    if (what === 'series') throw err;
    throw invalid(input, (err as PathembedError).details.problem as string, what);
  }
  return url;
}

function fromString(input: string): SeriesReference {
  const url = absoluteUrl(input, 'series');
  const match = SERIES_PATH.exec(url.pathname);
  if (!match) {
    throw invalid(input, 'the path does not end in /studies/<study uid>/series/<series uid>');
  }
  const [, basePath, study, series, instance] = match;
  // Group 1 of SERIES_PATH is not optional, so it is always set (maybe empty) on a match.
  const baseUrl = baseFrom(url, basePath!, input);
  const studyUid = checkUid(input, 'study UID', study);
  const seriesUid = checkUid(input, 'series UID', series);
  if (instance === undefined) return { baseUrl, studyUid, seriesUid };
  return { baseUrl, studyUid, seriesUid, instanceUids: [checkUid(input, 'instance UID', instance)] };
}

function fromParts(parts: Exclude<SeriesReferenceInput, string>): SeriesReference {
  const shown = JSON.stringify({
    ...parts,
    baseUrl: typeof parts.baseUrl === 'string' ? redactReference(parts.baseUrl) : parts.baseUrl,
  });
  if (typeof parts.baseUrl !== 'string' || parts.baseUrl === '') throw invalid(shown, 'baseUrl is missing');
  const baseUrl = normaliseBaseUrl(parts.baseUrl, shown);
  if (/\/studies(\/|$)/.test(new URL(baseUrl).pathname)) {
    throw invalid(shown, 'baseUrl must be the store root, without /studies/...');
  }
  const studyUid = checkUid(shown, 'study UID', parts.studyUid);
  const seriesUid = checkUid(shown, 'series UID', parts.seriesUid);
  if (parts.instanceUids === undefined) return { baseUrl, studyUid, seriesUid };
  if (!Array.isArray(parts.instanceUids) || parts.instanceUids.length === 0) {
    throw invalid(shown, 'instanceUids is empty; omit it to read every instance of the series');
  }
  const instanceUids = parts.instanceUids.map((uid, i) => checkUid(shown, `instance UID #${i + 1}`, uid));
  return { baseUrl, studyUid, seriesUid, instanceUids: [...new Set(instanceUids)] };
}

/** Parses any accepted form into a validated reference; throws INVALID_SERIES_REFERENCE otherwise. */
export function parseSeriesReference(input: SeriesReferenceInput): SeriesReference {
  if (typeof input === 'string') return fromString(input);
  if (input === null || typeof input !== 'object') {
    throw invalid(String(input), 'it is neither a string nor an object');
  }
  return fromParts(input);
}

/**
 * True when a string names a study and nothing below it (`…/studies/<uid>`), so callers can tell
 * study sources from series sources before parsing either strictly.
 */
export function looksLikeStudyReference(input: string): boolean {
  const trimmed = input.trim().replace(/[?#].*$/, '');
  return STUDY_PATH.test(trimmed) && !/\/series\//.test(trimmed);
}

/** Parses a study reference; throws INVALID_SERIES_REFERENCE listing the study forms otherwise. */
export function parseStudyReference(input: StudyReferenceInput): StudyReference {
  if (typeof input === 'string') {
    const url = absoluteUrl(input, 'study');
    const match = STUDY_PATH.exec(url.pathname);
    if (!match) throw invalid(input, 'the path does not end in /studies/<study uid>', 'study');
    let baseUrl: string;
    try {
      baseUrl = baseFrom(url, match[1]!, input);
    } catch (err) {
      throw invalid(input, (err as PathembedError).details.problem as string, 'study');
    }
    const studyUid = checkUidOf(input, 'study UID', match[2], 'study');
    return { baseUrl, studyUid };
  }
  if (input === null || typeof input !== 'object') {
    throw invalid(String(input), 'it is neither a string nor an object', 'study');
  }
  const shown = JSON.stringify({
    ...input,
    baseUrl: typeof input.baseUrl === 'string' ? redactReference(input.baseUrl) : input.baseUrl,
  });
  if (typeof input.baseUrl !== 'string' || input.baseUrl === '') {
    throw invalid(shown, 'baseUrl is missing', 'study');
  }
  let baseUrl: string;
  try {
    baseUrl = normaliseBaseUrl(input.baseUrl, shown);
  } catch (err) {
    throw invalid(shown, (err as PathembedError).details.problem as string, 'study');
  }
  if (/\/studies(\/|$)/.test(new URL(baseUrl).pathname)) {
    throw invalid(shown, 'baseUrl must be the store root, without /studies/...', 'study');
  }
  return { baseUrl, studyUid: checkUidOf(shown, 'study UID', input.studyUid, 'study') };
}

function checkUidOf(input: string, what: string, uid: unknown, kind: 'series' | 'study'): string {
  try {
    return checkUid(input, what, uid);
  } catch (err) {
    if (kind === 'series') throw err;
    throw invalid(input, (err as PathembedError).details.problem as string, kind);
  }
}

/** The DICOMweb URL of a study (`<base>/studies/<uid>`). */
export function formatStudyUrl(ref: StudyReference): string {
  return `${ref.baseUrl}/studies/${ref.studyUid}`;
}

/** The DICOMweb URL of the series (`<base>/studies/<uid>/series/<uid>`); instance filters are not part of it. */
export function formatSeriesUrl(ref: Pick<SeriesReference, 'baseUrl' | 'studyUid' | 'seriesUid'>): string {
  return `${ref.baseUrl}/studies/${ref.studyUid}/series/${ref.seriesUid}`;
}

/** A one-line description for messages: the series URL plus the instance filter, if any. */
export function describeSeriesReference(ref: SeriesReference): string {
  const url = formatSeriesUrl(ref);
  if (ref.instanceUids === undefined) return url;
  if (ref.instanceUids.length === 1) return `${url}/instances/${ref.instanceUids[0]}`;
  return `${url} (${ref.instanceUids.length} instances)`;
}
