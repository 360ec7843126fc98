/**
 * The record of a batch in Redis: a hash (who submitted it, its sources as normalised, the series
 * its studies and searches skipped, when its current run started, and the high-water marks that
 * keep its reported progress from going backwards) and a list of its job ids in slide order. A
 * batch id is a hash of the batch's content and the API key, so submitting the same batch again
 * lands on the same record. Writes are one MULTI each (the whole job list replaced at once), so a
 * reader sees the old run or the new one, never half of each.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { canonicalJson } from '../canonical-json.js';
import { RECORD_RETENTION_S } from './job-record.js';
import type { OutputKind } from './queue-jobs.js';
import type { ServiceKeys } from './redis-keys.js';

const ID_HEX_DIGITS = 32;
const ID_PREFIX = 'b';
const BATCH_ID_VERSION = 1;
export const BATCH_ID_PATTERN = /^b[0-9a-f]{32}$/;
/** Job ids pushed per RPUSH: one command stays well under Redis's argument limits and latency budget. */
const RPUSH_SLICE = 1000;

/** A series a study or search did not turn into a job, and why. */
export interface SkippedSlide {
  readonly seriesUrl: string;
  readonly reason: string;
  readonly imageTypes: readonly string[];
  /** The batch source (index into the request's sources) that found it. */
  readonly source: number;
}

export interface BatchRecord {
  readonly id: string;
  readonly keyId: string;
  readonly createdAt: number;
  /** When the current run was submitted (a resubmission that changes the job list starts a new run). */
  readonly runStartedAt: number;
  readonly runs: number;
  /** The sources as normalised at submission (series, studies, searches). */
  readonly sources: readonly unknown[];
  readonly outputs: readonly OutputKind[];
  readonly skipped: readonly SkippedSlide[];
  readonly jobCount: number;
  readonly cancelledAt?: number;
  /** Highest slides-finished count reported in this run. */
  readonly markFinished: number;
  /** Highest patches-done count reported in this run. */
  readonly markPatchesDone: number;
}

/** The id of a batch: its content (normalised sources, resolved options, outputs, SR destination) and the key. */
export function batchIdFor(content: unknown, keyId: string): string {
  const digest = createHash('sha256')
    .update(canonicalJson({ v: BATCH_ID_VERSION, content, key: keyId }))
    .digest('hex');
  return ID_PREFIX + digest.slice(0, ID_HEX_DIGITS);
}

const JSON_FIELDS = new Set(['sources', 'outputs', 'skipped']);

/**
 * Raises the monotone marks to at least the given values and returns them: two pollers racing
 * both see values no lower than any either saw before. Counts taken during an earlier run (a
 * resubmission started a new one, resetting the marks, between the poller's read and this call)
 * raise nothing, so a replaced run's totals never show as the new run's progress.
 * KEYS: batch hash. ARGV: finished, patches, the run the counts were taken in.
 * Returns the marks and 1 when the counts were stale.
 */
const RAISE_MARKS_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, -1, 0} end
local f = tonumber(redis.call('HGET', KEYS[1], 'markFinished') or '0')
local p = tonumber(redis.call('HGET', KEYS[1], 'markPatchesDone') or '0')
if (redis.call('HGET', KEYS[1], 'runs') or '0') ~= ARGV[3] then return {f, p, 1} end
local nf = tonumber(ARGV[1])
local np = tonumber(ARGV[2])
if nf > f then f = nf; redis.call('HSET', KEYS[1], 'markFinished', f) end
if np > p then p = np; redis.call('HSET', KEYS[1], 'markPatchesDone', p) end
return {f, p, 0}
`;

export class BatchStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: ServiceKeys,
  ) {}

  async get(batchId: string): Promise<BatchRecord | undefined> {
    const hash = await this.redis.hgetall(this.keys.batch(batchId));
    if (!hash || Object.keys(hash).length === 0) return undefined;
    const out: Record<string, unknown> = {};
    for (const [name, raw] of Object.entries(hash)) {
      if (JSON_FIELDS.has(name)) out[name] = JSON.parse(raw);
      else if (name === 'id' || name === 'keyId') out[name] = raw;
      else out[name] = Number(raw);
    }
    out.markFinished ??= 0;
    out.markPatchesDone ??= 0;
    return out as unknown as BatchRecord;
  }

  async jobIds(batchId: string, start = 0, stop = -1): Promise<string[]> {
    return this.redis.lrange(this.keys.batchJobs(batchId), start, stop);
  }

  /**
   * Writes a batch run: creates the record, or on a resubmission replaces its job list. When the
   * job list is unchanged (every slide answered by the same job) the run, its start and its
   * progress marks are kept, so a client resubmitting while polling never sees progress drop; a
   * changed list (failed slides replaced by new jobs, a search that now finds more) is a new run.
   */
  async save(
    record: Pick<BatchRecord, 'id' | 'keyId' | 'sources' | 'outputs' | 'skipped'>,
    jobIds: readonly string[],
    now = Date.now(),
  ): Promise<{ created: boolean; newRun: boolean }> {
    const key = this.keys.batch(record.id);
    const listKey = this.keys.batchJobs(record.id);
    const previous = await this.get(record.id);
    const previousIds = previous ? await this.jobIds(record.id) : [];
    const sameJobs =
      previous !== undefined &&
      previousIds.length === jobIds.length &&
      previousIds.every((id, i) => id === jobIds[i]);
    const tx = this.redis.multi();
    if (!sameJobs) {
      tx.del(listKey);
      for (let i = 0; i < jobIds.length; i += RPUSH_SLICE) {
        tx.rpush(listKey, ...jobIds.slice(i, i + RPUSH_SLICE));
      }
      tx.hset(key, 'runStartedAt', now, 'runs', (previous?.runs ?? 0) + 1, 'markFinished', 0);
      tx.hset(key, 'markPatchesDone', 0);
      tx.hdel(key, 'cancelledAt');
    }
    tx.hset(
      key,
      'id',
      record.id,
      'keyId',
      record.keyId,
      'createdAt',
      previous?.createdAt ?? now,
      'sources',
      JSON.stringify(record.sources),
      'outputs',
      JSON.stringify(record.outputs),
      'skipped',
      JSON.stringify(record.skipped),
      'jobCount',
      jobIds.length,
    );
    // Bounded: a batch nobody resubmits or polls goes when its jobs' records would.
    tx.expire(key, RECORD_RETENTION_S).expire(listKey, RECORD_RETENTION_S);
    await tx.exec();
    return { created: previous === undefined, newRun: !sameJobs };
  }

  /** Raises the progress marks (RAISE_MARKS_SCRIPT) and returns them. */
  async raiseMarks(
    batchId: string,
    run: number,
    finished: number,
    patchesDone: number,
  ): Promise<{ finished: number; patchesDone: number }> {
    const [f, p, stale] = (await this.redis.eval(
      RAISE_MARKS_SCRIPT,
      1,
      this.keys.batch(batchId),
      String(finished),
      String(patchesDone),
      String(run),
    )) as [number, number, number];
    if (stale === 1) return { finished: f, patchesDone: p };
    return { finished: Math.max(f, finished), patchesDone: Math.max(p, patchesDone) };
  }

  /** Keeps a batch that is still being watched from expiring under its client. */
  async touch(batchId: string): Promise<void> {
    await this.redis
      .multi()
      .expire(this.keys.batch(batchId), RECORD_RETENTION_S)
      .expire(this.keys.batchJobs(batchId), RECORD_RETENTION_S)
      .exec();
  }

  async markCancelled(batchId: string, now = Date.now()): Promise<void> {
    await this.redis.hset(this.keys.batch(batchId), 'cancelledAt', now);
  }
}
