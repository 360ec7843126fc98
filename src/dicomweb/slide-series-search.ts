/**
 * Finding slides by QIDO-RS: a study reference or a search (store + filters + limit) becomes the
 * list of its slide series. Owns the search-filter allow-list, QIDO paging (stores may answer
 * shorter pages than asked), and the rule that a series is a slide when one of its instances is a
 * VOLUME whole-slide image (the same rule the reader applies, src/wsi/slide-pyramid.ts: ImageType
 * value 3, VOLUME when absent as OrthancWSIDicomizer writes it). Series holding only LABEL,
 * OVERVIEW or THUMBNAIL images are reported as skipped, with the image types seen.
 */

import type { DicomJsonDataset } from '../dicom-json.js';
import { Tag } from '../dicom-tags.js';
import { PathembedError } from '../errors.js';
import { SopClass } from '../uids.js';
import type { DicomWebClient, RequestOptions } from './dicomweb-client.js';
import { pageQido } from './qido-paging.js';
import {
  formatSeriesUrl,
  normaliseBaseUrl,
  type SeriesReference,
  type StudyReference,
} from './series-reference.js';

/**
 * QIDO keys a search may filter on, keyword → tag. Patient, study and series attributes that Google
 * Healthcare and Orthanc both match at the series level, plus ContainerIdentifier (the slide's
 * barcode), which Orthanc matches and Google refuses with a 400 that is passed on. Anything else is
 * refused before a request leaves the service: a misspelt key would otherwise match everything.
 */
export const SEARCH_FILTER_KEYS: Readonly<Record<string, string>> = {
  PatientID: Tag.PatientID,
  PatientName: Tag.PatientName,
  StudyInstanceUID: Tag.StudyInstanceUID,
  StudyDate: Tag.StudyDate,
  StudyTime: Tag.StudyTime,
  StudyID: Tag.StudyID,
  StudyDescription: Tag.StudyDescription,
  AccessionNumber: Tag.AccessionNumber,
  ReferringPhysicianName: Tag.ReferringPhysicianName,
  SeriesInstanceUID: Tag.SeriesInstanceUID,
  SeriesDescription: Tag.SeriesDescription,
  SeriesNumber: Tag.SeriesNumber,
  ContainerIdentifier: Tag.ContainerIdentifier,
};

/** Modality of whole-slide microscopy series; every study or search asks for it. */
const SLIDE_MODALITY = 'SM';
/** ImageType value 3 of the images a slide is read from. */
const VOLUME = 'VOLUME';
/**
 * Default series asked for per QIDO page (PATHEMBED_SEARCH_PAGE_SIZE). Stores cap pages (Google
 * Healthcare and Orthanc both may answer fewer than asked); the loop below keeps paging until a
 * page is shorter than the longest page the store has given, so a cap below this number costs one
 * extra request, never a lost series.
 */
export const SEARCH_PAGE_SIZE = 1000;

export interface SearchOptions extends RequestOptions {
  /** Series per QIDO page; default SEARCH_PAGE_SIZE. */
  readonly pageSize?: number;
}
/** Instances asked for per QIDO page when classifying a series (a sparse pyramid has thousands). */
const INSTANCE_PAGE_SIZE = 1000;
/** Series classified at once; the client's per-store limiter (PATHEMBED_STORE_CONCURRENCY) caps requests anyway. */
const CLASSIFY_CONCURRENCY = 8;
/** Longest filter value accepted: QIDO values are short (a UID, a date range, a wildcard name). */
export const MAX_FILTER_VALUE_CHARS = 256;

export interface SearchSpec {
  /** Normalised DICOMweb base URL. */
  readonly baseUrl: string;
  /** Keyword → value, keywords from SEARCH_FILTER_KEYS, sorted by keyword. */
  readonly filters: Readonly<Record<string, string>>;
  /** Most series the search may return. */
  readonly limit: number;
}

export interface SkippedSeries {
  readonly studyUid: string;
  readonly seriesUid: string;
  readonly seriesUrl: string;
  readonly reason: string;
  /** ImageType value 3 of each image the series holds (e.g. LABEL, OVERVIEW). */
  readonly imageTypes: readonly string[];
}

export interface FoundSlides {
  readonly slides: SeriesReference[];
  readonly skipped: SkippedSeries[];
  /** QIDO requests sent (series pages and instance pages). */
  readonly requests: number;
}

function invalidFilter(message: string, details: Record<string, unknown>): PathembedError {
  return new PathembedError('INVALID_SEARCH_FILTER', message, {
    ...details,
    allowed: Object.keys(SEARCH_FILTER_KEYS),
  });
}

const TAG_PATTERN = /^\(?([0-9a-f]{4}),?([0-9a-f]{4})\)?$/i;

/** The keyword of an allowed filter key given as a keyword or a tag (`00100020`, `(0010,0020)`). */
function filterKeyword(key: string): string | undefined {
  if (Object.hasOwn(SEARCH_FILTER_KEYS, key)) return key;
  const tag = TAG_PATTERN.exec(key.trim());
  if (!tag) return undefined;
  const hex = `${tag[1]}${tag[2]}`.toUpperCase();
  return Object.entries(SEARCH_FILTER_KEYS).find(([, t]) => t === hex)?.[0];
}

/**
 * Validates a search: the store as a DICOMweb base URL, every filter key on the allow-list (by
 * keyword or tag), values short strings, the limit a positive integer up to `maxLimit`. Throws
 * INVALID_SEARCH_FILTER naming the key and listing the allowed ones, or INVALID_SERIES_REFERENCE
 * for a bad store URL.
 */
export function parseSearchSpec(
  input: { readonly store: string; readonly filters?: Record<string, unknown>; readonly limit?: number },
  limits: { readonly defaultLimit: number; readonly maxLimit: number },
): SearchSpec {
  const baseUrl = normaliseBaseUrl(input.store);
  if (/\/studies(\/|$)/.test(new URL(baseUrl).pathname)) {
    throw invalidFilter(
      `search.store ${JSON.stringify(baseUrl)} must be the store root, without /studies/...`,
      {
        key: 'store',
      },
    );
  }
  const filters: Record<string, string> = {};
  for (const [key, value] of Object.entries(input.filters ?? {})) {
    const keyword = filterKeyword(key);
    if (!keyword) {
      throw invalidFilter(
        `search.filters: ${JSON.stringify(key)} is not a searchable key. Allowed (by keyword or tag): ${Object.keys(SEARCH_FILTER_KEYS).join(', ')}.`,
        { key },
      );
    }
    if (typeof value !== 'string' || value.trim() === '' || value.length > MAX_FILTER_VALUE_CHARS) {
      throw invalidFilter(
        `search.filters.${key}: the value must be a non-empty string of at most ${MAX_FILTER_VALUE_CHARS} characters (a QIDO match: exact, wildcard, a date range YYYYMMDD-YYYYMMDD or a UID list)`,
        { key, value: typeof value === 'string' ? value.slice(0, MAX_FILTER_VALUE_CHARS) : value },
      );
    }
    if (keyword in filters) {
      throw invalidFilter(`search.filters: ${keyword} is given twice (as a keyword and as a tag)`, {
        key,
      });
    }
    filters[keyword] = value.trim();
  }
  const limit = input.limit ?? limits.defaultLimit;
  if (!Number.isInteger(limit) || limit < 1 || limit > limits.maxLimit) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `search.limit: ${limit} is not an integer from 1 to ${limits.maxLimit} (PATHEMBED_MAX_BATCH_SLIDES)`,
      { field: 'search.limit', limit, max: limits.maxLimit },
    );
  }
  const sorted = Object.fromEntries(Object.entries(filters).sort(([a], [b]) => (a < b ? -1 : 1)));
  return { baseUrl, filters: sorted, limit };
}

function firstString(ds: DicomJsonDataset, tag: string): string | undefined {
  const v = ds[tag]?.Value?.[0];
  return typeof v === 'string' ? v : undefined;
}

interface SeriesHit {
  readonly studyUid: string;
  readonly seriesUid: string;
}

/**
 * Pages a QIDO series search until the store runs out or `limit` series are found (qido-paging.ts:
 * capped pages, and stores that ignore the offset, end the search instead of looping).
 */
async function pageSeries(
  client: DicomWebClient,
  baseUrl: string,
  path: string,
  filters: Readonly<Record<string, string>>,
  limit: number,
  options: SearchOptions,
): Promise<{ series: SeriesHit[]; requests: number }> {
  const { items, requests } = await pageQido(
    (offset, asked) => {
      const query = new URLSearchParams({ Modality: SLIDE_MODALITY, ...filters, limit: String(asked) });
      if (offset > 0) query.set('offset', String(offset));
      return client.qido(baseUrl, path, query, { signal: options.signal, what: 'QIDO-RS series search' });
    },
    {
      pageSize: options.pageSize ?? SEARCH_PAGE_SIZE,
      maxItems: limit,
      keyOf: (ds) =>
        firstString(ds, Tag.StudyInstanceUID) === undefined
          ? undefined
          : firstString(ds, Tag.SeriesInstanceUID),
    },
  );
  const series = items.map((ds) => ({
    studyUid: firstString(ds, Tag.StudyInstanceUID)!,
    seriesUid: firstString(ds, Tag.SeriesInstanceUID)!,
  }));
  return { series, requests };
}

/** ImageType value 3 of every whole-slide image of a series (VOLUME when absent, as the reader reads it). */
async function imageTypesOf(
  client: DicomWebClient,
  baseUrl: string,
  hit: SeriesHit,
  options: RequestOptions,
): Promise<{ flavors: string[]; requests: number }> {
  // A store that ignores the offset ends the listing after its first page (`repeated`): the
  // instances seen are enough to tell a slide series, which only needs one VOLUME image.
  const { items, requests } = await pageQido(
    (offset, limit) => {
      // One includefield per attribute: a comma list is encoded as %2C, which Orthanc reads as one name.
      const query = new URLSearchParams();
      query.append('includefield', Tag.ImageType);
      query.append('includefield', Tag.SOPClassUID);
      query.set('limit', String(limit));
      if (offset > 0) query.set('offset', String(offset));
      return client.qido(baseUrl, `/studies/${hit.studyUid}/series/${hit.seriesUid}/instances`, query, {
        ...options,
        what: 'QIDO-RS search of the series instances',
      });
    },
    { pageSize: INSTANCE_PAGE_SIZE, keyOf: (ds) => firstString(ds, Tag.SOPInstanceUID) },
  );
  const flavors: string[] = [];
  for (const ds of items) {
    const sopClass = firstString(ds, Tag.SOPClassUID);
    // A store that leaves SOPClassUID out still lists a slide's images; only another class is refused.
    if (sopClass !== undefined && sopClass !== SopClass.VLWholeSlideMicroscopyImage) continue;
    const value3 = ds[Tag.ImageType]?.Value?.[2];
    flavors.push(typeof value3 === 'string' && value3.trim() !== '' ? value3.trim().toUpperCase() : VOLUME);
  }
  return { flavors, requests };
}

async function classify(
  client: DicomWebClient,
  baseUrl: string,
  hits: readonly SeriesHit[],
  options: RequestOptions,
): Promise<FoundSlides> {
  const outcomes: Array<{ flavors: string[] }> = new Array(hits.length);
  let requests = 0;
  let next = 0;
  const lane = async () => {
    while (next < hits.length) {
      const i = next++;
      const found = await imageTypesOf(client, baseUrl, hits[i]!, options);
      requests += found.requests;
      outcomes[i] = found;
    }
  };
  await Promise.all(Array.from({ length: Math.min(CLASSIFY_CONCURRENCY, hits.length) }, lane));
  const slides: SeriesReference[] = [];
  const skipped: SkippedSeries[] = [];
  hits.forEach((hit, i) => {
    const flavors = outcomes[i]!.flavors;
    if (flavors.includes(VOLUME)) {
      slides.push({ baseUrl, studyUid: hit.studyUid, seriesUid: hit.seriesUid });
      return;
    }
    const imageTypes = [...new Set(flavors)].sort();
    skipped.push({
      ...hit,
      seriesUrl: formatSeriesUrl({ baseUrl, studyUid: hit.studyUid, seriesUid: hit.seriesUid }),
      reason:
        imageTypes.length === 0
          ? 'the series holds no whole-slide image'
          : `the series holds no VOLUME image, only ${imageTypes.join(', ')}`,
      imageTypes,
    });
  });
  return { slides, skipped, requests };
}

/**
 * The slide series of a study: its SM series, each kept when it holds a VOLUME image. Throws
 * DICOMWEB_NOT_FOUND when the store knows no SM series of the study.
 */
export async function findStudySlides(
  client: DicomWebClient,
  study: StudyReference,
  limit: number,
  options: SearchOptions = {},
): Promise<FoundSlides> {
  // One series more than the limit is asked for, so a study that does not fit is refused rather
  // than cut short into a batch that looks complete.
  const { series, requests } = await pageSeries(
    client,
    study.baseUrl,
    `/studies/${study.studyUid}/series`,
    {},
    limit + 1,
    options,
  );
  if (series.length > limit) {
    throw new PathembedError(
      'PAYLOAD_TOO_LARGE',
      `Study ${study.studyUid} at ${study.baseUrl} has more than ${limit} slide microscopy (Modality SM) series, label and overview series included; submit a search with filters for part of it, or raise PATHEMBED_MAX_BATCH_SLIDES.`,
      { studyUid: study.studyUid, limit },
    );
  }
  if (series.length === 0) {
    throw new PathembedError(
      'DICOMWEB_NOT_FOUND',
      `The store has no slide microscopy (Modality SM) series in study ${study.studyUid} at ${study.baseUrl}. Check the study UID and the store base URL.`,
      { studyUid: study.studyUid, baseUrl: study.baseUrl },
    );
  }
  const found = await classify(client, study.baseUrl, series, { signal: options.signal });
  return { ...found, requests: requests + found.requests };
}

/** The slide series a search matches (at most `search.limit` series looked at). */
export async function searchSlides(
  client: DicomWebClient,
  search: SearchSpec,
  options: SearchOptions = {},
): Promise<FoundSlides> {
  const { series, requests } = await pageSeries(
    client,
    search.baseUrl,
    '/series',
    search.filters,
    search.limit,
    options,
  );
  const found = await classify(client, search.baseUrl, series, { signal: options.signal });
  return { ...found, requests: requests + found.requests };
}
