/**
 * One contract, two stores: the same assertions run against the folder store and the S3 store on
 * a real S3-compatible server process (s3rver, started here on a free port). Then what only the
 * S3 store has: the startup check's config errors and the typed errors of an unreachable store.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceProcess } from '../../scripts/dev-services/cohort.js';
import { freePort } from '../../scripts/dev-services/ports.js';
import {
  S3RVER_ACCESS_KEY,
  S3RVER_SECRET_KEY,
  type S3Server,
  startS3Server,
} from '../../scripts/dev-services/s3-server.js';
import { loadConfig } from '../../src/config.js';
import { resultStoreOptions } from '../../src/domain-options.js';
import { PathembedError } from '../../src/errors.js';
import { LocalResultStore, type ResultStore } from '../../src/queue/result-store.js';
import { S3ResultStore } from '../../src/queue/s3-result-store.js';
import { services } from '../helpers/services.js';

const BUCKET = 'contract';
/** Above the S3 store's 8 MiB part size, so streamed writes go up as a multipart upload. */
const LARGE_BYTES = 20 * 1024 * 1024 + 12345;
/** Above ListObjectsV2's 1,000-key page, so deleteTree must page. */
const MANY_KEYS = 1005;

let s3: S3Server;
let tmp: string;

beforeAll(async () => {
  s3 = await startS3Server({ buckets: [BUCKET] });
  tmp = await mkdtemp(path.join(os.tmpdir(), 'pathembed-contract-'));
});

afterAll(async () => {
  await s3?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

function s3Store(bucket = BUCKET, prefix = 'pfx', endpoint = s3?.endpoint): S3ResultStore {
  return new S3ResultStore({
    bucket,
    prefix,
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: S3RVER_ACCESS_KEY, secretAccessKey: S3RVER_SECRET_KEY },
  });
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Writes `bytes` through openWrite in 64 KiB pieces, honouring backpressure. */
async function writeStreamed(store: ResultStore, key: string, bytes: Buffer, commit: boolean): Promise<void> {
  const upload = await store.openWrite(key);
  const PIECE = 64 * 1024;
  for (let i = 0; i < bytes.length; i += PIECE) {
    if (!upload.stream.write(bytes.subarray(i, i + PIECE))) {
      await new Promise((r) => upload.stream.once('drain', r));
    }
  }
  // Not visible while being written.
  expect(await store.exists(key)).toBe(false);
  if (commit) await upload.commit();
  else await upload.abort();
}

const stores: [string, () => Promise<ResultStore>][] = [
  ['folder', async () => new LocalResultStore(await mkdtemp(path.join(tmp, 'folder-')))],
  ['s3', async () => s3Store(BUCKET, `pfx-${randomBytes(3).toString('hex')}`)],
];

describe.each(stores)('ResultStore contract: %s', (_name, make) => {
  let store: ResultStore;
  beforeAll(async () => {
    store = await make();
    await store.check();
  });
  afterAll(() => store?.close());

  it('puts, gets, sizes and overwrites; a missing key reads as undefined', async () => {
    expect(await store.get('jobs/none/plan.json')).toBeUndefined();
    expect(await store.size('jobs/none/plan.json')).toBeUndefined();
    expect(await store.exists('jobs/none/plan.json')).toBe(false);
    expect(await store.openRead('jobs/none/plan.json')).toBeUndefined();
    await store.put('jobs/a/plan.json', '{"n":1}');
    await store.put('jobs/a/plan.json', '{"n":22}');
    expect((await store.get('jobs/a/plan.json'))?.toString()).toBe('{"n":22}');
    expect(await store.size('jobs/a/plan.json')).toBe(8);
    const bin = randomBytes(4099);
    await store.put('jobs/a/chunks/000001.f32', bin);
    expect(sha((await store.get('jobs/a/chunks/000001.f32')) as Buffer)).toBe(sha(bin));
  });

  it('streams a large value in and out, published only at commit', async () => {
    const big = randomBytes(LARGE_BYTES);
    await writeStreamed(store, 'jobs/big/result.json', big, true);
    expect(await store.size('jobs/big/result.json')).toBe(LARGE_BYTES);
    const read = await store.openRead('jobs/big/result.json');
    const hash = createHash('sha256');
    let pieces = 0;
    for await (const piece of read as Readable) {
      hash.update(piece as Buffer);
      pieces++;
    }
    expect(hash.digest('hex')).toBe(sha(big));
    // Streamed, not one buffer: the body arrives in many pieces.
    expect(pieces).toBeGreaterThan(1);
  });

  it('abort leaves nothing, small or multipart', async () => {
    await writeStreamed(store, 'jobs/ab/small.json', randomBytes(1000), false);
    await writeStreamed(store, 'jobs/ab/large.json', randomBytes(LARGE_BYTES), false);
    expect(await store.exists('jobs/ab/small.json')).toBe(false);
    expect(await store.exists('jobs/ab/large.json')).toBe(false);
    expect(await store.list('jobs/ab')).toEqual([]);
  });

  it('a failing source stream aborts the write and publishes nothing', async () => {
    const upload = await store.openWrite('jobs/err/result.json');
    upload.stream.write(randomBytes(1000));
    await upload.abort();
    // commit after abort is a no-op, not a publish.
    await upload.commit();
    expect(await store.exists('jobs/err/result.json')).toBe(false);
  });

  it(`deleteTree removes a prefix of ${MANY_KEYS} values (paged) and nothing beside it`, async () => {
    const keys = Array.from(
      { length: MANY_KEYS },
      (_, i) => `jobs/many/chunks/${String(i).padStart(6, '0')}.f32`,
    );
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(keys.slice(i, i + 50).map((k) => store.put(k, 'x')));
    }
    await store.put('jobs/many-other/plan.json', 'keep');
    await store.put('jobs/many/plan.json', 'plan');
    expect((await store.list('jobs/many')).length).toBe(MANY_KEYS + 1);
    await store.deleteTree('jobs/many/chunks');
    expect(await store.list('jobs/many')).toEqual(['jobs/many/plan.json']);
    await store.deleteTree('jobs/many');
    expect(await store.list('jobs/many')).toEqual([]);
    expect((await store.get('jobs/many-other/plan.json'))?.toString()).toBe('keep');
    // Deleting what is not there is fine.
    await store.deleteTree('jobs/never');
    await store.delete('jobs/never/plan.json');
  });

  it('refuses keys that would leave the store', async () => {
    await expect(store.put('../escape', 'x')).rejects.toThrow(/Invalid result store key/);
    await expect(store.get('jobs/../../x')).rejects.toThrow(/Invalid result store key/);
  });
});

describe('S3 store only', () => {
  it('reads PATHEMBED_RESULT_STORE and refuses bad URLs with CONFIG_INVALID', () => {
    const base = { PATHEMBED_S3_ENDPOINT: 'http://127.0.0.1:9', PATHEMBED_S3_FORCE_PATH_STYLE: 'true' };
    expect(
      resultStoreOptions(loadConfig({ ...base, PATHEMBED_RESULT_STORE: 's3://my-bucket/a/b' })),
    ).toMatchObject({
      kind: 's3',
      bucket: 'my-bucket',
      prefix: 'a/b',
      endpoint: 'http://127.0.0.1:9',
      forcePathStyle: true,
      region: 'us-east-1',
    });
    expect(resultStoreOptions(loadConfig({ PATHEMBED_RESULT_STORE: 'file:///srv/results' }))).toEqual({
      kind: 'file',
      root: '/srv/results',
    });
    expect(resultStoreOptions(loadConfig({ PATHEMBED_RESULTS_DIR: '/x' }))).toEqual({
      kind: 'file',
      root: '/x',
    });
    expect(() => resultStoreOptions(loadConfig({ PATHEMBED_RESULT_STORE: 's3://B_ad/x' }))).toThrow(
      /invalid bucket name 'B_ad'/,
    );
    expect(() => resultStoreOptions(loadConfig({ PATHEMBED_RESULT_STORE: 's3://bucket/a/../b' }))).toThrow(
      PathembedError,
    );
    expect(() => loadConfig({ PATHEMBED_RESULT_STORE: 'gs://bucket' })).toThrow(/PATHEMBED_RESULT_STORE/);
  });

  it('check() names a missing bucket and refused credentials as CONFIG_INVALID', async () => {
    const missing = s3Store('no-such-bucket');
    const err = await missing.check().catch((e) => e);
    expect(err).toBeInstanceOf(PathembedError);
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toMatch(/s3:\/\/no-such-bucket.*the bucket does not exist/);
    missing.close();

    const wrongKeys = new S3ResultStore({
      bucket: BUCKET,
      prefix: '',
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'WRONG', secretAccessKey: 'WRONG' },
    });
    const denied = await wrongKeys.check().catch((e) => e);
    expect(denied.code).toBe('CONFIG_INVALID');
    expect(denied.message).toMatch(/credentials are missing or not allowed/);
    // At run time the same refusal is CONFIG_INVALID too: retrying cannot fix credentials.
    const put = await wrongKeys.put('jobs/x/plan.json', 'x').catch((e) => e);
    expect(put.code).toBe('CONFIG_INVALID');
    wrongKeys.close();
  });

  it('an unreachable store: writes fail RESULT_WRITE_FAILED, reads RESULT_STORE_UNAVAILABLE, both retryable', async () => {
    const dead = s3Store(BUCKET, 'p', `http://127.0.0.1:${await freePort()}`);
    const startErr = await dead.check().catch((e) => e);
    expect(startErr.code).toBe('CONFIG_INVALID');
    expect(startErr.message).toMatch(/cannot be reached/);
    const w = await dead.put('jobs/x/plan.json', 'x').catch((e) => e);
    expect(w.code).toBe('RESULT_WRITE_FAILED');
    expect(w.retryable).toBe(true);
    const up = await dead.openWrite('jobs/x/result.json');
    up.stream.write('abc');
    const c = await up.commit().catch((e) => e);
    expect(c.code).toBe('RESULT_WRITE_FAILED');
    const r = await dead.get('jobs/x/plan.json').catch((e) => e);
    expect(r.code).toBe('RESULT_STORE_UNAVAILABLE');
    expect(r.retryable).toBe(true);
    dead.close();
  });

  it('keeps values under its prefix as objects in the bucket, nothing else', async () => {
    const store = s3Store(BUCKET, 'layout');
    await store.put('jobs/j1/plan.json', '{}');
    // s3rver keeps each object as files under <dataDir>/<bucket>/<key>: the key layout on the wire.
    const files = await readdir(path.join(s3.dataDir, BUCKET, 'layout', 'jobs', 'j1'));
    expect(files.some((f) => f.startsWith('plan.json'))).toBe(true);
    store.close();
  });

  it('deletes key by key where the store has no DeleteObjects (501 NotImplemented)', async () => {
    // A pass-through proxy to s3rver (headers untouched, so signatures hold) that refuses
    // multi-object delete as stores without it do; every other request is s3rver's own answer.
    const upstream = new URL(s3.endpoint);
    let refused = 0;
    const proxy = http.createServer((req, res) => {
      if (req.method === 'POST' && /[?&]delete(=|&|$)/.test(req.url ?? '')) {
        refused++;
        req.resume();
        res.writeHead(501, { 'content-type': 'application/xml' });
        res.end(
          '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code><Message>multi-object delete</Message></Error>',
        );
        return;
      }
      const out = http.request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      req.pipe(out);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const store = s3Store(BUCKET, 'no-multi', `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`);
    try {
      const keys = Array.from({ length: 40 }, (_, i) => `jobs/nm/chunks/${String(i).padStart(6, '0')}.f32`);
      await Promise.all(keys.map((k) => store.put(k, 'x')));
      await store.put('jobs/nm/plan.json', 'p');
      await store.deleteTree('jobs/nm/chunks');
      expect(refused).toBe(1);
      expect(await store.list('jobs/nm')).toEqual(['jobs/nm/plan.json']);
      // Remembered: the next deleteTree does not ask again.
      await store.deleteTree('jobs/nm');
      expect(refused).toBe(1);
      expect(await store.list('jobs/nm')).toEqual([]);
    } finally {
      store.close();
      await new Promise((r) => proxy.close(r));
    }
  });

  it('`pathembed serve` and `pathembed worker` stop at start with CONFIG_INVALID naming a missing bucket', async () => {
    const env = {
      ...s3.env('missing-bucket', 'p'),
      REDIS_URL: services().redisUrl,
      PATHEMBED_QUEUE_PREFIX: `pe-test-contract-${randomBytes(3).toString('hex')}`,
      PATHEMBED_EXECUTION_PROVIDER: 'cpu',
      LOG_LEVEL: 'silent',
    };
    const procs = [
      startServiceProcess('api', ['serve', '--port', String(await freePort())], env),
      startServiceProcess('worker', ['worker', '--concurrency', '1'], env),
    ];
    try {
      for (const p of procs) {
        const code = await p.exited;
        const stderr = p.log.join('');
        expect({ name: p.name, code }).toEqual({ name: p.name, code: 1 });
        expect(stderr).toMatch(/CONFIG_INVALID/);
        expect(stderr).toMatch(/s3:\/\/missing-bucket\/p.*the bucket does not exist/);
      }
    } finally {
      for (const p of procs) await p.kill();
    }
  });
});
