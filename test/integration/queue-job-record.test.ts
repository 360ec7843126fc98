/**
 * The job record's final step against a real Redis: ending a job deletes its sealed store token
 * in the same step, so a client that sees the final state can never find the token still there.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FinalState, JobRecordStore } from '../../src/queue/job-record.js';
import { ServiceKeys } from '../../src/queue/redis-keys.js';
import { TokenVault } from '../../src/queue/token-vault.js';
import { jobToken } from '../../src/queue/worker-context.js';
import { scanKeys } from '../helpers/redis.js';
import { services } from '../helpers/services.js';

const PREFIX = `pe-test-record-${randomBytes(4).toString('hex')}`;
const keys = new ServiceKeys(PREFIX);
let redis: Redis;
let watcher: Redis;
let records: JobRecordStore;
let vault: TokenVault;

beforeAll(() => {
  redis = new Redis(services().redisUrl);
  watcher = new Redis(services().redisUrl);
  records = new JobRecordStore(redis, keys);
  vault = new TokenVault(redis, keys, randomBytes(32).toString('hex'));
});

afterAll(async () => {
  const left = await scanKeys(redis, PREFIX);
  if (left.length > 0) await redis.del(...left);
  redis.disconnect();
  watcher.disconnect();
});

async function jobWithToken(token: string): Promise<string> {
  const id = `job-${randomBytes(6).toString('hex')}`;
  await records.create({
    id,
    createdAt: Date.now(),
    source: {
      kind: 'dicomweb',
      baseUrl: 'http://store.test/dicom-web',
      studyUid: '1.2.3',
      seriesUid: '1.2.3.4',
    },
    options: {},
    outputs: ['json'],
    priority: 0,
    keyId: 'key-a',
    hasToken: true,
    modelSha256: '0'.repeat(64),
  });
  await vault.put(id, token);
  expect(await vault.get(id)).toBe(token);
  return id;
}

describe('JobRecordStore.finish', () => {
  it.each<FinalState>(['completed', 'failed', 'cancelled'])(
    'deletes the token in the same step that makes the job %s',
    async (state) => {
      const id = await jobWithToken(`tok-${randomBytes(8).toString('hex')}`);
      // MONITOR shows each command Redis runs; the state and the token must go in one EVAL, with no
      // reply between them that a polling client could read.
      const monitor = await watcher.monitor();
      const commands: Array<{ line: string; source: string }> = [];
      monitor.on('monitor', (_time: string, args: string[], source: string) => {
        if (args.some((a) => a.includes(id))) commands.push({ line: args.join(' '), source });
      });
      expect(await records.finish(id, state)).toBe(true);
      await redis.ping();
      await monitor.disconnect();

      expect((await records.get(id))?.state).toBe(state);
      expect(await redis.exists(keys.token(id))).toBe(0);
      expect(await vault.get(id)).toBeUndefined();
      const ending = commands.filter((c) => /^eval /i.test(c.line));
      expect(ending).toHaveLength(1);
      expect(ending[0]?.line).toContain(keys.token(id));
      // The token's DEL runs inside that script (MONITOR names its source 'lua'), never as a
      // command of its own after the reply.
      const deletes = commands.filter((c) => /^del /i.test(c.line) && c.line.includes(keys.token(id)));
      expect(deletes.map((c) => c.source)).toEqual(['lua']);
    },
  );

  it('deletes a token put after the job already ended when it is ended again, and keeps the first end', async () => {
    const id = await jobWithToken('tok-first');
    expect(await records.finish(id, 'cancelled')).toBe(true);
    // A token that landed after the end (a submission racing a cancel) goes with the next attempt.
    await vault.put(id, 'tok-late');
    expect(await records.finish(id, 'completed')).toBe(false);
    expect(await redis.exists(keys.token(id))).toBe(0);
    expect((await records.get(id))?.state).toBe('cancelled');
  });

  it('keeps the token while the job only moves forward', async () => {
    const id = await jobWithToken('tok-running');
    expect(await records.transition(id, 'planning')).toBe(true);
    expect(await records.transition(id, 'embedding')).toBe(true);
    expect(await vault.get(id)).toBe('tok-running');
  });
});

describe('jobToken', () => {
  it('says JOB_CANCELLED when the token went with a cancel, DICOMWEB_UNAUTHORIZED when it is gone otherwise', async () => {
    const token = `tok-${randomBytes(8).toString('hex')}`;
    const cancelled = await jobWithToken(token);
    expect(await jobToken({ vault, records }, cancelled, true)).toBe(token);
    // A chunk that read its record just before the cancel asks for the token just after it.
    expect(await records.finish(cancelled, 'cancelled')).toBe(true);
    await expect(jobToken({ vault, records }, cancelled, true)).rejects.toMatchObject({
      code: 'JOB_CANCELLED',
    });

    const expired = await jobWithToken(`tok-${randomBytes(8).toString('hex')}`);
    await vault.delete(expired);
    const err = await jobToken({ vault, records }, expired, true).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DICOMWEB_UNAUTHORIZED' });
    expect((err as Error).message).toMatch(/token of job-\w+ is gone/);
    // A job without a token never asks the vault.
    expect(await jobToken({ vault, records }, expired, false)).toBeUndefined();
  });
});
