/**
 * The one way to open a slide. A SlideOpener turns a source spec (a DICOMweb series or a local
 * folder) into a frame source, a slide model, or a whole reader (decoder, decoded-frame cache and
 * patch reader), wiring client → frame source → decoder → cache → reader in one place. Callers add
 * what is theirs through decorators (stage timing, error naming, fetch metrics) and never build a
 * DicomWebClient or a frame source themselves.
 *
 * It also holds the only rule for credentials leaving a slide's store: a job's token goes to an SR
 * destination only when that is the same store (`mayForwardToken`).
 */
import type { FrameDecoder, JpegDecoderChoice } from '../codecs/index.js';
import { FrameDecoder as OwnedFrameDecoder } from '../codecs/index.js';
import {
  type AuthProvider,
  bearerAuth,
  DicomWebClient,
  type DicomWebClientOptions,
  isSameStore,
  type SeriesReferenceInput,
} from '../dicomweb/index.js';
import { PathembedError } from '../errors.js';
import type { Logger } from '../log.js';
import type { SlideSourceSpec } from '../slide-source-spec.js';
import { DicomWebFrameSource } from './dicomweb-frame-source.js';
import { FrameCache } from './frame-cache.js';
import type { FrameSource } from './frame-source.js';
import { openLocalFrameSource } from './local-frame-source.js';
import { PatchReader } from './patch-reader.js';
import { openSlide, type Slide } from './slide.js';

/** How a slide is read once open. */
export interface SlideReadingOptions {
  /** Byte budget of one reader's decoded-frame cache. */
  readonly frameCacheBytes: number;
  /** Worker threads of the WASM decoders (JPEG 2000, JPEG-LS; JPEG without the native decoder). */
  readonly decodeThreads: number;
  /** Which libjpeg-turbo decodes JPEG (FrameDecoderOptions); default `auto`. */
  readonly jpegDecoder?: JpegDecoderChoice;
  /** The native JPEG decoder's TurboJPEG library (FrameDecoderOptions). */
  readonly libturbojpeg?: string;
  /** Relative difference of spacing under which a stored level counts as the target. */
  readonly levelTolerance: number;
}

export interface SlideOpenerOptions {
  /** The DICOMweb client's settings: allow-list, retries, limits, batching, default auth. */
  readonly dicomWeb: DicomWebClientOptions;
  readonly reading: SlideReadingOptions;
  /** Whether local folders may be opened (the queue reads DICOMweb series only). Default true. */
  readonly allowLocal?: boolean;
  /**
   * A decoder shared by every reader of this opener (its WASM worker pool is costly to start).
   * Default: each reader starts its own and closes it with the reader.
   */
  readonly decoder?: FrameDecoder;
  /** Wraps every frame source this opener opens (fetch metrics, say). */
  readonly decorateSource?: (source: FrameSource) => FrameSource;
  readonly logger?: Logger;
}

/** What a caller holds for one job: its token (never stored) and its cancellation. */
export interface SlideAccess {
  /** Bearer token for the slide's store; replaces the default auth. */
  readonly token?: string;
  readonly signal?: AbortSignal;
}

/** Per-reader decorators: the pipeline times stages and names failing frames through them. */
export interface ReaderDecorators {
  readonly source?: (source: FrameSource) => FrameSource;
  readonly decoder?: (decoder: Pick<FrameDecoder, 'decode'>) => Pick<FrameDecoder, 'decode'>;
}

/** An open slide source with a decoded-frame cache and a patch reader over it. */
export interface SlideReader {
  readonly source: FrameSource;
  readonly cache: FrameCache;
  readonly reader: PatchReader;
  close(): Promise<void>;
}

/** A reader together with the slide model read from its source. */
export interface OpenSlideReader extends SlideReader {
  readonly slide: Slide;
}

/**
 * Whether a job's token may be sent to `destination` (an SR's STOW-RS target): only when the slide
 * came from a DICOMweb store and the destination is that same store (normalised base URLs equal).
 */
export function mayForwardToken(source: SlideSourceSpec, destination: string): boolean {
  return source.kind === 'dicomweb' && isSameStore(source.baseUrl, destination);
}

function localRefused(): PathembedError {
  return new PathembedError(
    'INVALID_ARGUMENT',
    'This service reads DICOMweb series only, not local folders; give a DICOMweb series reference',
  );
}

export class SlideOpener {
  readonly #options: SlideOpenerOptions;
  /** Said once per opener: the native JPEG decoder could not be loaded. */
  #warnedSlowJpeg = false;

  constructor(options: SlideOpenerOptions) {
    this.#options = options;
  }

  get reading(): SlideReadingOptions {
    return this.#options.reading;
  }

  /** A DICOMweb client with the access's token, else the configured auth. */
  client(access: Pick<SlideAccess, 'token'> = {}): DicomWebClient {
    const auth: AuthProvider | undefined =
      access.token !== undefined ? bearerAuth(access.token) : this.#options.dicomWeb.auth;
    return new DicomWebClient({
      ...this.#options.dicomWeb,
      ...(auth ? { auth } : {}),
      ...(this.#options.logger ? { logger: this.#options.logger } : {}),
    });
  }

  /**
   * The client that stores results at `destination` for a slide read from `source`: the job's
   * token goes along only under `mayForwardToken`; otherwise the configured auth is used.
   */
  stowClient(
    source: SlideSourceSpec,
    destination: string,
    access: Pick<SlideAccess, 'token'> = {},
  ): DicomWebClient {
    return this.client(mayForwardToken(source, destination) ? access : {});
  }

  /**
   * The frame source of a spec, or of a series reference (URL, Google Healthcare path or parts).
   * Nothing is fetched yet. INVALID_SERIES_REFERENCE, UNAPPROVED_DICOM_STORE on first use, or
   * INVALID_ARGUMENT for a local folder where those are not allowed.
   */
  async openSource(
    spec: SlideSourceSpec | SeriesReferenceInput,
    access: SlideAccess = {},
  ): Promise<FrameSource> {
    let source: FrameSource;
    if (typeof spec === 'object' && 'kind' in spec && spec.kind === 'local') {
      if (this.#options.allowLocal === false) throw localRefused();
      source = await openLocalFrameSource(spec.folder);
    } else {
      const reference = typeof spec === 'object' && 'kind' in spec ? withoutKind(spec) : spec;
      source = new DicomWebFrameSource(this.client(access), reference);
    }
    return this.#options.decorateSource ? this.#options.decorateSource(source) : source;
  }

  /** The slide model of a spec (one metadata request for DICOMweb). */
  async openSlide(spec: SlideSourceSpec | SeriesReferenceInput, access: SlideAccess = {}): Promise<Slide> {
    const source = await this.openSource(spec, access);
    try {
      return await openSlide(source, access.signal);
    } catch (err) {
      await source.close?.();
      throw err;
    }
  }

  /** A reader over a spec's frames: decoder, cache and patch reader, with the caller's decorators. */
  async openReader(
    spec: SlideSourceSpec | SeriesReferenceInput,
    access: SlideAccess = {},
    decorators: ReaderDecorators = {},
  ): Promise<SlideReader> {
    return this.readerOver(await this.openSource(spec, access), decorators);
  }

  /** A reader together with the slide model (the CLI's slide commands, predict). */
  async openSlideReader(
    spec: SlideSourceSpec | SeriesReferenceInput,
    access: SlideAccess = {},
    decorators: ReaderDecorators = {},
  ): Promise<OpenSlideReader> {
    const reader = await this.openReader(spec, access, decorators);
    try {
      const slide = await openSlide(reader.source, access.signal);
      return { ...reader, slide, close: reader.close };
    } catch (err) {
      await reader.close();
      throw err;
    }
  }

  /** A reader over an already open source (closed with the reader). */
  readerOver(inner: FrameSource, decorators: ReaderDecorators = {}): SlideReader {
    const { reading } = this.#options;
    const owned = this.#options.decoder
      ? undefined
      : new OwnedFrameDecoder({
          decodeThreads: reading.decodeThreads,
          ...(reading.jpegDecoder ? { jpegDecoder: reading.jpegDecoder } : {}),
          ...(reading.libturbojpeg ? { libturbojpeg: reading.libturbojpeg } : {}),
        });
    const base = (this.#options.decoder ?? owned) as FrameDecoder;
    const unavailable = owned?.nativeJpegUnavailable;
    if (unavailable && !this.#warnedSlowJpeg) {
      this.#warnedSlowJpeg = true;
      this.#options.logger?.warn({ reason: unavailable }, 'JPEG frames decode with the slower WASM build');
    }
    const decoder = decorators.decoder ? decorators.decoder(base) : base;
    const source = decorators.source ? decorators.source(inner) : inner;
    // Frames go back to, and workers are warmed in, the FrameDecoder under any decorator.
    const cache = new FrameCache(source, decoder, { maxBytes: reading.frameCacheBytes, owner: base });
    const reader = new PatchReader(cache, { levelTolerance: reading.levelTolerance });
    return {
      source,
      cache,
      reader,
      async close() {
        cache.clear();
        await source.close?.();
        await owned?.close();
      },
    };
  }
}

function withoutKind(spec: Extract<SlideSourceSpec, { kind: 'dicomweb' }>): SeriesReferenceInput {
  const { kind: _kind, ...reference } = spec;
  return reference;
}
