/**
 * The reconciler: finds unfinished job records whose BullMQ jobs are gone or dead and repairs
 * them, so that no record stays `queued` or `embedding` for ever. A record can lose its queue job
 * when the API dies between creating the record and adding the job, or when a slide job ends
 * without its record being told (a worker killed between the two writes). Runs at API and worker
 * start, then every PATHEMBED_RECONCILE_INTERVAL_MS, in any number of processes at once: every
 * repair is idempotent (deterministic BullMQ ids, final states set once).
 */
import type { Job } from 'bullmq';
import type { Logger } from '../log.js';
import { isFinal, type JobRecord } from './job-record.js';
import { enqueueSlide } from './job-submitter.js';
import type { QueueContext } from './queue-context.js';
import { bullJobIds } from './queue-jobs.js';
import { failureFromReason } from './retry-policy.js';

export interface ReconcileReport {
  /** Records looked at (unfinished and older than the grace period). */
  readonly checked: number;
  /** Slide jobs added again for records that had none. */
  readonly requeued: string[];
  /** Records ended as failed because their queue job had failed. */
  readonly failed: string[];
}

type Outcome = 'ok' | 'requeued' | 'failed';

export class JobReconciler {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<ReconcileReport> | undefined;

  constructor(
    private readonly ctx: QueueContext,
    private readonly logger: Logger,
  ) {}

  /** One pass over every unfinished record. Concurrent calls share one pass. */
  reconcile(now = Date.now()): Promise<ReconcileReport> {
    this.#running ??= this.#pass(now).finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /** A pass now (errors logged, never thrown: Redis may be down), then one every interval. */
  start(): void {
    const run = () => {
      this.reconcile().catch((err: unknown) =>
        this.logger.warn({ err: (err as Error).message }, 'job reconciliation failed; retrying later'),
      );
    };
    run();
    this.#timer = setInterval(run, this.ctx.config.PATHEMBED_RECONCILE_INTERVAL_MS);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => undefined);
  }

  async #pass(now: number): Promise<ReconcileReport> {
    const { ctx } = this;
    const requeued: string[] = [];
    const failed: string[] = [];
    let checked = 0;
    for (const id of await ctx.records.inFlightIds()) {
      const record = await ctx.records.get(id);
      if (!record || isFinal(record.state)) continue;
      if (now - record.createdAt < ctx.config.PATHEMBED_RECONCILE_GRACE_MS) continue;
      checked++;
      const outcome = await this.#repair(record);
      if (outcome === 'requeued') requeued.push(id);
      if (outcome === 'failed') failed.push(id);
    }
    if (requeued.length > 0 || failed.length > 0) {
      this.logger.warn({ checked, requeued, failed }, 'reconciled jobs that had lost their queue job');
    }
    return { checked, requeued, failed };
  }

  async #repair(record: JobRecord): Promise<Outcome> {
    const { queue } = this.ctx;
    const slide = await queue.getJob(bullJobIds.slide(record.id));
    const slideState = slide ? await slide.getState() : undefined;
    if (slide && slideState === 'failed') return this.#fail(record, slide);
    if (record.state === 'queued' || record.state === 'planning') {
      if (slide) return 'ok';
      return this.#requeue(record);
    }
    // embedding or writing: the assemble parent carries the job from here.
    const assemble = await queue.getJob(bullJobIds.assemble(record.id));
    if (assemble) {
      return (await assemble.getState()) === 'failed' ? this.#fail(record, assemble) : 'ok';
    }
    // No parent: the slide job died between planning and the fan-out, or was removed. While it
    // is still queued or running it will add the flow itself; otherwise plan the slide again.
    if (slide && slideState !== 'completed') return 'ok';
    await slide?.remove().catch(() => undefined);
    return this.#requeue(record);
  }

  async #requeue(record: JobRecord): Promise<Outcome> {
    await enqueueSlide(this.ctx, {
      jobId: record.id,
      source: record.source,
      options: record.options,
      outputs: record.outputs,
      srDestination: record.srDestination,
      ...(record.annEmbedding ? { annEmbedding: true } : {}),
      hasToken: record.hasToken,
      priority: record.priority,
    });
    return 'requeued';
  }

  async #fail(record: JobRecord, job: Job): Promise<Outcome> {
    const { code, message } = failureFromReason(job.failedReason ?? 'the queue job failed');
    const ended = await this.ctx.records.finish(record.id, 'failed', { error: { code, message } });
    return ended ? 'failed' : 'ok';
  }
}
