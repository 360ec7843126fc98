/**
 * What a request's `sources` name, turned into slide series: a series (or instance) reference is
 * one slide; a study reference or a search is expanded by QIDO-RS (dicomweb/slide-series-search.ts)
 * into its slide series, with the series it skipped and why. Every store is checked against the
 * allow-list before any request leaves the service, and the request's bearer token (if any) is the
 * one QIDO is sent with, as the job's reads will be.
 *
 * Expansion runs in the API request, not in a queued job: it is QIDO only (no pixels), a client
 * that loses the answer resubmits the same content and gets the same batch and the same jobs back
 * (batch and job ids are content hashes, every write idempotent), so a retry is always safe; and
 * the client learns at once about a bad filter, an unknown study or a store refusing its token.
 */
import type { Config } from '../config.js';
import {
  type AllowedStore,
  assertApprovedStore,
  bearerAuth,
  type DicomWebClient,
  findStudySlides,
  formatSeriesUrl,
  looksLikeStudyReference,
  parseSearchSpec,
  parseSeriesReference,
  parseStudyReference,
  type SearchSpec,
  type SeriesReference,
  type SeriesReferenceInput,
  type StudyReference,
  searchSlides,
} from '../dicomweb/index.js';
import { dicomWebClient } from '../domain-options.js';
import { isPathembedError, PathembedError } from '../errors.js';
import type { SkippedSlide } from '../queue/batch-record.js';

export type ParsedSource =
  | { readonly kind: 'series'; readonly ref: SeriesReference }
  | { readonly kind: 'study'; readonly ref: StudyReference }
  | { readonly kind: 'search'; readonly search: SearchSpec };

/** What a source may be on the wire (schemas.ts validates the shape first). */
export type SourceInput =
  | string
  | SeriesReferenceInput
  | { readonly baseUrl: string; readonly studyUid: string }
  | {
      readonly search: {
        readonly store: string;
        readonly filters?: Record<string, string>;
        readonly limit?: number;
      };
    };

/** Prefixes an input error with the field it came from, so the client sees which source is wrong. */
export function atField(err: unknown, field: string): unknown {
  if (!isPathembedError(err)) return err;
  return new PathembedError(err.code, `${field}: ${err.message}`, { ...err.details, field }, { cause: err });
}

/** Parses one source and checks its store against the allow-list; errors name `sources.<i>`. */
export function parseSource(
  input: SourceInput,
  index: number,
  allowList: readonly AllowedStore[],
  config: Pick<Config, 'PATHEMBED_MAX_BATCH_SLIDES' | 'PATHEMBED_SEARCH_DEFAULT_LIMIT'>,
): ParsedSource {
  try {
    let parsed: ParsedSource;
    if (typeof input === 'object' && input !== null && 'search' in input) {
      parsed = {
        kind: 'search',
        search: parseSearchSpec(input.search, {
          defaultLimit: Math.min(config.PATHEMBED_SEARCH_DEFAULT_LIMIT, config.PATHEMBED_MAX_BATCH_SLIDES),
          maxLimit: config.PATHEMBED_MAX_BATCH_SLIDES,
        }),
      };
      assertApprovedStore(parsed.search.baseUrl, allowList);
      return parsed;
    }
    const isStudy =
      typeof input === 'string'
        ? looksLikeStudyReference(input)
        : typeof input === 'object' && input !== null && !('seriesUid' in input);
    parsed = isStudy
      ? { kind: 'study', ref: parseStudyReference(input as string | StudyReference) }
      : { kind: 'series', ref: parseSeriesReference(input as SeriesReferenceInput) };
    assertApprovedStore(parsed.ref.baseUrl, allowList);
    return parsed;
  } catch (err) {
    throw atField(err, `sources.${index}`);
  }
}

/** The normalised form a batch id is computed from: equal content, equal id. */
export function canonicalSource(source: ParsedSource): unknown {
  switch (source.kind) {
    case 'series':
      return {
        series: {
          ...source.ref,
          instanceUids: source.ref.instanceUids ? [...source.ref.instanceUids].sort() : undefined,
        },
      };
    case 'study':
      return { study: source.ref };
    case 'search':
      return { search: source.search };
  }
}

export interface Expanded {
  /** Slide series in source order, each once. */
  readonly slides: SeriesReference[];
  readonly skipped: SkippedSlide[];
}

/** The expansion limits the configuration sets. */
export function expansionLimits(config: Config): { maxSlides: number; pageSize: number } {
  return { maxSlides: config.PATHEMBED_MAX_BATCH_SLIDES, pageSize: config.PATHEMBED_SEARCH_PAGE_SIZE };
}

/** A DICOMweb client for expansion: the request's token when it has one, the service's auth otherwise. */
export function expansionClient(config: Config, token: string | undefined): DicomWebClient {
  return dicomWebClient(config, token !== undefined ? { auth: bearerAuth(token) } : {});
}

/**
 * Expands every source into slide series. Refuses with PAYLOAD_TOO_LARGE past `maxSlides`, and
 * with NO_SLIDE_SERIES when nothing at all is left (listing what was skipped).
 */
export async function expandSources(
  sources: readonly ParsedSource[],
  client: DicomWebClient,
  limits: { readonly maxSlides: number; readonly pageSize: number },
  signal?: AbortSignal,
): Promise<Expanded> {
  const { maxSlides, pageSize } = limits;
  const slides: SeriesReference[] = [];
  const skipped: SkippedSlide[] = [];
  const seen = new Set<string>();
  const add = (ref: SeriesReference) => {
    const key = `${formatSeriesUrl(ref)}|${ref.instanceUids ? [...ref.instanceUids].sort().join(',') : ''}`;
    if (seen.has(key)) return;
    seen.add(key);
    if (slides.length >= maxSlides) {
      throw new PathembedError(
        'PAYLOAD_TOO_LARGE',
        `The sources hold more than ${maxSlides} slides, the most one batch may have (PATHEMBED_MAX_BATCH_SLIDES); split the cohort or narrow the search`,
        { limit: maxSlides },
      );
    }
    slides.push(ref);
  };
  for (const [index, source] of sources.entries()) {
    if (source.kind === 'series') {
      add(source.ref);
      continue;
    }
    let found: Awaited<ReturnType<typeof searchSlides>>;
    try {
      found =
        source.kind === 'study'
          ? await findStudySlides(client, source.ref, maxSlides, { signal, pageSize })
          : await searchSlides(client, source.search, { signal, pageSize });
    } catch (err) {
      throw atField(err, `sources.${index}`);
    }
    for (const ref of found.slides) add(ref);
    for (const s of found.skipped) {
      skipped.push({ seriesUrl: s.seriesUrl, reason: s.reason, imageTypes: s.imageTypes, source: index });
    }
  }
  if (slides.length === 0) {
    throw new PathembedError(
      'NO_SLIDE_SERIES',
      `The sources hold no series with a VOLUME whole-slide image${skipped.length > 0 ? ` (${skipped.length} series skipped: ${skipped.map((s) => `${s.seriesUrl}: ${s.reason}`).join('; ')})` : ''}`,
      { skipped },
    );
  }
  return { slides, skipped };
}
