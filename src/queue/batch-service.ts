/**
 * Batches on the queue's side: submitting the slides of a batch (already expanded from studies and
 * searches by the API) as jobs under one limit check, and answering for the batch as a whole:
 * counts by state, patches done and planned, slides per minute, an ETA, the failed slides, a page
 * of its jobs, cancellation, and the manifest (one row per slide with its result files and their
 * sha256). Progress is reported through the batch record's high-water marks, so it never goes
 * backwards while a client polls, whatever a job's retries do meanwhile.
 */
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PathembedError } from '../errors.js';
import type { Logger } from '../log.js';
import { type BatchRecord, BatchStore, type SkippedSlide } from './batch-record.js';
import { isFinal, JOB_STATES, type JobRecord, type JobState, RECORD_RETENTION_S } from './job-record.js';
import type { JobSubmitter, SubmitRequest } from './job-submitter.js';
import type { QueueContext } from './queue-context.js';
import { resultKeys } from './result-store.js';

/** The shortest run time a rate is computed over, so the first finished slide does not read as thousands per minute. */
const MIN_RATE_WINDOW_MS = 1000;
const MS_PER_MINUTE = 60_000;

export type BatchState = 'running' | 'completed' | 'failed' | 'cancelled';

export interface BatchSubmission {
  readonly id: string;
  readonly keyId: string;
  readonly sources: readonly unknown[];
  readonly skipped: readonly SkippedSlide[];
  /** One request per slide, in slide order. */
  readonly slides: readonly SubmitRequest[];
}

export interface BatchFailure {
  readonly jobId: string;
  readonly seriesUrl: string;
  readonly code: string;
  readonly message: string;
}

export interface BatchProgress {
  readonly record: BatchRecord;
  readonly state: BatchState;
  readonly counts: Record<JobState, number>;
  readonly slides: number;
  /** Slides in a final state (monotone within a run). */
  readonly finished: number;
  /** Patches embedded (monotone within a run). */
  readonly patchesDone: number;
  /** Patches planned by the slides planned so far (grows as slides are planned). */
  readonly patchesPlanned: number;
  readonly slidesPerMinute: number | null;
  readonly etaMs: number | null;
  readonly failed: BatchFailure[];
}

export interface ResultFile {
  readonly output: string;
  readonly bytes: number;
  readonly sha256: string;
}

export interface ManifestRow {
  readonly jobId: string;
  readonly state: JobState | 'missing';
  readonly studyUid: string;
  readonly seriesUid: string;
  readonly seriesUrl: string;
  readonly patches: number | null;
  readonly errorCode: string | null;
  readonly files: ResultFile[];
}

/** Result files of a completed job that a manifest lists: output name, result key, whether the job has it. */
const RESULT_FILES: ReadonlyArray<{
  readonly output: string;
  readonly key: (jobId: string) => string;
  readonly has: (r: JobRecord) => boolean;
}> = [
  { output: 'json', key: resultKeys.json, has: (r) => r.result?.json === true },
  { output: 'dicom-sr', key: resultKeys.sr, has: (r) => r.result?.sr !== undefined },
  { output: 'dicom-ann', key: resultKeys.ann, has: (r) => r.result?.ann !== undefined },
  { output: 'hdf5', key: resultKeys.hdf5, has: (r) => r.result?.hdf5 === true },
  { output: 'parquet', key: resultKeys.parquet, has: (r) => r.result?.parquet === true },
];

function seriesUrlOf(r: Pick<JobRecord, 'source'>): string {
  return `${r.source.baseUrl}/studies/${r.source.studyUid}/series/${r.source.seriesUid}`;
}

export class BatchService {
  readonly store: BatchStore;

  constructor(
    private readonly ctx: QueueContext,
    private readonly submitter: JobSubmitter,
    private readonly logger: Logger,
  ) {
    this.store = new BatchStore(ctx.redis, ctx.keys);
  }

  /**
   * Submits every slide (reusing live and completed jobs, replacing failed ones) and writes the
   * batch record. Safe to repeat: the same batch gives the same jobs and the same record.
   */
  async submit(
    batch: BatchSubmission,
    modelSha256: string,
  ): Promise<{ record: BatchRecord; created: boolean; reused: number }> {
    const submitted = await this.submitter.submitMany(batch.slides, modelSha256);
    const jobIds = submitted.map((s) => s.jobId);
    const { created, newRun } = await this.store.save(
      {
        id: batch.id,
        keyId: batch.keyId,
        sources: batch.sources,
        outputs: batch.slides[0]?.outputs ?? [],
        skipped: batch.skipped,
      },
      jobIds,
    );
    const reused = submitted.filter((s) => s.existing).length;
    this.logger.info(
      { batchId: batch.id, slides: jobIds.length, reused, skipped: batch.skipped.length, created, newRun },
      'batch submitted',
    );
    const record = await this.store.get(batch.id);
    if (!record) throw new PathembedError('INTERNAL', `Batch ${batch.id} vanished while it was written`);
    return { record, created, reused };
  }

  /** The batch of this caller, or NOT_FOUND (another key's batch is not revealed to exist). */
  async get(batchId: string, keyId: string): Promise<BatchRecord> {
    const record = await this.store.get(batchId);
    if (!record || record.keyId !== keyId) {
      throw new PathembedError('NOT_FOUND', `No batch ${batchId}`, { batchId });
    }
    return record;
  }

  async #jobs(batchId: string): Promise<{ ids: string[]; records: Array<JobRecord | undefined> }> {
    const ids = await this.store.jobIds(batchId);
    return { ids, records: await this.ctx.records.getMany(ids) };
  }

  async progress(batchId: string, keyId: string, now = Date.now()): Promise<BatchProgress> {
    const record = await this.get(batchId, keyId);
    const { ids, records } = await this.#jobs(batchId);
    const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
    let finished = 0;
    let done = 0;
    let planned = 0;
    let completedThisRun = 0;
    const failed: BatchFailure[] = [];
    records.forEach((r, i) => {
      if (!r) {
        // An expired record is a slide whose job ended long ago; it counts as failed, visibly.
        counts.failed++;
        finished++;
        failed.push({ jobId: ids[i]!, seriesUrl: '', code: 'NOT_FOUND', message: 'The job record expired' });
        return;
      }
      counts[r.state]++;
      if (isFinal(r.state)) finished++;
      done += r.done;
      planned += r.planned ?? 0;
      if (r.state === 'completed' && (r.finishedAt ?? 0) >= record.runStartedAt) completedThisRun++;
      if (r.state === 'failed' || r.state === 'cancelled') {
        failed.push({
          jobId: r.id,
          seriesUrl: seriesUrlOf(r),
          code: r.error?.code ?? (r.state === 'cancelled' ? 'JOB_CANCELLED' : 'INTERNAL'),
          message: r.error?.message ?? r.state,
        });
      }
    });
    const marks = await this.store.raiseMarks(batchId, record.runs, finished, done);
    const unfinished = ids.length - finished;
    if (unfinished > 0) await this.store.touch(batchId);
    const elapsedMs = Math.max(MIN_RATE_WINDOW_MS, now - record.runStartedAt);
    const slidesPerMinute = completedThisRun > 0 ? (completedThisRun / elapsedMs) * MS_PER_MINUTE : null;
    const etaMs =
      unfinished === 0
        ? 0
        : slidesPerMinute
          ? Math.round((unfinished / slidesPerMinute) * MS_PER_MINUTE)
          : null;
    let state: BatchState = 'running';
    if (unfinished === 0) {
      if (record.cancelledAt !== undefined) state = 'cancelled';
      else state = failed.length > 0 ? 'failed' : 'completed';
    }
    return {
      record,
      state,
      counts,
      slides: ids.length,
      finished: marks.finished,
      patchesDone: marks.patchesDone,
      patchesPlanned: planned,
      slidesPerMinute,
      etaMs,
      failed,
    };
  }

  /** Cancels every unfinished job of the batch; finished ones keep their results. */
  async cancel(batchId: string, keyId: string): Promise<number> {
    await this.get(batchId, keyId);
    await this.store.markCancelled(batchId);
    const { records } = await this.#jobs(batchId);
    let cancelled = 0;
    for (const r of records) {
      if (!r || isFinal(r.state)) continue;
      await this.submitter.cancel(r.id, keyId);
      cancelled++;
    }
    this.logger.info({ batchId, cancelled }, 'batch cancelled');
    return cancelled;
  }

  /** Jobs [offset, offset + limit) of the batch, in slide order. */
  async page(
    batchId: string,
    keyId: string,
    offset: number,
    limit: number,
  ): Promise<{ total: number; jobs: Array<{ id: string; record: JobRecord | undefined }> }> {
    const record = await this.get(batchId, keyId);
    const ids = await this.store.jobIds(batchId, offset, offset + limit - 1);
    const records = await this.ctx.records.getMany(ids);
    return { total: record.jobCount, jobs: ids.map((id, i) => ({ id, record: records[i] })) };
  }

  /** One row per slide; completed slides list their result files with size and sha256. */
  async manifest(batchId: string, keyId: string): Promise<ManifestRow[]> {
    await this.get(batchId, keyId);
    const { ids, records } = await this.#jobs(batchId);
    const rows: ManifestRow[] = [];
    for (const [i, r] of records.entries()) {
      if (!r) {
        rows.push({
          jobId: ids[i]!,
          state: 'missing',
          studyUid: '',
          seriesUid: '',
          seriesUrl: '',
          patches: null,
          errorCode: 'NOT_FOUND',
          files: [],
        });
        continue;
      }
      const { files, missing } = r.state === 'completed' ? await this.#files(r) : { files: [], missing: 0 };
      rows.push({
        jobId: r.id,
        state: r.state,
        studyUid: r.source.studyUid,
        seriesUid: r.source.seriesUid,
        seriesUrl: seriesUrlOf(r),
        patches: r.state === 'completed' ? (r.planned ?? r.done) : (r.planned ?? null),
        // A completed job's output gone from the store must not read as an output never asked for.
        errorCode: missing > 0 ? 'NOT_FOUND' : (r.error?.code ?? null),
        files,
      });
    }
    return rows;
  }

  /**
   * Size and sha256 of each result file of a completed job, hashed from the stored bytes the first
   * time and cached beside the job record (a completed job's results never change), and how many
   * files the record lists that the store no longer holds.
   */
  async #files(r: JobRecord): Promise<{ files: ResultFile[]; missing: number }> {
    const cacheKey = this.ctx.keys.jobFiles(r.id);
    const cached = await this.ctx.redis.hgetall(cacheKey);
    const out: ResultFile[] = [];
    let missing = 0;
    for (const file of RESULT_FILES) {
      if (!file.has(r)) continue;
      const hit = cached[file.output];
      if (hit) {
        const [bytes, sha256] = hit.split(' ');
        out.push({ output: file.output, bytes: Number(bytes), sha256: sha256! });
        continue;
      }
      const hashed = await this.#hash(file.key(r.id));
      if (!hashed) {
        missing++;
        continue;
      }
      await this.ctx.redis
        .multi()
        .hset(cacheKey, file.output, `${hashed.bytes} ${hashed.sha256}`)
        .expire(cacheKey, RECORD_RETENTION_S)
        .exec();
      out.push({ output: file.output, ...hashed });
    }
    return { files: out, missing };
  }

  async #hash(key: string): Promise<{ bytes: number; sha256: string } | undefined> {
    const stream = await this.ctx.results.openRead(key);
    if (!stream) return undefined;
    const hash = createHash('sha256');
    let bytes = 0;
    await pipeline(
      stream,
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          hash.update(chunk);
          bytes += chunk.length;
          cb();
        },
      }),
    );
    return { bytes, sha256: hash.digest('hex') };
  }
}
