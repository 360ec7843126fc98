/**
 * Submitting and cancelling embedding jobs (the API's side of the queue). A submission is
 * fingerprinted (job-id.ts); an identical unfinished or completed job is returned instead of a new
 * one unless `recompute` is asked for, and a failed or cancelled one is replaced. Tokens go to the
 * vault, never into job data. Per-key in-flight limits are checked here.
 */
import type { JobsOptions } from 'bullmq';
import { PathembedError } from '../errors.js';
import type { Logger } from '../log.js';
import type { EmbedOptions } from '../pipeline/index.js';
import { requestCancel } from './cancellation.js';
import { jobIdFor, requestFingerprint, resolvedOptions } from './job-id.js';
import { isFinal, type JobRecord, type JobState } from './job-record.js';
import type { QueueContext } from './queue-context.js';
import {
  bullJobIds,
  bullPriority,
  type DicomWebSourceSpec,
  JOB_NAMES,
  type OutputKind,
  type SlideJobData,
} from './queue-jobs.js';
import { jobRetryOptions } from './retry-policy.js';
import { readPublishedModel } from './worker-registry.js';

export interface SubmitRequest {
  readonly source: DicomWebSourceSpec;
  readonly options: EmbedOptions;
  readonly outputs: readonly OutputKind[];
  readonly srDestination?: string;
  /** The bulk annotations hold every embedding component (needs the dicom-ann output). */
  readonly annEmbedding?: boolean;
  readonly token?: string;
  readonly priority: number;
  readonly recompute: boolean;
  readonly keyId: string;
}

export interface Submitted {
  readonly jobId: string;
  readonly state: JobState;
  /** True when an identical job was returned instead of a new one. */
  readonly existing: boolean;
}

/**
 * Jobs of one batch submitted at once: each is a few Redis round trips, so a thousand one after
 * another spend most of their time waiting on the network; more lanes than this gain little and
 * crowd the Redis connection other requests share.
 */
const SUBMIT_CONCURRENCY = 16;

/** Finished BullMQ jobs are kept this long for inspection; the job record is the source of truth. */
const KEEP_FINISHED_S = 24 * 3600;

/**
 * Adds a job's slide job under its deterministic BullMQ id: adding it again while it exists (a
 * retried submit, the reconciler) is a no-op, so a slide is never planned twice.
 */
export async function enqueueSlide(ctx: QueueContext, data: SlideJobData): Promise<void> {
  const opts: JobsOptions = {
    jobId: bullJobIds.slide(data.jobId),
    priority: bullPriority(data.priority, 'plan'),
    ...jobRetryOptions(ctx.config),
    removeOnComplete: { age: KEEP_FINISHED_S },
    removeOnFail: { age: KEEP_FINISHED_S },
  };
  await ctx.queue.add(JOB_NAMES.slide, data, opts);
}

export class JobSubmitter {
  constructor(
    private readonly ctx: QueueContext,
    private readonly logger: Logger,
  ) {}

  /** The sha256 of the model the workers serve; jobs are keyed by it. */
  async modelSha256(): Promise<string> {
    let manifest: Awaited<ReturnType<typeof readPublishedModel>>;
    try {
      manifest = await readPublishedModel(this.ctx.redis, this.ctx.keys);
    } catch (err) {
      throw new PathembedError(
        'SERVICE_UNAVAILABLE',
        `Redis is unreachable, so no job can be queued; retry later: ${(err as Error).message}`,
        {},
        { cause: err },
      );
    }
    if (!manifest) {
      throw new PathembedError(
        'SERVICE_UNAVAILABLE',
        'No worker has published its model yet: start `pathembed worker` and retry (GET /readyz says when the service is ready)',
      );
    }
    return manifest.sha256;
  }

  #aliasKeyOf(
    request: SubmitRequest,
    modelSha256: string,
  ): { aliasKey: string; fingerprint: string; options: EmbedOptions } {
    const options = resolvedOptions(request.options, this.ctx.config);
    const fingerprint = requestFingerprint({
      source: request.source,
      options,
      outputs: request.outputs,
      srDestination: request.srDestination,
      annEmbedding: request.annEmbedding,
      modelSha256,
      keyId: request.keyId,
    });
    return { aliasKey: this.ctx.keys.alias(fingerprint), fingerprint, options };
  }

  async submit(request: SubmitRequest, modelSha256: string): Promise<Submitted> {
    return this.#submit(request, modelSha256, true);
  }

  /**
   * Submits the slides of a batch, all of one API key, admitted whole or not at all: the jobs it
   * would create (those not answered by a live or completed job) plus the key's unfinished jobs
   * must fit PATHEMBED_MAX_JOBS_PER_KEY, else TOO_MANY_JOBS before anything is queued. Counting
   * once instead of per job keeps a thousand-slide batch from scanning the in-flight set a
   * thousand times.
   */
  async submitMany(requests: readonly SubmitRequest[], modelSha256: string): Promise<Submitted[]> {
    const { ctx } = this;
    if (requests.length === 0) return [];
    const keyId = requests[0]!.keyId;
    const aliasKeys = requests.map((r) => this.#aliasKeyOf(r, modelSha256).aliasKey);
    const reusable = await Promise.all(
      aliasKeys.map((key, i) => (requests[i]!.recompute ? undefined : this.#reusable(key))),
    );
    const creating = reusable.filter((r) => r === undefined).length;
    if (creating > 0) {
      const inFlight = await ctx.records.countInFlight(keyId);
      const limit = ctx.config.PATHEMBED_MAX_JOBS_PER_KEY;
      if (inFlight + creating > limit) {
        throw new PathembedError(
          'TOO_MANY_JOBS',
          `The batch would add ${creating} jobs to this API key's ${inFlight} unfinished ones, more than the ${limit} allowed (PATHEMBED_MAX_JOBS_PER_KEY). A batch is admitted whole: wait for jobs to finish, split the cohort, or raise the limit for cohort keys.`,
          { inFlight, newJobs: creating, limit },
        );
      }
    }
    const out: Submitted[] = new Array(requests.length);
    let next = 0;
    const lane = async () => {
      while (next < requests.length) {
        const i = next++;
        const known = reusable[i];
        out[i] = known
          ? { jobId: known.id, state: known.state, existing: true }
          : await this.#submit(requests[i]!, modelSha256, false);
      }
    };
    await Promise.all(Array.from({ length: Math.min(SUBMIT_CONCURRENCY, requests.length) }, lane));
    return out;
  }

  async #submit(request: SubmitRequest, modelSha256: string, checkLimit: boolean): Promise<Submitted> {
    const { ctx } = this;
    const { aliasKey, fingerprint, options } = this.#aliasKeyOf(request, modelSha256);

    if (!request.recompute) {
      // The common repeat: answered without counting in-flight jobs or touching the queue.
      const existing = await this.#reusable(aliasKey);
      if (existing) return { jobId: existing.id, state: existing.state, existing: true };
    }
    const inFlight = checkLimit ? await ctx.records.countInFlight(request.keyId) : 0;
    if (inFlight >= ctx.config.PATHEMBED_MAX_JOBS_PER_KEY) {
      throw new PathembedError(
        'TOO_MANY_JOBS',
        `This API key has ${inFlight} unfinished jobs, the most allowed (PATHEMBED_MAX_JOBS_PER_KEY); wait for some to finish`,
        { inFlight, limit: ctx.config.PATHEMBED_MAX_JOBS_PER_KEY },
      );
    }

    // Alias and record in one script: of identical requests racing, exactly one creates the job
    // and the others get it back. The plain fingerprint id for a first run; a fresh one when
    // recomputing or replacing a failed run, so the old job's record and results stay as they were.
    const claimed = await ctx.records.claim(
      aliasKey,
      { plainId: jobIdFor(fingerprint), freshId: jobIdFor(fingerprint, true) },
      request.recompute,
      {
        createdAt: Date.now(),
        source: request.source,
        options,
        outputs: request.outputs,
        srDestination: request.srDestination,
        ...(request.annEmbedding ? { annEmbedding: true } : {}),
        priority: request.priority,
        keyId: request.keyId,
        hasToken: request.token !== undefined,
        modelSha256,
      },
    );
    if (claimed.existing) return { jobId: claimed.id, state: claimed.state, existing: true };
    const jobId = claimed.id;
    if (request.token !== undefined) {
      await ctx.vault.put(jobId, request.token);
      // A cancel that ended the job between the claim and the put deleted nothing yet: drop it now.
      const state = await ctx.records.state(jobId);
      if (state === undefined || isFinal(state)) await ctx.vault.delete(jobId);
    }
    // A crash before this line leaves a queued record without a queue job: the reconciler
    // enqueues it (same deterministic BullMQ id, so doing it twice adds one job).
    await enqueueSlide(ctx, {
      jobId,
      source: request.source,
      options,
      outputs: request.outputs,
      srDestination: request.srDestination,
      ...(request.annEmbedding ? { annEmbedding: true } : {}),
      hasToken: request.token !== undefined,
      priority: request.priority,
    });
    this.logger.info(
      { jobId, keyId: request.keyId, hasToken: request.token !== undefined, priority: request.priority },
      'embedding job queued',
    );
    return { jobId, state: 'queued', existing: false };
  }

  /** The job an alias points at, when it can answer a repeat (not failed, not cancelled). */
  async #reusable(aliasKey: string): Promise<JobRecord | undefined> {
    const jobId = await this.ctx.redis.get(aliasKey);
    if (!jobId) return undefined;
    const record = await this.ctx.records.get(jobId);
    if (!record || record.state === 'failed' || record.state === 'cancelled') return undefined;
    return record;
  }

  /** A job of this caller, or NOT_FOUND (another key's job is not revealed to exist). */
  async get(jobId: string, keyId: string): Promise<JobRecord> {
    const record = await this.ctx.records.get(jobId);
    if (!record || record.keyId !== keyId) {
      throw new PathembedError('NOT_FOUND', `No job ${jobId}`, { jobId });
    }
    return record;
  }

  /**
   * Cancels a job: its record ends as cancelled at once, running chunks stop at their next batch
   * (pub/sub), queued ones fail fast when a worker picks them up, and its token is deleted.
   */
  async cancel(jobId: string, keyId: string): Promise<JobRecord> {
    const record = await this.get(jobId, keyId);
    if (isFinal(record.state)) return record;
    await this.ctx.records.finish(jobId, 'cancelled', {
      error: { code: 'JOB_CANCELLED', message: 'Cancelled by the client' },
    });
    await requestCancel(this.ctx.redis, this.ctx.keys, jobId);
    this.logger.info({ jobId, keyId }, 'embedding job cancelled');
    return this.get(jobId, keyId);
  }
}
