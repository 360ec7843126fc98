/**
 * What every processor of a worker process shares: config, logger, queue context, the embedding
 * engine, the pipeline, the cancellation watcher, the metrics recorder, the flow producer and the
 * process-wide shutdown signal. Built once by WorkerRuntime.
 */
import type { FlowProducer } from 'bullmq';
import type { Config } from '../config.js';
import { PathembedError } from '../errors.js';
import type { Logger } from '../log.js';
import type { SlidePlan } from '../pipeline/index.js';
import { type CancelWatcher, cancelledError } from './cancellation.js';
import type { InferenceMetrics } from './inference-metrics.js';
import type { PipelinePort } from './pipeline-port.js';
import type { QueueContext } from './queue-context.js';
import { resultKeys } from './result-store.js';
import type { FrameFetchRecorder } from './service-metrics.js';
import type { WorkerOptions } from './worker-options.js';

/** Plans kept in memory per process: consecutive chunks of one slide mostly land on one worker. */
const PLAN_CACHE_ENTRIES = 8;

/** The reason running work is aborted with when the process is asked to stop (SIGTERM). */
export class ShutdownError extends Error {
  constructor() {
    super('The worker is shutting down');
    this.name = 'ShutdownError';
  }
}

export class PlanCache {
  readonly #plans = new Map<string, Promise<SlidePlan>>();

  constructor(private readonly ctx: QueueContext) {}

  get(jobId: string): Promise<SlidePlan> {
    let plan = this.#plans.get(jobId);
    if (!plan) {
      plan = this.#load(jobId);
      this.#plans.set(jobId, plan);
      plan.catch(() => this.#plans.delete(jobId));
      if (this.#plans.size > PLAN_CACHE_ENTRIES)
        this.#plans.delete(this.#plans.keys().next().value as string);
    }
    return plan;
  }

  async #load(jobId: string): Promise<SlidePlan> {
    const data = await this.ctx.results.get(resultKeys.plan(jobId));
    if (!data) {
      throw new PathembedError(
        'INTERNAL',
        `The plan of job ${jobId} is missing from ${this.ctx.results.description}`,
      );
    }
    return JSON.parse(data.toString('utf8')) as SlidePlan;
  }
}

export interface WorkerContext {
  readonly config: Config;
  readonly logger: Logger;
  readonly ctx: QueueContext;
  readonly options: WorkerOptions;
  readonly pipeline: PipelinePort;
  readonly cancels: CancelWatcher;
  readonly frames: FrameFetchRecorder;
  /** Inference batch latency and queue wait, flushed to Redis after every job. */
  readonly inference: InferenceMetrics;
  readonly flows: FlowProducer;
  readonly plans: PlanCache;
  /** Aborts (with ShutdownError) when the process is asked to stop. */
  readonly shutdown: AbortSignal;
}

/**
 * A job's store token from the vault, when it has one. A token that is gone because the job was
 * cancelled (ending a job deletes its token in the same step as the record's final state) is
 * JOB_CANCELLED, not an authorisation failure: a chunk that started just before the cancel would
 * otherwise fail, and be logged and counted, as DICOMWEB_UNAUTHORIZED.
 */
export async function jobToken(
  ctx: Pick<QueueContext, 'vault' | 'records'>,
  ownerId: string,
  hasToken: boolean,
): Promise<string | undefined> {
  if (!hasToken) return undefined;
  const token = await ctx.vault.get(ownerId);
  if (token === undefined) {
    if ((await ctx.records.get(ownerId))?.state === 'cancelled') throw cancelledError(ownerId);
    throw new PathembedError(
      'DICOMWEB_UNAUTHORIZED',
      `The bearer token of ${ownerId} is gone (the job outlived the token's ${'24 h'} retention); submit it again`,
    );
  }
  return token;
}
