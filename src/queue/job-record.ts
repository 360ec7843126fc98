/**
 * The public record of an embedding job, kept in a Redis hash beside BullMQ's own keys. A slide job
 * is three kinds of BullMQ job (slide, chunks, assemble); the API answers from this one record
 * (state, progress, timings, error, results) rather than piecing BullMQ states together. States
 * only move forward and a finished record never changes again, so a late event from a retried or
 * stalled BullMQ job cannot undo a cancellation or a completion.
 */
import type { Redis } from 'ioredis';
import type { EmbedOptions } from '../pipeline/index.js';
import type { DicomWebSourceSpec, OutputKind } from './queue-jobs.js';
import type { ServiceKeys } from './redis-keys.js';

export const JOB_STATES = [
  'queued',
  'planning',
  'embedding',
  'writing',
  'completed',
  'failed',
  'cancelled',
] as const;
export type JobState = (typeof JOB_STATES)[number];
export type FinalState = Extract<JobState, 'completed' | 'failed' | 'cancelled'>;

export function isFinal(state: JobState): state is FinalState {
  return state === 'completed' || state === 'failed' || state === 'cancelled';
}

/** How long a finished job's record stays readable. */
export const RECORD_RETENTION_S = 7 * 24 * 3600;

export interface SrReference {
  readonly studyUid: string;
  readonly seriesUid: string;
  readonly sopInstanceUid: string;
  /** Where it was stored over STOW-RS; absent when it was only written to the results folder. */
  readonly storedTo?: string;
}

/** The job's bulk annotations (dicom-ann), as the SR's reference. */
export interface AnnReference extends SrReference {
  readonly annotationCount: number;
  readonly includesEmbedding: boolean;
}

export interface JobRecord {
  readonly id: string;
  readonly state: JobState;
  readonly createdAt: number;
  readonly startedAt?: number;
  readonly plannedAt?: number;
  readonly writingAt?: number;
  readonly finishedAt?: number;
  readonly source: DicomWebSourceSpec;
  readonly options: EmbedOptions;
  readonly outputs: readonly OutputKind[];
  readonly srDestination?: string;
  readonly annEmbedding?: boolean;
  readonly priority: number;
  /** Short hash of the API key that submitted the job ('anonymous' without keys). */
  readonly keyId: string;
  readonly hasToken: boolean;
  readonly modelSha256: string;
  readonly planned?: number;
  readonly chunkCount?: number;
  /** Patches embedded so far (completed chunks). */
  readonly done: number;
  readonly error?: { readonly code: string; readonly message: string };
  readonly result?: {
    readonly json: boolean;
    readonly sr?: SrReference;
    readonly ann?: AnnReference;
    /** Whether the HDF5 and Parquet files were written (absent in records from before them). */
    readonly hdf5?: boolean;
    readonly parquet?: boolean;
    /** Patches left out under frameErrors: skip (listed in the JSON result's summary). */
    readonly failedPatches?: number;
  };
}

type NewRecord = Omit<JobRecord, 'state' | 'done'>;
/** Fields a transition may set; numbers and strings are stored as they are, objects as JSON. */
export type RecordUpdate = Partial<
  Pick<
    JobRecord,
    'startedAt' | 'plannedAt' | 'writingAt' | 'finishedAt' | 'planned' | 'chunkCount' | 'error' | 'result'
  >
>;

const JSON_FIELDS = new Set(['source', 'options', 'outputs', 'error', 'result']);
const NUMBER_FIELDS = new Set([
  'createdAt',
  'startedAt',
  'plannedAt',
  'writingAt',
  'finishedAt',
  'priority',
  'planned',
  'chunkCount',
]);

/**
 * Sets fields only when the record exists, is not final, and the new state is not behind the current
 * one. Returns 1 when applied, 0 when refused, -1 when the record does not exist. KEYS: the record,
 * the job's sealed token. Moving to a final state deletes the token in the same step (whether or
 * not this call is the one that ends the job), so whoever reads a final state finds no token left.
 */
const TRANSITION_SCRIPT = `
local ranks = {queued=0, planning=1, embedding=2, writing=3, completed=4, failed=4, cancelled=4}
if ranks[ARGV[1]] == 4 then redis.call('DEL', KEYS[2]) end
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return -1 end
if ranks[cur] == 4 then return 0 end
if ranks[ARGV[1]] < ranks[cur] then return 0 end
redis.call('HSET', KEYS[1], 'state', unpack(ARGV))
return 1
`;

/**
 * Submission in one step: reads the alias of a request fingerprint; when it names a live job (not
 * failed, not cancelled) and no recompute is asked for, returns it; otherwise creates the new
 * record (with its indexes and in-flight entry) and points the alias at it. Being one script, two
 * identical requests can never both create a job, and a crash leaves either nothing or a whole
 * record (which the reconciler then enqueues). KEYS: alias, index, index of the key, in-flight set.
 * ARGV: job key root, recompute ('1'/'0'), plain id, fresh id, createdAt, then the record's fields.
 * Returns {id, state, existing (1/0)}.
 */
const CLAIM_SCRIPT = `
local root = ARGV[1]
local current = redis.call('GET', KEYS[1])
if current and ARGV[2] == '0' then
  local state = redis.call('HGET', root .. current, 'state')
  if state and state ~= 'failed' and state ~= 'cancelled' then return {current, state, 1} end
end
local id = ARGV[4]
if ARGV[2] == '0' and not current then id = ARGV[3] end
local job = root .. id
redis.call('DEL', job, job .. ':chunks')
redis.call('HSET', job, 'id', id, 'state', 'queued', unpack(ARGV, 6))
redis.call('ZADD', KEYS[2], ARGV[5], id)
redis.call('ZADD', KEYS[3], ARGV[5], id)
redis.call('SADD', KEYS[4], id)
redis.call('SET', KEYS[1], id)
return {id, 'queued', 0}
`;

function encodeFields(fields: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    out.push(name, JSON_FIELDS.has(name) ? JSON.stringify(value) : String(value));
  }
  return out;
}

function decodeRecord(hash: Record<string, string>, chunkCounts: string[]): JobRecord {
  const out: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(hash)) {
    if (JSON_FIELDS.has(name)) out[name] = JSON.parse(raw);
    else if (NUMBER_FIELDS.has(name)) out[name] = Number(raw);
    else if (name === 'hasToken' || name === 'annEmbedding') out[name] = raw === 'true';
    else out[name] = raw;
  }
  out.done = chunkCounts.reduce((sum, n) => sum + Number(n), 0);
  return out as unknown as JobRecord;
}

export interface JobPage {
  readonly jobs: JobRecord[];
  readonly total: number;
}

export class JobRecordStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: ServiceKeys,
  ) {}

  async create(record: NewRecord): Promise<void> {
    const fields = encodeFields({ ...record, state: 'queued' });
    await this.redis
      .multi()
      .del(this.keys.job(record.id), this.keys.jobChunks(record.id))
      .hset(this.keys.job(record.id), ...fields)
      .zadd(this.keys.jobIndex(), record.createdAt, record.id)
      .zadd(this.keys.jobIndexOfKey(record.keyId), record.createdAt, record.id)
      .sadd(this.keys.inFlight(record.keyId), record.id)
      .exec();
  }

  /**
   * Returns the live job of `aliasKey`, or creates `record` atomically (CLAIM_SCRIPT). The new id
   * is `plainId` for a first run, `freshId` when recomputing or replacing a failed or expired run.
   */
  async claim(
    aliasKey: string,
    ids: { readonly plainId: string; readonly freshId: string },
    recompute: boolean,
    record: Omit<NewRecord, 'id'>,
  ): Promise<{ id: string; state: JobState; existing: boolean }> {
    const fields = encodeFields({ ...record });
    const [id, state, existing] = (await this.redis.eval(
      CLAIM_SCRIPT,
      4,
      aliasKey,
      this.keys.jobIndex(),
      this.keys.jobIndexOfKey(record.keyId),
      this.keys.inFlight(record.keyId),
      this.keys.job(''),
      recompute ? '1' : '0',
      ids.plainId,
      ids.freshId,
      String(record.createdAt),
      ...fields,
    )) as [string, JobState, number];
    return { id, state, existing: existing === 1 };
  }

  /** Ids of unfinished jobs (every API key's in-flight set), for the reconciler. */
  async inFlightIds(): Promise<string[]> {
    const ids = new Set<string>();
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', this.keys.inFlight('*'), 'COUNT', 500);
      cursor = next;
      for (const key of keys) for (const id of await this.redis.smembers(key)) ids.add(id);
    } while (cursor !== '0');
    return [...ids];
  }

  async get(jobId: string): Promise<JobRecord | undefined> {
    const [[, hash], [, chunks]] = (await this.redis
      .multi()
      .hgetall(this.keys.job(jobId))
      .hvals(this.keys.jobChunks(jobId))
      .exec()) as [[unknown, Record<string, string>], [unknown, string[]]];
    if (!hash || Object.keys(hash).length === 0) return undefined;
    return decodeRecord(hash, chunks);
  }

  /** Records of many jobs in one round trip (batches of a thousand slides); undefined where gone. */
  async getMany(jobIds: readonly string[]): Promise<Array<JobRecord | undefined>> {
    if (jobIds.length === 0) return [];
    const tx = this.redis.pipeline();
    for (const id of jobIds) tx.hgetall(this.keys.job(id)).hvals(this.keys.jobChunks(id));
    const replies = (await tx.exec()) ?? [];
    return jobIds.map((_, i) => {
      const [errHash, hash] = replies[2 * i] as [Error | null, Record<string, string>];
      const [errChunks, chunks] = replies[2 * i + 1] as [Error | null, string[]];
      if (errHash) throw errHash;
      if (errChunks) throw errChunks;
      if (!hash || Object.keys(hash).length === 0) return undefined;
      return decodeRecord(hash, chunks);
    });
  }

  async state(jobId: string): Promise<JobState | undefined> {
    return ((await this.redis.hget(this.keys.job(jobId), 'state')) ?? undefined) as JobState | undefined;
  }

  /** Moves a job forward; false when it is already final (e.g. cancelled) or further along. */
  async transition(
    jobId: string,
    state: Exclude<JobState, FinalState>,
    update: RecordUpdate = {},
  ): Promise<boolean> {
    const applied = await this.redis.eval(
      TRANSITION_SCRIPT,
      2,
      this.keys.job(jobId),
      this.keys.token(jobId),
      state,
      ...encodeFields(update as Record<string, unknown>),
    );
    return applied === 1;
  }

  /**
   * Ends a job: sets the final state once (later calls are refused) and deletes its token in the
   * same step, frees its in-flight slot and starts the retention clock. Returns whether this call
   * was the one that ended it.
   */
  async finish(jobId: string, state: FinalState, update: RecordUpdate = {}): Promise<boolean> {
    const finishedAt = update.finishedAt ?? Date.now();
    const applied = await this.redis.eval(
      TRANSITION_SCRIPT,
      2,
      this.keys.job(jobId),
      this.keys.token(jobId),
      state,
      ...encodeFields({ ...update, finishedAt } as Record<string, unknown>),
    );
    if (applied !== 1) return false;
    const keyId = await this.redis.hget(this.keys.job(jobId), 'keyId');
    const tx = this.redis
      .multi()
      .expire(this.keys.job(jobId), RECORD_RETENTION_S)
      .expire(this.keys.jobChunks(jobId), RECORD_RETENTION_S);
    if (keyId) tx.srem(this.keys.inFlight(keyId), jobId);
    if (state === 'failed' && update.error) tx.hincrby(this.keys.errorCounts(), update.error.code, 1);
    await tx.exec();
    return true;
  }

  /** Records a finished chunk; idempotent, so a chunk redone after a crash counts once. */
  async chunkDone(jobId: string, chunkIndex: number, patches: number): Promise<void> {
    await this.redis.hset(this.keys.jobChunks(jobId), String(chunkIndex), String(patches));
  }

  /** Most recent first; only `keyId`'s jobs when given. Drops index entries whose record expired. */
  async list(options: { keyId?: string; offset: number; limit: number }): Promise<JobPage> {
    const index = options.keyId ? this.keys.jobIndexOfKey(options.keyId) : this.keys.jobIndex();
    const [total, ids] = await Promise.all([
      this.redis.zcard(index),
      this.redis.zrevrange(index, options.offset, options.offset + options.limit - 1),
    ]);
    const records = await Promise.all(ids.map((id) => this.get(id)));
    const expired = ids.filter((_, i) => records[i] === undefined);
    if (expired.length > 0) await this.redis.zrem(index, ...expired);
    return { jobs: records.filter((r): r is JobRecord => r !== undefined), total: total - expired.length };
  }

  /** Unfinished jobs of an API key; entries whose record is final or gone are pruned first. */
  async countInFlight(keyId: string): Promise<number> {
    const key = this.keys.inFlight(keyId);
    const ids = await this.redis.smembers(key);
    if (ids.length === 0) return 0;
    const states = await Promise.all(ids.map((id) => this.state(id)));
    const stale = ids.filter((_, i) => states[i] === undefined || isFinal(states[i] as JobState));
    if (stale.length > 0) await this.redis.srem(key, ...stale);
    return ids.length - stale.length;
  }
}
