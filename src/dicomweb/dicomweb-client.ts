/**
 * The DICOMweb client: QIDO-RS instance search, WADO-RS series metadata and batched frames, and
 * STOW-RS, over Node's fetch (see docs/decisions.md for why not the dicomweb-client package). It
 * knows what each request means and checks the answers (parts per frame asked, their order, their
 * transfer syntax); the discipline every request shares (allow-list, auth, retries, limits, typed
 * errors) is in store-request.ts. 0-based frame indices become 1-based DICOM frame numbers here
 * and nowhere else.
 */
import { setMaxListeners } from 'node:events';
import { type DicomJsonDataset, str } from '../dicom-json.js';
import { Tag } from '../dicom-tags.js';
import type { EncodedFrame, FrameSourceStats } from '../encoded-frame.js';
import { PathembedError } from '../errors.js';
import { type Logger, SILENT_LOGGER } from '../log.js';
import { TransferSyntax } from '../uids.js';
import type { AuthProvider } from './auth.js';
import { StoreLimiters } from './concurrency-limiter.js';
import type { StoreResponse } from './http-exchange.js';
import {
  DEFAULT_MAX_PART_BYTES,
  encodeMultipart,
  multipartBoundary,
  parseContentType,
  readMultipart,
  transferSyntaxOf,
} from './multipart.js';
import { pageQido } from './qido-paging.js';
import type { RetryPolicy } from './retry-policy.js';
import {
  formatSeriesUrl,
  isValidUid,
  normaliseBaseUrl,
  parseSeriesReference,
  type SeriesReference,
  type SeriesReferenceInput,
} from './series-reference.js';
import { parseAllowList, safeUrlForMessage } from './store-allow-list.js';
import { collapse, ERROR_EXCERPT_CHARS, readBodyCapped, StoreRequester } from './store-request.js';
import { hex4, parseStowResponse, type StowResult } from './stow-response.js';

/**
 * Accept for frames: any transfer syntax, as stored. Asking for a specific one (or none, which
 * means Explicit VR Little Endian) makes Orthanc transcode every frame, about 1.6 s each.
 */
/** Bulk data as one octet-stream part (PS3.18 §8.7.3.5); some stores also send it bare. */
const BULK_DATA_ACCEPT = 'multipart/related; type="application/octet-stream"';
export const FRAMES_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
export const DICOM_JSON = 'application/dicom+json';
const STOW_ACCEPT = `${DICOM_JSON}, application/json;q=0.9`;
const DICOM_PART_TYPE = 'application/dicom';

/**
 * The attributes a whole-slide reader needs from QIDO-RS, and no more (stores build each requested
 * attribute per instance; asking for `all` is slower and some stores refuse it).
 */
export const WSI_INSTANCE_FIELDS = {
  ImageType: Tag.ImageType,
  SOPClassUID: Tag.SOPClassUID,
  SOPInstanceUID: Tag.SOPInstanceUID,
  Modality: Tag.Modality,
  TransferSyntaxUID: Tag.TransferSyntaxUID,
  InstanceNumber: Tag.InstanceNumber,
  ConcatenationUID: Tag.ConcatenationUID,
  InConcatenationNumber: Tag.InConcatenationNumber,
  ConcatenationFrameOffsetNumber: Tag.ConcatenationFrameOffsetNumber,
  DimensionOrganizationType: Tag.DimensionOrganizationType,
  SamplesPerPixel: Tag.SamplesPerPixel,
  PhotometricInterpretation: Tag.PhotometricInterpretation,
  NumberOfFrames: Tag.NumberOfFrames,
  Rows: Tag.Rows,
  Columns: Tag.Columns,
  BitsAllocated: Tag.BitsAllocated,
  ImagedVolumeWidth: Tag.ImagedVolumeWidth,
  ImagedVolumeHeight: Tag.ImagedVolumeHeight,
  TotalPixelMatrixColumns: Tag.TotalPixelMatrixColumns,
  TotalPixelMatrixRows: Tag.TotalPixelMatrixRows,
  NumberOfOpticalPaths: Tag.NumberOfOpticalPaths,
  TotalPixelMatrixFocalPlanes: Tag.TotalPixelMatrixFocalPlanes,
} as const;

/** QIDO-RS page size; a WSI series has a handful of instances, a sparse pyramid a few thousand. */
export const QIDO_PAGE_SIZE = 1000;
/** A JSON answer larger than this is not metadata of one series. */
export const MAX_JSON_RESPONSE_BYTES = 256 * 1024 * 1024;

const HTTP_NO_CONTENT = 204;
const HTTP_CONFLICT = 409;
const HTTP_BAD_REQUEST = 400;
const PART10_PREAMBLE_BYTES = 128;
const PART10_MAGIC = 'DICM';
/** Node's default before it warns of an EventTarget leak. */
const DEFAULT_MAX_LISTENERS = 10;
/** A batch listens on the shared signal while queued for a slot, in its attempt signal and in its backoff sleep. */
const LISTENERS_PER_BATCH = 3;

export interface DicomWebStats {
  /** HTTP requests sent: every attempt and every redirect hop. */
  requests: number;
  /** Attempts repeated after a retryable failure. */
  retries: number;
  /** Frames received. */
  frames: number;
  /** Encoded frame bytes received. */
  bytes: number;
}

export interface DicomWebClientOptions {
  /** Allow-list of store URL prefixes (PATHEMBED_ALLOWED_STORES). */
  readonly allowedStores: readonly string[];
  readonly retry: RetryPolicy;
  /** Most frame numbers in one WADO-RS frames request (PATHEMBED_FRAMES_PER_REQUEST). */
  readonly framesPerRequest: number;
  /** Most concurrent requests per store origin (PATHEMBED_STORE_CONCURRENCY); ignored when `limiters` is given. */
  readonly storeConcurrency: number;
  /** Default: no credentials. */
  readonly auth?: AuthProvider;
  /** Default: the process-wide registry for `storeConcurrency`, shared by every client. */
  readonly limiters?: StoreLimiters;
  /** Where `store()` writes when given no base URL (PATHEMBED_SR_DESTINATION). */
  readonly stowDestination?: string;
  /** Default: silent. */
  readonly logger?: Logger;
  /** Random source of the backoff jitter (tests make delays exact). Default Math.random. */
  readonly random?: () => number;
}

export interface RequestOptions {
  readonly signal?: AbortSignal;
}

export interface FetchFramesOptions extends RequestOptions {
  /** Also counted into these stats (a frame source keeps its own). */
  readonly stats?: FrameSourceStats;
}

async function readDicomJsonArray(res: StoreResponse, what: string): Promise<DicomJsonDataset[]> {
  if (res.status === HTTP_NO_CONTENT) return [];
  const text = (await readBodyCapped(res, MAX_JSON_RESPONSE_BYTES, what)).toString('utf8');
  if (text.trim() === '') return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new PathembedError(
      'DICOMWEB_BAD_RESPONSE',
      `${what}: the store answered with something that is not JSON (${res.headers.get('content-type') ?? 'no Content-Type'}): "${collapse(text).slice(0, ERROR_EXCERPT_CHARS)}". Check that the URL is the store's DICOMweb root.`,
    );
  }
  if (!Array.isArray(parsed) || parsed.some((x) => x === null || typeof x !== 'object' || Array.isArray(x))) {
    throw new PathembedError(
      'DICOMWEB_BAD_RESPONSE',
      `${what}: expected a DICOM JSON array of datasets (PS3.18 F.2), got ${Array.isArray(parsed) ? 'an array with non-objects' : typeof parsed}.`,
    );
  }
  return parsed as DicomJsonDataset[];
}

function frameList(numbers: readonly number[]): string {
  const shown = numbers.slice(0, 20).join(',');
  return numbers.length > 20 ? `${shown},… (${numbers.length} frames)` : shown;
}

export class DicomWebClient {
  readonly stats: DicomWebStats = { requests: 0, retries: 0, frames: 0, bytes: 0 };
  readonly framesPerRequest: number;
  readonly #requester: StoreRequester;
  readonly #stowDestination: string | undefined;
  readonly #logger: Logger;

  constructor(options: DicomWebClientOptions) {
    if (!Number.isInteger(options.framesPerRequest) || options.framesPerRequest < 1) {
      throw new PathembedError(
        'CONFIG_INVALID',
        `framesPerRequest must be an integer >= 1, got ${options.framesPerRequest}`,
      );
    }
    this.framesPerRequest = options.framesPerRequest;
    this.#stowDestination = options.stowDestination;
    this.#logger = options.logger ?? SILENT_LOGGER;
    this.#requester = new StoreRequester({
      allowList: parseAllowList(options.allowedStores),
      retry: options.retry,
      limiters: options.limiters ?? StoreLimiters.shared(options.storeConcurrency),
      stats: this.stats,
      auth: options.auth,
      logger: this.#logger,
      random: options.random,
    });
  }

  get retry(): RetryPolicy {
    return this.#requester.retry;
  }

  /** The auth method in use, for messages. */
  get authDescription(): string {
    return this.#requester.authDescription;
  }

  /**
   * QIDO-RS: the instances of the series with the attributes a WSI reader needs
   * (`WSI_INSTANCE_FIELDS`). Throws DICOMWEB_NOT_FOUND when the series (or a requested instance)
   * has none, since QIDO answers an unknown series with an empty list rather than 404.
   */
  async searchInstances(
    input: SeriesReferenceInput,
    options: RequestOptions = {},
  ): Promise<DicomJsonDataset[]> {
    const ref = parseSeriesReference(input);
    const seriesUrl = formatSeriesUrl(ref);
    const fields = Object.values(WSI_INSTANCE_FIELDS).join(',');
    const { items: found, repeated } = await pageQido(
      (offset, limit) => {
        const url = `${seriesUrl}/instances?includefield=${fields}&limit=${limit}${offset > 0 ? `&offset=${offset}` : ''}`;
        return this.#requester.request({
          method: 'GET',
          url,
          accept: DICOM_JSON,
          what: 'QIDO-RS search of the series instances',
          notFoundHint: 'Check the study and series UIDs and the store base URL.',
          signal: options.signal,
          consume: (res) => readDicomJsonArray(res, `QIDO-RS ${safeUrlForMessage(url)}`),
        });
      },
      { pageSize: QIDO_PAGE_SIZE, keyOf: (ds) => str(ds, Tag.SOPInstanceUID) },
    );
    if (repeated) {
      throw new PathembedError(
        'DICOMWEB_BAD_RESPONSE',
        `QIDO-RS search of the instances of ${safeUrlForMessage(seriesUrl)}: the store answered the same ${found.length} instances again when asked for the next page (it ignores the offset parameter), so the series cannot be listed whole. Read the slide by its metadata instead, or report it to the store.`,
        { instances: found.length },
      );
    }
    return this.#keepRequested(ref, found, 'QIDO-RS');
  }

  /**
   * One QIDO-RS request: `<baseUrl><path>?<query>` (path such as `/series` or
   * `/studies/<uid>/instances`), answered as DICOM JSON datasets. Paging is the caller's
   * (slide-series-search.ts), since how far to page depends on what it looks for.
   */
  async qido(
    baseUrl: string,
    path: string,
    query: URLSearchParams,
    options: RequestOptions & { readonly what?: string } = {},
  ): Promise<DicomJsonDataset[]> {
    const url = `${baseUrl}${path}${query.size > 0 ? `?${query.toString()}` : ''}`;
    return this.#requester.request({
      method: 'GET',
      url,
      accept: DICOM_JSON,
      what: options.what ?? 'QIDO-RS search',
      notFoundHint: 'Check the study UID and the store base URL.',
      signal: options.signal,
      consume: (res) => readDicomJsonArray(res, `QIDO-RS ${safeUrlForMessage(url)}`),
    });
  }

  /** WADO-RS series metadata (bulk data as BulkDataURI); only `instanceUids` when the reference names some. */
  async seriesMetadata(
    input: SeriesReferenceInput,
    options: RequestOptions = {},
  ): Promise<DicomJsonDataset[]> {
    const ref = parseSeriesReference(input);
    const url = `${formatSeriesUrl(ref)}/metadata`;
    const all = await this.#requester.request({
      method: 'GET',
      url,
      accept: DICOM_JSON,
      what: 'WADO-RS series metadata',
      notFoundHint: 'Check the study and series UIDs and the store base URL.',
      signal: options.signal,
      consume: (res) => readDicomJsonArray(res, `WADO-RS ${safeUrlForMessage(url)}`),
    });
    return this.#keepRequested(ref, all, 'WADO-RS metadata');
  }

  #keepRequested(ref: SeriesReference, datasets: DicomJsonDataset[], what: string): DicomJsonDataset[] {
    const seriesUrl = formatSeriesUrl(ref);
    if (datasets.length === 0) {
      throw new PathembedError(
        'DICOMWEB_NOT_FOUND',
        `${what} found no instances in series ${seriesUrl}. Check the study and series UIDs and that the store holds the slide.`,
        { url: seriesUrl },
      );
    }
    if (ref.instanceUids === undefined) return datasets;
    const wanted = new Set(ref.instanceUids);
    const kept = datasets.filter((ds) => wanted.has(str(ds, WSI_INSTANCE_FIELDS.SOPInstanceUID) ?? ''));
    const keptUids = new Set(kept.map((ds) => str(ds, WSI_INSTANCE_FIELDS.SOPInstanceUID)));
    const missing = ref.instanceUids.filter((uid) => !keptUids.has(uid));
    if (missing.length > 0) {
      throw new PathembedError(
        'DICOMWEB_NOT_FOUND',
        `${what}: series ${seriesUrl} has no instance ${missing.join(', ')}. Check the instance UIDs of the reference.`,
        { url: seriesUrl, missingInstanceUids: missing },
      );
    }
    return kept;
  }

  /**
   * One bulk data element (WADO-RS BulkDataURI from the metadata), such as an ICC profile. The URI
   * may be relative to the series; it must stay on the store's origin, so the store's credentials
   * never go to another host.
   */
  async fetchBulkData(
    input: SeriesReferenceInput,
    uri: string,
    options: RequestOptions = {},
  ): Promise<Uint8Array> {
    const ref = parseSeriesReference(input);
    const seriesUrl = formatSeriesUrl(ref);
    const url = new URL(uri, `${seriesUrl}/`);
    if (url.origin !== new URL(seriesUrl).origin) {
      throw new PathembedError(
        'DICOMWEB_BAD_RESPONSE',
        `The metadata of ${seriesUrl} points its bulk data to another host (${url.origin}); it is not fetched.`,
        { origin: url.origin },
      );
    }
    const context = `WADO-RS bulk data ${safeUrlForMessage(url.href)}`;
    return this.#requester.request({
      method: 'GET',
      url: url.href,
      accept: BULK_DATA_ACCEPT,
      what: context,
      notFoundHint: 'The store lists bulk data it does not serve.',
      signal: options.signal,
      consume: async (res) => {
        const contentType = res.headers.get('content-type') ?? undefined;
        const mediaType = contentType === undefined ? undefined : parseContentType(contentType).mediaType;
        if (mediaType === undefined || !mediaType.startsWith('multipart/')) {
          return res.bytes({ maxBytes: DEFAULT_MAX_PART_BYTES, what: context });
        }
        for await (const part of readMultipart(res.body, multipartBoundary(contentType, context), {
          context,
        })) {
          return part.data;
        }
        throw new PathembedError(
          'DICOMWEB_BAD_RESPONSE',
          `${context}: the multipart answer has no part.`,
          {},
        );
      },
    });
  }

  /**
   * Frames of one instance, in the order asked (repeats allowed). `frameIndices` are 0-based; the
   * request carries 1-based frame numbers, at most `framesPerRequest` per request, batches running
   * concurrently within the store's limit. Each frame carries the transfer syntax its part declares.
   */
  async fetchFrames(
    input: SeriesReferenceInput,
    instanceUid: string,
    frameIndices: readonly number[],
    options: FetchFramesOptions = {},
  ): Promise<EncodedFrame[]> {
    const ref = parseSeriesReference(input);
    if (!isValidUid(instanceUid)) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `Instance UID ${JSON.stringify(instanceUid)} is not a DICOM UID.`,
        {
          instanceUid,
        },
      );
    }
    const bad = frameIndices.find((i) => !Number.isSafeInteger(i) || i < 0);
    if (bad !== undefined) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `Frame index ${bad} is not a 0-based frame index (a non-negative integer); instance ${instanceUid}.`,
        { instanceUid, frameIndex: bad },
      );
    }
    if (frameIndices.length === 0) return [];
    // 0-based index -> 1-based DICOM frame number: the only place this conversion happens.
    const numbers = [...new Set(frameIndices)].map((index) => index + 1);
    const batches: number[][] = [];
    for (let i = 0; i < numbers.length; i += this.framesPerRequest) {
      batches.push(numbers.slice(i, i + this.framesPerRequest));
    }
    // One failed batch stops its siblings at once instead of letting them retry to no purpose.
    const siblings = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, siblings.signal]) : siblings.signal;
    // Every batch waiting for a store slot listens on this signal; that many listeners is by design.
    setMaxListeners(DEFAULT_MAX_LISTENERS + batches.length * LISTENERS_PER_BATCH, signal);
    const byNumber = new Map<number, EncodedFrame>();
    await Promise.all(
      batches.map(async (batch) => {
        try {
          const frames = await this.#fetchFrameBatch(ref, instanceUid, batch, signal, options.stats);
          // #fetchFrameBatch checks that it got exactly one frame per number asked.
          for (const [k, n] of batch.entries()) byNumber.set(n, frames[k]!);
        } catch (err) {
          siblings.abort(err);
          throw err;
        }
      }),
    );
    return frameIndices.map((index) => byNumber.get(index + 1)!);
  }

  async #fetchFrameBatch(
    ref: SeriesReference,
    instanceUid: string,
    numbers: readonly number[],
    signal: AbortSignal,
    frameStats: FrameSourceStats | undefined,
  ): Promise<EncodedFrame[]> {
    const url = `${formatSeriesUrl(ref)}/instances/${instanceUid}/frames/${numbers.join(',')}`;
    const context = `WADO-RS frames ${frameList(numbers)} of instance ${instanceUid}`;
    const frames = await this.#requester.request({
      method: 'GET',
      url,
      accept: FRAMES_ACCEPT,
      what: context,
      notFoundHint: 'Check the instance UID; frame numbers past NumberOfFrames are refused too.',
      signal,
      frameStats,
      consume: (res) => this.#readFrames(res, numbers, instanceUid, context),
    });
    let bytes = 0;
    for (const f of frames) bytes += f.data.length;
    this.stats.frames += frames.length;
    this.stats.bytes += bytes;
    if (frameStats) {
      frameStats.frames += frames.length;
      frameStats.bytes += bytes;
    }
    return frames;
  }

  async #readFrames(
    res: StoreResponse,
    numbers: readonly number[],
    instanceUid: string,
    context: string,
  ): Promise<EncodedFrame[]> {
    const contentType = res.headers.get('content-type') ?? undefined;
    const responseSyntax = transferSyntaxOf(contentType);
    const syntaxOf = (
      partSyntax: string | undefined,
      mediaType: string | undefined,
      frameNumber: number,
    ): string => {
      if (partSyntax) return partSyntax;
      if (responseSyntax) return responseSyntax;
      // PS3.18 §8.7.3.3.2: application/octet-stream without a transfer-syntax parameter is Explicit VR Little Endian.
      if (mediaType === undefined || mediaType === 'application/octet-stream')
        return TransferSyntax.ExplicitVRLittleEndian;
      throw new PathembedError(
        'DICOMWEB_BAD_RESPONSE',
        `${context}: frame ${frameNumber} came as ${mediaType} without a transfer-syntax parameter, so its encoding is unknown.`,
        { instanceUid, frameNumber, mediaType },
      );
    };
    const mediaType = contentType === undefined ? undefined : parseContentType(contentType).mediaType;
    if (mediaType !== undefined && !mediaType.startsWith('multipart/')) {
      // Some stores answer a single frame as a single part; accept that, never for several frames.
      if (numbers.length !== 1) {
        throw new PathembedError(
          'DICOMWEB_BAD_RESPONSE',
          `${context}: expected multipart/related for ${numbers.length} frames, got ${mediaType}.`,
          { instanceUid, frameNumbers: numbers },
        );
      }
      const body = await res.bytes({ maxBytes: DEFAULT_MAX_PART_BYTES, what: context });
      if (body.byteLength === 0) {
        throw new PathembedError(
          'DICOMWEB_BAD_RESPONSE',
          `${context}: the answer is empty; a frame has pixel data.`,
          {
            instanceUid,
            frameNumbers: numbers,
          },
        );
      }
      return [{ data: body, transferSyntaxUid: syntaxOf(undefined, mediaType, numbers[0]!) }];
    }
    const boundary = multipartBoundary(contentType, context);
    const frames: EncodedFrame[] = [];
    for await (const part of readMultipart(res.body, boundary, { context })) {
      const k = frames.length;
      if (k >= numbers.length) {
        throw new PathembedError(
          'DICOMWEB_BAD_RESPONSE',
          `${context}: the store sent more parts than the ${numbers.length} frames asked for.`,
          { instanceUid, frameNumbers: numbers },
        );
      }
      // Where the store names each part's frame, check it: a misordered answer would place tiles wrongly.
      // (A trailing slash, query or fragment after the number is still the frame's location.)
      const located = /\/frames\/(\d+)\/?(?:[?#].*)?$/.exec(part.headers['content-location'] ?? '')?.[1];
      if (located !== undefined && Number(located) !== numbers[k]) {
        throw new PathembedError(
          'DICOMWEB_BAD_RESPONSE',
          `${context}: part ${k + 1} is frame ${located}, expected frame ${numbers[k]} (frames must come in the order asked).`,
          { instanceUid, frameNumbers: numbers },
        );
      }
      if (part.data.byteLength === 0) {
        throw new PathembedError(
          'DICOMWEB_BAD_RESPONSE',
          `${context}: part ${k + 1} (frame ${numbers[k]}) is empty; a frame has pixel data.`,
          { instanceUid, frameNumbers: numbers },
        );
      }
      frames.push({
        data: part.data,
        transferSyntaxUid: syntaxOf(part.transferSyntaxUid, part.mediaType, numbers[k]!),
      });
    }
    if (frames.length !== numbers.length) {
      throw new PathembedError(
        'DICOMWEB_BAD_RESPONSE',
        `${context}: the store sent ${frames.length} part(s) for ${numbers.length} frames asked. The instance may have fewer frames than its metadata says.`,
        { instanceUid, frameNumbers: numbers, parts: frames.length },
      );
    }
    return frames;
  }

  /**
   * STOW-RS: stores Part 10 objects (each a complete file with the DICM preamble) under
   * `baseUrl`, else PATHEMBED_SR_DESTINATION. Throws STOW_FAILED naming each refused instance and
   * its reason when the store answers 400/409 or lists failures (FailedSOPSequence).
   */
  async store(
    parts: readonly Uint8Array[],
    baseUrl?: string,
    options: RequestOptions = {},
  ): Promise<StowResult> {
    if (parts.length === 0)
      throw new PathembedError('INVALID_ARGUMENT', 'STOW-RS needs at least one DICOM object.');
    parts.forEach((p, i) => {
      const magic = Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString(
        'latin1',
        PART10_PREAMBLE_BYTES,
        PART10_PREAMBLE_BYTES + PART10_MAGIC.length,
      );
      if (magic !== PART10_MAGIC) {
        throw new PathembedError(
          'INVALID_ARGUMENT',
          `STOW-RS part ${i + 1} is not a DICOM Part 10 file (no "DICM" after the 128-byte preamble); write it with its file meta header.`,
          { part: i + 1 },
        );
      }
    });
    const destination = baseUrl ?? this.#stowDestination;
    if (destination === undefined) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        'STOW-RS needs a destination: pass the store base URL or set PATHEMBED_SR_DESTINATION.',
      );
    }
    let base: string;
    try {
      base = normaliseBaseUrl(destination);
    } catch (err) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `Invalid STOW-RS destination: ${(err as Error).message}`,
        {},
        { cause: err },
      );
    }
    const { body, boundary } = encodeMultipart(parts.map((data) => ({ contentType: DICOM_PART_TYPE, data })));
    const url = `${base}/studies`;
    return this.#requester.request<StowResult>({
      method: 'POST',
      url,
      accept: STOW_ACCEPT,
      body,
      contentType: `multipart/related; type="${DICOM_PART_TYPE}"; boundary=${boundary}`,
      what: 'STOW-RS upload',
      notFoundHint: 'Check the store base URL (STOW-RS posts to <base>/studies).',
      // A refusal is a STOW failure with reasons in the body (Orthanc answers 400, others 409).
      consumeStatuses: [HTTP_BAD_REQUEST, HTTP_CONFLICT],
      signal: options.signal,
      consume: (res) => this.#readStowResponse(res, url, parts.length),
    });
  }

  async #readStowResponse(res: StoreResponse, url: string, sentCount: number): Promise<StowResult> {
    const what = `STOW-RS to ${safeUrlForMessage(url)}`;
    const text = (await readBodyCapped(res, MAX_JSON_RESPONSE_BYTES, what)).toString('utf8');
    const result = parseStowResponse(res.status, res.ok, text, what, sentCount);
    for (const s of result.stored) {
      if (s.warningReason === undefined) continue;
      this.#logger.warn(
        { sopInstanceUid: s.sopInstanceUid, warningReason: hex4(s.warningReason) },
        'STOW-RS stored an instance with a warning',
      );
    }
    return result;
  }
}
