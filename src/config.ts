/**
 * The service's configuration: every environment variable it reads, with its default and meaning,
 * parsed and validated once (zod) into a frozen object that entry points pass down. Nothing else in
 * src/ reads process.env. README.md's configuration table is checked against `CONFIG_VARIABLES` by
 * a test, so a variable cannot be added without documenting it.
 */
import path from 'node:path';
import { z } from 'zod';
import { PathembedError } from './errors.js';

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const num = (min: number, max = Number.MAX_VALUE) => z.coerce.number().min(min).max(max);
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const list = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0),
);

interface VariableSpec<T extends z.ZodType> {
  schema: T;
  default: string | undefined;
  description: string;
}

function v<T extends z.ZodType>(schema: T, def: string | undefined, description: string): VariableSpec<T> {
  return { schema, default: def, description };
}

/** Every environment variable, its default (as the string one would set) and what it does. */
export const CONFIG_VARIABLES = {
  LOG_LEVEL: v(
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    'info',
    'pino log level.',
  ),

  // Model and inference
  PATHEMBED_MODEL_PATH: v(
    z.string().min(1),
    'models/build/path-foundation-synthetic-vit-s16.onnx',
    'ONNX model file meeting the Path Foundation contract. The default is the synthetic ViT-S/16 that `pathembed model build` writes.',
  ),
  PATHEMBED_EXECUTION_PROVIDER: v(
    z.enum(['auto', 'cpu', 'cuda', 'tensorrt']),
    'auto',
    '`auto` tries CUDA and falls back to CPU with one warning; `cuda`/`tensorrt` fail when unavailable; `cpu` never tries a GPU.',
  ),
  PATHEMBED_DEVICE_ID: v(int(0), '0', 'GPU device id for cuda/tensorrt.'),
  PATHEMBED_BATCH_SIZE: v(int(1, 1024), '32', 'Patches per inference batch.'),
  PATHEMBED_INTRA_OP_THREADS: v(
    int(0, 256),
    '0',
    'ONNX Runtime intra-op threads; 0 runs one per core (os.availableParallelism(); ONNX Runtime itself would count physical cores only).',
  ),

  // DICOMweb wire
  PATHEMBED_AUTH: v(
    z.enum(['none', 'bearer', 'google']),
    'none',
    'How to authenticate to stores: none, a static bearer token (PATHEMBED_BEARER_TOKEN), or Google Application Default Credentials.',
  ),
  PATHEMBED_BEARER_TOKEN: v(
    z.string().optional(),
    undefined,
    'Static bearer token for the store when PATHEMBED_AUTH=bearer. Never logged.',
  ),
  PATHEMBED_FRAMES_PER_REQUEST: v(
    int(1, 512),
    '64',
    'Most frame numbers asked for in one WADO-RS frames request (fewer, larger requests cost the store and the reader less; each is held whole in memory until read).',
  ),
  PATHEMBED_STORE_CONCURRENCY: v(
    int(1, 256),
    '6',
    'Most concurrent HTTP requests to one store (per process).',
  ),
  PATHEMBED_REQUEST_TIMEOUT_MS: v(
    int(100),
    '60000',
    'Timeout of one HTTP request to a store, in milliseconds.',
  ),
  PATHEMBED_RETRY_MAX_ATTEMPTS: v(
    int(1, 50),
    '5',
    'Attempts per store request, the first included, on 408/429/5xx and connection errors.',
  ),
  PATHEMBED_RETRY_BASE_DELAY_MS: v(
    int(0),
    '200',
    'First backoff delay; doubles each attempt, with full jitter.',
  ),
  PATHEMBED_RETRY_MAX_DELAY_MS: v(
    int(0),
    '10000',
    'Largest backoff delay (a Retry-After header may ask for more, up to the total cap).',
  ),
  PATHEMBED_RETRY_MAX_TOTAL_MS: v(
    int(0),
    '120000',
    'Give up retrying a request once this much time has passed since its first attempt.',
  ),
  PATHEMBED_ALLOWED_STORES: v(
    list,
    'http://127.0.0.1,http://localhost,http://[::1]',
    'Comma-separated allow-list of DICOMweb base URL prefixes (scheme://host[:port][/path]); a prefix without a port allows every port. Anything else is refused with UNAPPROVED_DICOM_STORE.',
  ),

  // Slide reading
  PATHEMBED_FRAME_CACHE_BYTES: v(
    int(0),
    String(512 * 1024 * 1024),
    "Byte budget of the decoded-frame LRU cache per slide reader. A job's frames leave it (and are decoded into again) once the last patch that needs them is read, so a job holds a few rows of frames; the budget bounds what other reads keep (tissue mask, viewer tiles, Google predict requests).",
  ),
  PATHEMBED_DECODE_THREADS: v(
    int(0, 64),
    '0',
    'Worker threads that decode JPEG 2000, JPEG-LS and lossless JPEG frames, and JPEG ones: with the native decoder (PATHEMBED_JPEG_DECODER) they load it too and share the JPEG frames with the reading thread; 0 starts one per core.',
  ),
  PATHEMBED_JPEG_DECODER: v(
    z.enum(['auto', 'native', 'wasm']),
    'auto',
    "JPEG frame decoder: `native` is the machine's libjpeg-turbo (PATHEMBED_LIBTURBOJPEG), called on the reading thread and in the decode workers, and fails at start without it; `wasm` is libjpeg-turbo as WASM in the decode workers; `auto` takes native when the library loads, else wasm. Both give the same pixels; native is several times faster.",
  ),
  PATHEMBED_LIBTURBOJPEG: v(
    z.string().min(1),
    'libturbojpeg.so.0',
    "libjpeg-turbo's TurboJPEG shared library for the native JPEG decoder: a name the dynamic loader finds (Debian/Ubuntu package libturbojpeg0) or a path (macOS: e.g. /opt/homebrew/lib/libturbojpeg.dylib).",
  ),
  PATHEMBED_SHARP_THREADS: v(
    int(0, 256),
    '0',
    'libvips threads a worker decodes JPEG frames with (sharp.concurrency); 0: one per core. With several GPU workers on a machine, give each its share of the cores.',
  ),
  PATHEMBED_PIXEL_SPACING_UM: v(
    num(0.01, 1000),
    '0.5',
    'Target pixel spacing of patches in micrometres per pixel (Path Foundation: 0.5, 20x).',
  ),
  PATHEMBED_LEVEL_TOLERANCE: v(
    num(0, 1),
    '0.1',
    'Relative difference of spacing under which a stored level counts as a match.',
  ),
  PATHEMBED_STRIDE_PX: v(int(1), '224', 'Stride of the patch grid in pixels at the target spacing.'),
  PATHEMBED_MIN_TISSUE: v(num(0, 1), '0.5', 'Least tissue fraction for a grid patch to be embedded.'),
  PATHEMBED_FRAME_ERRORS: v(
    z.enum(['fail', 'skip']),
    'fail',
    'What a frame the decoder reports as corrupt does to a job that does not choose (option frameErrors): fail ends the job with FRAME_DECODE_ERROR; skip leaves out the patches that need it and lists them in the result summary (failedPatches).',
  ),
  PATHEMBED_TISSUE_SPACING_UM: v(
    num(1, 1000),
    '8',
    'Pixel spacing at which the tissue mask is computed (8-16 um/px works).',
  ),

  // Results
  PATHEMBED_RESULTS_DIR: v(
    z.string().min(1),
    'results',
    'Folder where JSON results, plans and chunk files are written when PATHEMBED_RESULT_STORE is unset (one machine, or a volume shared by API and workers).',
  ),
  PATHEMBED_RESULT_STORE: v(
    z
      .string()
      .regex(/^(file|s3):\/\/./, 'must start with file:// or s3://')
      .optional(),
    undefined,
    'Where results, plans and chunk files live: `file:///abs/path` (a folder) or `s3://bucket/prefix` (any S3-compatible object store; then API and workers share no folder). Unset: the folder PATHEMBED_RESULTS_DIR. S3 credentials come from the AWS SDK default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws files, web identity, ECS/EC2 instance roles).',
  ),
  PATHEMBED_S3_ENDPOINT: v(
    z.string().url().optional(),
    undefined,
    'S3 endpoint URL for S3-compatible stores (MinIO, Ceph; Google Cloud Storage: https://storage.googleapis.com with HMAC keys). Unset: AWS S3.',
  ),
  PATHEMBED_S3_REGION: v(
    z.string().min(1),
    'us-east-1',
    'Region of the bucket (S3-compatible stores accept any; Google Cloud Storage: auto). A wrong AWS region is followed by redirect.',
  ),
  PATHEMBED_S3_FORCE_PATH_STYLE: v(
    bool,
    'false',
    'Address buckets as <endpoint>/<bucket> instead of <bucket>.<endpoint> (MinIO and most self-hosted stores need true).',
  ),
  PATHEMBED_SR_MAX_PATCHES: v(
    int(0),
    '1000',
    'Most per-patch measurement groups in a DICOM SR; above it the SR carries the slide-level content only.',
  ),
  PATHEMBED_SR_DESTINATION: v(
    z.string().url().optional(),
    undefined,
    'DICOMweb base URL where SRs are stored; default: the source store.',
  ),

  // Service
  REDIS_URL: v(z.string().url(), 'redis://127.0.0.1:6379', 'Redis for BullMQ.'),
  PATHEMBED_QUEUE_PREFIX: v(z.string().min(1), 'pathembed', 'Key prefix of the BullMQ queues in Redis.'),
  PATHEMBED_PORT: v(int(0, 65535), '8080', 'Port of `pathembed serve`.'),
  PATHEMBED_HOST: v(z.string().min(1), '127.0.0.1', 'Address `pathembed serve` listens on.'),
  PATHEMBED_KEEP_ALIVE_TIMEOUT_MS: v(
    int(1000),
    '65000',
    'How long `pathembed serve` keeps an idle HTTP connection open; keep it above the idle timeout of a load balancer in front (60 s on most).',
  ),
  PATHEMBED_API_KEYS: v(
    list.optional(),
    undefined,
    'Comma-separated API keys; when set, every /v1 request needs `Authorization: Bearer <key>`.',
  ),
  PATHEMBED_PROTECT_HEALTH: v(bool, 'false', 'Require an API key for /healthz, /readyz and /metrics too.'),
  PATHEMBED_UI_SESSION_SECRET: v(
    z.string().min(32, 'must be at least 32 characters').optional(),
    undefined,
    "Secret that signs the web page's session cookies (/ui login with an API key). Unset: a random one per process, so sessions end when the API restarts and are not shared between API replicas.",
  ),
  PATHEMBED_UI_SESSION_HOURS: v(
    int(1, 24 * 30),
    '12',
    'How long a web page session (/ui login) lasts, in hours.',
  ),
  PATHEMBED_UI_SECURE_COOKIE: v(
    bool,
    'false',
    'Mark the /ui session cookie Secure (browsers then send it over HTTPS only): set it when the API is served over HTTPS.',
  ),
  PATHEMBED_UI_OPEN_SLIDES: v(
    int(1, 256),
    '4',
    "Slides the web viewer's tile endpoint keeps open; they share one PATHEMBED_FRAME_CACHE_BYTES of decoded frames, and the least recently used is closed first.",
  ),
  PATHEMBED_TOKEN_KEY: v(
    z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits (a 256-bit AES key)')
      .optional(),
    undefined,
    'AES-256-GCM key (64 hex digits) encrypting per-job store tokens in Redis. Required to accept per-job tokens.',
  ),
  PATHEMBED_CHUNK_PATCHES: v(
    int(1),
    '512',
    'Patches per chunk job; a slide fans out into chunks that workers embed in parallel.',
  ),
  PATHEMBED_MAX_PATCHES_PER_JOB: v(int(1), '200000', 'Most patches one slide job may plan.'),
  PATHEMBED_MAX_PREDICT_PATCHES: v(
    int(1),
    '4000',
    'Most patches in one /v1/predict request (the Path Foundation API allows 4000).',
  ),
  PATHEMBED_MAX_JOBS_PER_KEY: v(int(1), '100', 'Most unfinished jobs per API key.'),
  PATHEMBED_BODY_LIMIT: v(z.string().min(1), '5mb', 'Largest request body.'),
  PATHEMBED_SIMILARITY_MAX_K: v(
    int(1, 10000),
    '100',
    'Most neighbours one /v1/search request may ask for (k).',
  ),
  PATHEMBED_SIMILARITY_EXACT_BELOW: v(
    int(0),
    '1000',
    'A job with fewer patches is searched by exact brute force (no graph built or stored); from this size on, an HNSW graph (usearch) is built at job completion. About where HNSW queries become faster on 2 cores (docs/benchmarks.md); 0: always HNSW.',
  ),
  PATHEMBED_SIMILARITY_HNSW_CONNECTIVITY: v(int(2, 256), '16', 'HNSW graph edges per node (M).'),
  PATHEMBED_SIMILARITY_HNSW_EXPANSION_ADD: v(
    int(1),
    '128',
    'HNSW candidate list while building (efConstruction).',
  ),
  PATHEMBED_SIMILARITY_HNSW_EXPANSION_SEARCH: v(
    int(1),
    '128',
    'HNSW candidate list while searching (ef); higher gives better recall, slower queries.',
  ),
  PATHEMBED_SIMILARITY_HNSW_QUANTIZATION: v(
    z.enum(['f32', 'f16', 'i8']),
    'f16',
    "Scalar type of the HNSW graph's copy of the embeddings (distances are re-ranked from float32).",
  ),
  PATHEMBED_SIMILARITY_CACHE_MB: v(
    int(1),
    '512',
    'Memory the API keeps loaded search indexes in (least recently used dropped).',
  ),
  PATHEMBED_PREDICT_TIMEOUT_MS: v(
    int(1000),
    '300000',
    'How long /v1/predict waits for its work on the workers.',
  ),
  PATHEMBED_ALLOWED_GCS: v(
    list.optional(),
    undefined,
    "Comma-separated gs:// prefixes /v1/predict may read image_file_uri objects from (e.g. gs://my-bucket/slides/); unset: none, since the service's own credentials would read them.",
  ),
  PATHEMBED_GCS_ENDPOINT: v(
    z.string().url().optional(),
    undefined,
    "Cloud Storage JSON API endpoint for image_file_uri reads; unset: Google's. Point it at a local emulator for tests.",
  ),
  PATHEMBED_ICC_PROFILE_DIR: v(
    z.string(),
    '',
    "Folder of target profiles that replace the built-in ones for transform_imaging_to_icc_profile and the iccProfile job option, named as EZ-WSI's icc_profile_plugin_dir (srgb.icc, adobergb1998.icc or adobergb.icc, rommrgb.icc, displayp3.icc). Empty: the ICC's sRGB v4 preference and ROMM RGB and Apple's Display P3 shipped with pathembed, and colord-data's AdobeRGB1998.icc (put Adobe's own here to match Google's ADOBERGB exactly).",
  ),
  PATHEMBED_WORKER_CONCURRENCY: v(int(1, 64), '1', 'Chunk jobs one worker process runs at once.'),
  PATHEMBED_LOCK_DURATION_MS: v(
    int(1000),
    '120000',
    'BullMQ lock of a running job; a worker that dies frees it after this long.',
  ),
  PATHEMBED_STORE_RATE_LIMIT_MS: v(
    int(1000),
    '10000',
    'How long a store that answered 429 is paused: its jobs wait (delayed, no attempt used) while jobs of other stores go on.',
  ),
  PATHEMBED_MAX_BATCH_SLIDES: v(
    int(1, 1_000_000),
    '10000',
    'Most slides one batch may hold (after expanding its studies and searches), and the largest search limit.',
  ),
  PATHEMBED_SEARCH_DEFAULT_LIMIT: v(
    int(1, 1_000_000),
    '1000',
    'Series a search source looks at when it gives no limit.',
  ),
  PATHEMBED_SEARCH_PAGE_SIZE: v(
    int(1, 100_000),
    '1000',
    'Series asked for per QIDO-RS page when expanding studies and searches; a store that answers shorter pages (its own cap) is paged on until it runs out.',
  ),
  PATHEMBED_JOB_ATTEMPTS: v(
    int(1, 100),
    '5',
    'Attempts of one queue job (slide, chunk, assemble), the first included, for failures request-level retries cannot absorb (a result write, a lost lock); a store error whose request retries ran out is final.',
  ),
  PATHEMBED_JOB_BACKOFF_MS: v(int(0), '2000', 'First backoff between job attempts; doubles each attempt.'),
  PATHEMBED_RECONCILE_INTERVAL_MS: v(
    int(1000),
    '30000',
    'How often the API and each worker look for unfinished jobs that lost their queue job (a crash mid-submit) and re-enqueue or fail them.',
  ),
  PATHEMBED_RECONCILE_GRACE_MS: v(
    int(0),
    '10000',
    'A job record younger than this is never reconciled: its submitter may still be adding its queue job.',
  ),
  PATHEMBED_REDIS_COMMAND_TIMEOUT_MS: v(
    int(100),
    '2000',
    'Redis commands on the API request path fail after this long (and at once while Redis is down), so requests answer 503 instead of hanging.',
  ),
} as const;

type Vars = typeof CONFIG_VARIABLES;
export type ConfigValues = { readonly [K in keyof Vars]: z.output<Vars[K]['schema']> };

export interface Config extends ConfigValues {
  /** Absolute project root, for resolving the default model path. */
  readonly projectRoot: string;
}

const PROJECT_ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

/** Parses and validates the environment; throws CONFIG_INVALID naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, spec] of Object.entries(CONFIG_VARIABLES)) {
    const raw = env[name] !== undefined && env[name] !== '' ? env[name] : spec.default;
    const parsed = (spec.schema as z.ZodType).safeParse(raw);
    if (parsed.success) out[name] = parsed.data;
    else
      problems.push(
        `${name}=${JSON.stringify(raw)}: ${parsed.error.issues.map((i) => i.message).join('; ')}`,
      );
  }
  if (problems.length > 0) {
    throw new PathembedError('CONFIG_INVALID', `Invalid configuration: ${problems.join(' | ')}`, {
      problems,
    });
  }
  const projectRoot = PROJECT_ROOT.endsWith(`${path.sep}dist`) ? path.dirname(PROJECT_ROOT) : PROJECT_ROOT;
  const modelPath = out.PATHEMBED_MODEL_PATH as string;
  out.PATHEMBED_MODEL_PATH = path.isAbsolute(modelPath) ? modelPath : path.resolve(projectRoot, modelPath);
  return Object.freeze({ ...(out as ConfigValues), projectRoot });
}
