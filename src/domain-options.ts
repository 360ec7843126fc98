/**
 * The one place where the env-keyed Config becomes each domain's typed options. Only the edges
 * (cli/, api/, the worker's start in queue/) import it; the domains below them (dicomweb, codecs,
 * wsi, embed, pipeline, results) take plain option objects and never read the environment.
 */
import { decodeThreadCount, type FrameDecoderOptions } from './codecs/index.js';
import type { Config } from './config.js';
import {
  type AuthProvider,
  bearerAuth,
  DicomWebClient,
  type DicomWebClientOptions,
  googleAuth,
  noAuth,
  RETRYABLE_ERROR_CODES,
  RETRYABLE_STATUSES,
  type RetryPolicy,
} from './dicomweb/index.js';
import { defaultModelPath } from './embed/default-model.js';
import type { EngineOptions } from './embed/engine-options.js';
import { PathembedError } from './errors.js';
import type { Logger } from './log.js';
import type { PipelineDeps, PipelineEngine, PipelineOptions } from './pipeline/index.js';
import type { ResultStoreOptions } from './queue/open-result-store.js';
import type { BuildOptions } from './search/index.js';
import { SlideOpener, type SlideOpenerOptions, type SlideReadingOptions } from './wsi/slide-opener.js';

export function engineOptions(config: Config): EngineOptions {
  return {
    modelPath: config.PATHEMBED_MODEL_PATH,
    defaultModelPath: defaultModelPath(config.projectRoot),
    executionProvider: config.PATHEMBED_EXECUTION_PROVIDER,
    deviceId: config.PATHEMBED_DEVICE_ID,
    batchSize: config.PATHEMBED_BATCH_SIZE,
    intraOpThreads: config.PATHEMBED_INTRA_OP_THREADS,
  };
}

/** The auth PATHEMBED_AUTH selects; a job's own token replaces it (SlideOpener). */
export function storeAuth(config: Pick<Config, 'PATHEMBED_AUTH' | 'PATHEMBED_BEARER_TOKEN'>): AuthProvider {
  switch (config.PATHEMBED_AUTH) {
    case 'none':
      return noAuth();
    case 'bearer':
      if (config.PATHEMBED_BEARER_TOKEN === undefined || config.PATHEMBED_BEARER_TOKEN === '') {
        throw new PathembedError(
          'CONFIG_INVALID',
          'PATHEMBED_AUTH=bearer but PATHEMBED_BEARER_TOKEN is not set; set the token or choose PATHEMBED_AUTH=none|google.',
        );
      }
      return bearerAuth(config.PATHEMBED_BEARER_TOKEN);
    case 'google':
      return googleAuth();
  }
}

export function retryPolicy(config: Config): RetryPolicy {
  return {
    maxAttempts: config.PATHEMBED_RETRY_MAX_ATTEMPTS,
    baseDelayMs: config.PATHEMBED_RETRY_BASE_DELAY_MS,
    maxDelayMs: config.PATHEMBED_RETRY_MAX_DELAY_MS,
    maxTotalMs: config.PATHEMBED_RETRY_MAX_TOTAL_MS,
    requestTimeoutMs: config.PATHEMBED_REQUEST_TIMEOUT_MS,
    retryOnStatus: RETRYABLE_STATUSES,
    retryOnErrorCodes: RETRYABLE_ERROR_CODES,
  };
}

/** The DICOMweb client settings; `overrides` for what one caller changes (a CLI's --allow, a test's limits). */
export function dicomWebOptions(
  config: Config,
  overrides: Partial<DicomWebClientOptions> = {},
): DicomWebClientOptions {
  return {
    allowedStores: config.PATHEMBED_ALLOWED_STORES,
    retry: retryPolicy(config),
    framesPerRequest: config.PATHEMBED_FRAMES_PER_REQUEST,
    storeConcurrency: config.PATHEMBED_STORE_CONCURRENCY,
    ...(config.PATHEMBED_SR_DESTINATION ? { stowDestination: config.PATHEMBED_SR_DESTINATION } : {}),
    ...overrides,
    auth: overrides.auth ?? storeAuth(config),
  };
}

/** A DICOMweb client from the configuration (tests and one-off tools; jobs go through a SlideOpener). */
export function dicomWebClient(
  config: Config,
  overrides: Partial<DicomWebClientOptions> = {},
): DicomWebClient {
  return new DicomWebClient(dicomWebOptions(config, overrides));
}

/** How a process's FrameDecoder decodes: thread count and JPEG decoder. */
export function frameDecoderOptions(config: Config): FrameDecoderOptions {
  return {
    decodeThreads: decodeThreadCount(config.PATHEMBED_DECODE_THREADS),
    jpegDecoder: config.PATHEMBED_JPEG_DECODER,
    libturbojpeg: config.PATHEMBED_LIBTURBOJPEG,
    // A reader's frames are reused by the next one: at most what one reader's cache holds.
    reuseBytes: config.PATHEMBED_FRAME_CACHE_BYTES,
  };
}

export function slideReadingOptions(config: Config): SlideReadingOptions {
  const { decodeThreads, jpegDecoder, libturbojpeg } = frameDecoderOptions(config);
  return {
    frameCacheBytes: config.PATHEMBED_FRAME_CACHE_BYTES,
    decodeThreads,
    ...(jpegDecoder ? { jpegDecoder } : {}),
    ...(libturbojpeg ? { libturbojpeg } : {}),
    levelTolerance: config.PATHEMBED_LEVEL_TOLERANCE,
  };
}

/** The SlideOpener of a process, from the configuration plus what the caller adds. */
export function slideOpener(
  config: Config,
  extra: Omit<SlideOpenerOptions, 'dicomWeb' | 'reading'> & {
    readonly dicomWeb?: Partial<DicomWebClientOptions>;
  } = {},
): SlideOpener {
  const { dicomWeb, ...rest } = extra;
  return new SlideOpener({
    ...rest,
    dicomWeb: dicomWebOptions(config, dicomWeb),
    reading: slideReadingOptions(config),
  });
}

export function pipelineOptions(config: Config): PipelineOptions {
  return {
    defaults: {
      pixelSpacingUm: config.PATHEMBED_PIXEL_SPACING_UM,
      stridePx: config.PATHEMBED_STRIDE_PX,
      minTissue: config.PATHEMBED_MIN_TISSUE,
      frameErrors: config.PATHEMBED_FRAME_ERRORS,
    },
    batchSize: config.PATHEMBED_BATCH_SIZE,
    tissueSpacingUm: config.PATHEMBED_TISSUE_SPACING_UM,
    maxPatchesPerJob: config.PATHEMBED_MAX_PATCHES_PER_JOB,
    srMaxPatches: config.PATHEMBED_SR_MAX_PATCHES,
    iccProfileDir: config.PATHEMBED_ICC_PROFILE_DIR,
    ...(config.PATHEMBED_SR_DESTINATION ? { srDestination: config.PATHEMBED_SR_DESTINATION } : {}),
  };
}

/** The pipeline's dependencies for a process: options, logger, engine and a SlideOpener. */
export function pipelineDeps(
  config: Config,
  logger: Logger,
  engine: PipelineEngine,
  opener: SlideOpener = slideOpener(config, { logger }),
): PipelineDeps {
  return { options: pipelineOptions(config), logger, engine, slides: opener };
}

/** S3 bucket names (AWS rules, which GCS and MinIO share): 3-63 lowercase letters, digits, '.', '-'. */
const BUCKET_PATTERN = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** Prefix segments follow result keys' rule, so every stored key is a plain relative path. */
const PREFIX_SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/** Where results live (PATHEMBED_RESULT_STORE, else the folder PATHEMBED_RESULTS_DIR). */
export function resultStoreOptions(
  config: Pick<
    Config,
    | 'PATHEMBED_RESULTS_DIR'
    | 'PATHEMBED_RESULT_STORE'
    | 'PATHEMBED_S3_ENDPOINT'
    | 'PATHEMBED_S3_REGION'
    | 'PATHEMBED_S3_FORCE_PATH_STYLE'
  >,
): ResultStoreOptions {
  const raw = config.PATHEMBED_RESULT_STORE;
  if (raw === undefined) return { kind: 'file', root: config.PATHEMBED_RESULTS_DIR };
  const bad = (why: string) =>
    new PathembedError(
      'CONFIG_INVALID',
      `PATHEMBED_RESULT_STORE '${raw}' ${why}. Use file:///absolute/folder or s3://bucket/optional/prefix.`,
      { variable: 'PATHEMBED_RESULT_STORE' },
    );
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw bad('is not a URL');
  }
  if (url.protocol === 'file:') {
    if (url.host) throw bad(`names a host (${url.host}); a folder URL is file:///path`);
    return { kind: 'file', root: decodeURIComponent(url.pathname) };
  }
  // Split by hand: URL parsing would lower-case the bucket and resolve '..' in the prefix.
  const [bucket = '', ...segments] = raw
    .slice('s3://'.length)
    .split('/')
    .filter((x) => x.length > 0);
  if (!BUCKET_PATTERN.test(bucket)) throw bad(`has an invalid bucket name '${bucket}'`);
  const wrong = segments.find((x) => !PREFIX_SEGMENT.test(x) || x === '..');
  if (wrong !== undefined) throw bad(`has a prefix segment '${wrong}' outside [A-Za-z0-9._-]`);
  return {
    kind: 's3',
    bucket,
    prefix: segments.join('/'),
    ...(config.PATHEMBED_S3_ENDPOINT ? { endpoint: config.PATHEMBED_S3_ENDPOINT } : {}),
    region: config.PATHEMBED_S3_REGION,
    forcePathStyle: config.PATHEMBED_S3_FORCE_PATH_STYLE,
  };
}

/** How job search indexes are built: exact below PATHEMBED_SIMILARITY_EXACT_BELOW patches, else HNSW. */
export function searchBuildOptions(config: Config): BuildOptions {
  return {
    exactBelow: config.PATHEMBED_SIMILARITY_EXACT_BELOW,
    hnsw: {
      connectivity: config.PATHEMBED_SIMILARITY_HNSW_CONNECTIVITY,
      expansionAdd: config.PATHEMBED_SIMILARITY_HNSW_EXPANSION_ADD,
      expansionSearch: config.PATHEMBED_SIMILARITY_HNSW_EXPANSION_SEARCH,
      quantization: config.PATHEMBED_SIMILARITY_HNSW_QUANTIZATION,
    },
  };
}
