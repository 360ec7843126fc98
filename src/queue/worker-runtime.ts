/**
 * A worker process: one BullMQ Worker on the embed queue running slide, chunk, assemble and predict
 * jobs, sharing one embedding engine. Here live the policies around the processors: permanent
 * errors fail at once with their code (UnrecoverableError), transient ones are retried with backoff,
 * a store's 429 pauses that store only (store-pause.ts: its jobs wait, delayed, while jobs of
 * other stores go on), a job's final
 * failure ends its record, and on SIGTERM running chunks stop after the batch in hand and go back
 * to the queue for another worker.
 */
import { DelayedError, FlowProducer, type Job, UnrecoverableError, WaitingError, Worker } from 'bullmq';
import type { Config } from '../config.js';
import { type ErrorCode, PathembedError, toPathembedError } from '../errors.js';
import type { Logger } from '../log.js';
import { processAssemble } from './assemble-processor.js';
import { CancelWatcher } from './cancellation.js';
import { processChunk } from './chunk-processor.js';
import { InferenceMetrics } from './inference-metrics.js';
import { JobReconciler } from './job-reconciler.js';
import type { PipelinePort } from './pipeline-port.js';
import { processPredict } from './predict-processor.js';
import { QueueContext } from './queue-context.js';
import { JOB_NAMES, QUEUE_NAME } from './queue-jobs.js';
import { resultKeys } from './result-store.js';
import { failureFromReason, forBullmq, isFinalFailure, isRateLimitError } from './retry-policy.js';
import { FrameFetchRecorder } from './service-metrics.js';
import { processSlide } from './slide-processor.js';
import { pausedForMs, pauseStore, storeAsking, storesOfJob } from './store-pause.js';
import { PlanCache, ShutdownError, type WorkerContext } from './worker-context.js';
import { type WorkerOptions, workerOptionsFrom } from './worker-options.js';
import { WorkerAnnouncer } from './worker-registry.js';

type AnyJob = Job<unknown, unknown, string>;

export interface WorkerRuntimeDeps {
  readonly config: Config;
  readonly logger: Logger;
  readonly pipeline: PipelinePort;
  /** Default: a new QueueContext from the config. */
  readonly ctx?: QueueContext;
  /** Where the pipeline's frame sources record fetch latency; flushed to Redis per job. */
  readonly frames?: FrameFetchRecorder;
  /** Where the engine records batch latency; the runtime adds queue wait and flushes both per job. */
  readonly inference?: InferenceMetrics;
}

export class WorkerRuntime {
  readonly worker: Worker;
  readonly #w: WorkerContext;
  readonly #shutdown = new AbortController();
  readonly #announcer: WorkerAnnouncer;
  readonly #ownsCtx: boolean;
  readonly #reconciler: JobReconciler;
  #closing: Promise<void> | undefined;

  private constructor(deps: WorkerRuntimeDeps, options: WorkerOptions) {
    const { config, logger, pipeline } = deps;
    const ctx = deps.ctx ?? new QueueContext(config);
    this.#ownsCtx = deps.ctx === undefined;
    this.#w = {
      config,
      logger,
      ctx,
      options,
      pipeline,
      cancels: new CancelWatcher(ctx.redis, ctx.keys, logger),
      frames: deps.frames ?? new FrameFetchRecorder(),
      inference: deps.inference ?? new InferenceMetrics(),
      flows: new FlowProducer({ connection: ctx.connection(), prefix: config.PATHEMBED_QUEUE_PREFIX }),
      plans: new PlanCache(ctx),
      shutdown: this.#shutdown.signal,
    };
    this.#reconciler = new JobReconciler(ctx, logger);
    this.#announcer = new WorkerAnnouncer(
      ctx.redis,
      ctx.keys,
      pipeline.manifest,
      {
        workerId: options.workerId,
        executionProvider: pipeline.executionProvider,
        concurrency: options.concurrency,
      },
      logger,
      options.heartbeatFile,
    );
    this.worker = new Worker(QUEUE_NAME, (job, token, signal) => this.#process(job, token, signal), {
      connection: ctx.connection(),
      prefix: config.PATHEMBED_QUEUE_PREFIX,
      concurrency: options.concurrency,
      lockDuration: options.lockDurationMs,
      stalledInterval: options.stalledIntervalMs,
      maxStalledCount: options.maxStalledCount,
      autorun: false,
    });
    this.worker.on('failed', (job, err) => {
      if (job) void this.#onFailed(job, err);
    });
    this.worker.on('error', (err) => logger.error({ err: err.message }, 'worker error'));
  }

  /** Starts consuming jobs once the model is announced and the cancel subscriber is up. */
  static async start(
    deps: WorkerRuntimeDeps,
    overrides: Partial<WorkerOptions> = {},
  ): Promise<WorkerRuntime> {
    const runtime = new WorkerRuntime(deps, workerOptionsFrom(deps.config, overrides));
    // A missing bucket or bad credentials stop the worker here, not each job later.
    try {
      await runtime.#w.ctx.results.check();
    } catch (err) {
      await runtime.close().catch(() => undefined);
      throw err;
    }
    await runtime.#w.cancels.ready();
    await runtime.#announcer.start();
    void runtime.worker.run();
    await runtime.worker.waitUntilReady();
    runtime.#reconciler.start();
    deps.logger.info(
      {
        workerId: runtime.#w.options.workerId,
        concurrency: runtime.#w.options.concurrency,
        lockMs: runtime.#w.options.lockDurationMs,
      },
      'worker started',
    );
    return runtime;
  }

  get context(): WorkerContext {
    return this.#w;
  }

  async #process(job: AnyJob, token: string | undefined, signal?: AbortSignal): Promise<unknown> {
    const w = this.#w;
    // First attempts only: a retried job's age includes its earlier attempts and backoff.
    if (job.attemptsMade === 0) w.inference.observeQueueWait(job.timestamp, job.processedOn ?? Date.now());
    try {
      return await this.#dispatch(job, token, signal);
    } finally {
      // Metrics must never fail a job: a Redis hiccup here costs a few samples, not the work.
      await w.inference.flush(w.ctx.redis, w.ctx.keys).catch(() => undefined);
    }
  }

  async #dispatch(job: AnyJob, token: string | undefined, signal?: AbortSignal): Promise<unknown> {
    const w = this.#w;
    const stores = await storesOfJob(w.ctx, job);
    const waitMs = await pausedForMs(w.ctx, stores);
    if (waitMs > 0) {
      // A paused store's job waits out the pause without using an attempt; other stores' jobs run.
      await job.moveToDelayed(Date.now() + waitMs, token);
      throw new DelayedError();
    }
    try {
      switch (job.name) {
        case JOB_NAMES.slide:
          return await processSlide(w, job as Job, signal);
        case JOB_NAMES.chunk:
          return await processChunk(w, job as Job, signal);
        case JOB_NAMES.assemble:
          return await processAssemble(w, job as Job);
        case JOB_NAMES.predict:
          return await processPredict(w, job as Job, signal);
        default:
          throw new PathembedError('INTERNAL', `Unknown job name '${job.name}'`);
      }
    } catch (raw) {
      if (
        raw instanceof ShutdownError ||
        (this.#shutdown.signal.aborted && !(raw instanceof PathembedError))
      ) {
        // Stopped after the batch in hand: back to the queue for another worker, no attempt used.
        await job.moveToWait(token);
        throw new WaitingError();
      }
      const err = toPathembedError(raw, `${job.name} job`);
      const asking = isRateLimitError(err) ? storeAsking(err, stores) : undefined;
      if (asking !== undefined) {
        const ms = await pauseStore(w.ctx, asking, err, w.options.storeRateLimitMs);
        w.logger.warn(
          { job: job.id, name: job.name, store: asking, pauseMs: ms },
          'store answered 429: pausing that store',
        );
        await job.moveToDelayed(Date.now() + ms, token);
        throw new DelayedError();
      }
      const final = isFinalFailure(err, job.attemptsMade, job.opts.attempts);
      w.logger[final ? 'error' : 'warn'](
        { job: job.id, name: job.name, code: err.code, attempt: job.attemptsMade + 1, final },
        err.message,
      );
      if (final) await this.#endJob(job, err.code, err.message);
      throw forBullmq(err);
    }
  }

  /** Ends the job record (slide jobs; predict jobs have none) as failed and drops its token. */
  async #endJob(job: AnyJob, code: ErrorCode, message: string): Promise<void> {
    if (job.name === JOB_NAMES.predict) return;
    const jobId = (job.data as { jobId: string }).jobId;
    const { ctx } = this.#w;
    // A failed or cancelled job keeps nothing on disk (plan, metadata, chunks, partial results):
    // the record holds the error, and a resubmission plans again under a new id. Removed before
    // the record says failed, so whoever sees the failure sees no files; never for a completed
    // job (a stale part failing late).
    if ((await ctx.records.state(jobId)) !== 'completed') {
      await ctx.results.deleteTree(resultKeys.jobRoot(jobId));
    }
    await ctx.records.finish(jobId, 'failed', { error: { code, message } });
  }

  /** Failures that never reached the processor's catch (a job that stalled too often). */
  async #onFailed(job: AnyJob, err: Error): Promise<void> {
    if (job.name === JOB_NAMES.predict || job.finishedOn === undefined) return;
    if (!(err instanceof UnrecoverableError) && job.attemptsMade < (job.opts.attempts ?? 1)) return;
    const { code, message } = failureFromReason(job.failedReason ?? err.message);
    await this.#endJob(job, code, message).catch(() => undefined);
  }

  /** Stops taking jobs, lets running chunks finish their batch, and releases everything. */
  close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = (async () => {
        this.#w.logger.info('worker stopping: finishing the batch in hand');
        this.#shutdown.abort(new ShutdownError());
        await this.#reconciler.stop();
        await this.worker.close();
        await this.#announcer.stop().catch(() => undefined);
        await this.#w.cancels.close();
        await this.#w.flows.close();
        await this.#w.pipeline.close();
        if (this.#ownsCtx) await this.#w.ctx.close();
        this.#w.logger.info('worker stopped');
      })();
    }
    return this.#closing;
  }
}
