/**
 * Names of the service's own Redis keys (job records, tokens, cancellation, worker registry,
 * metrics), all under `<PATHEMBED_QUEUE_PREFIX>:svc:` so that they sit beside BullMQ's keys
 * (`<prefix>:<queue>:…`) without clashing, and a test can find every key of one prefix with SCAN.
 */

/** Namespace beside BullMQ's queue keys; no queue may be named this. */
const NAMESPACE = 'svc';

export class ServiceKeys {
  readonly root: string;

  constructor(readonly prefix: string) {
    this.root = `${prefix}:${NAMESPACE}`;
  }

  /** Hash: the public record of one embedding job (state, options, progress, errors, results). */
  job(jobId: string): string {
    return `${this.root}:job:${jobId}`;
  }

  /** Hash: chunk index → patches written, so progress counts a redone chunk once. */
  jobChunks(jobId: string): string {
    return `${this.root}:job:${jobId}:chunks`;
  }

  /** Sorted set of every job id by creation time (GET /v1/jobs). */
  jobIndex(): string {
    return `${this.root}:jobs`;
  }

  /** Sorted set of one API key's job ids by creation time. */
  jobIndexOfKey(keyId: string): string {
    return `${this.root}:jobs-of:${keyId}`;
  }

  /** Set of one API key's unfinished job ids (PATHEMBED_MAX_JOBS_PER_KEY). */
  inFlight(keyId: string): string {
    return `${this.root}:inflight:${keyId}`;
  }

  /** String: the job currently answering a request fingerprint (changes on `recompute`). */
  alias(fingerprint: string): string {
    return `${this.root}:alias:${fingerprint}`;
  }

  /** String: a sealed (AES-256-GCM) store token of a job or predict instance. */
  token(ownerId: string): string {
    return `${this.root}:token:${ownerId}`;
  }

  /** String: present once a job is cancelled; workers check it before each batch. */
  cancelled(jobId: string): string {
    return `${this.root}:cancelled:${jobId}`;
  }

  /** Pub/sub channel carrying cancelled job ids to every worker at once. */
  cancelChannel(): string {
    return `${this.root}:cancel`;
  }

  /** String (JSON): the model manifest workers last published. */
  model(): string {
    return `${this.root}:model`;
  }

  /** String (JSON) with a TTL: one live worker process and what it runs. */
  worker(workerId: string): string {
    return `${this.root}:worker:${workerId}`;
  }

  workerPattern(): string {
    return `${this.root}:worker:*`;
  }

  /** Hash: cumulative bucket counts of frame fetch latency, summed over all workers. */
  frameFetchHistogram(): string {
    return `${this.root}:metrics:frame-fetch`;
  }

  /** Hash: per-bucket counts of inference batch latency (inference-metrics.ts), all workers. */
  inferenceBatchHistogram(): string {
    return `${this.root}:metrics:inference-batch`;
  }

  /** Hash: per-bucket counts of the time jobs waited in the queue, all workers. */
  queueWaitHistogram(): string {
    return `${this.root}:metrics:queue-wait`;
  }

  /** Hash: error code → jobs that ended with it. */
  errorCounts(): string {
    return `${this.root}:metrics:errors`;
  }

  /** String counter: patches embedded, ever. */
  patchesTotal(): string {
    return `${this.root}:metrics:patches`;
  }

  /** String counter with a TTL: patches embedded in one time bucket (patches/s over a window). */
  patchesInBucket(bucket: number): string {
    return `${this.root}:metrics:patches:${bucket}`;
  }

  /** String counter: how many times a store's 429 paused that store (all stores). */
  rateLimitEngagements(): string {
    return `${this.root}:metrics:rate-limit-engaged`;
  }

  /** Hash: store base URL → times its 429s paused it. */
  rateLimitEngagementsByStore(): string {
    return `${this.root}:metrics:rate-limit-engaged-by-store`;
  }

  /**
   * String with a TTL (the pause): present while a store that answered 429 is paused. The store's
   * base URL is base64url-encoded so that its ':' and '/' cannot clash with the key's separators.
   */
  storePause(baseUrl: string): string {
    return `${this.root}:store-pause:${Buffer.from(baseUrl).toString('base64url')}`;
  }

  storePausePattern(): string {
    return `${this.root}:store-pause:*`;
  }

  /** The base URL a storePause key names. */
  storeOfPauseKey(key: string): string {
    return Buffer.from(key.slice(`${this.root}:store-pause:`.length), 'base64url').toString('utf8');
  }

  /** Hash: the record of one batch (sources, skipped series, job count, monotone progress marks). */
  batch(batchId: string): string {
    return `${this.root}:batch:${batchId}`;
  }

  /** List: the batch's job ids, in the order of its slides. */
  batchJobs(batchId: string): string {
    return `${this.root}:batch:${batchId}:jobs`;
  }

  /** Hash: result file → "bytes sha256" of a completed job, filled the first time a manifest asks. */
  jobFiles(jobId: string): string {
    return `${this.root}:job:${jobId}:files`;
  }
}
