/**
 * A private S3-compatible server for tests and benches: s3rver (an npm devDependency, a real HTTP
 * server speaking the S3 REST API, storing objects in a folder) started as its own child process
 * on a free loopback port. What the S3 result store uses and s3rver serves: PutObject, GetObject,
 * HeadObject, HeadBucket, DeleteObject, ListObjectsV2, DeleteObjects, and multipart upload
 * (Create/UploadPart/Complete). It does not implement AbortMultipartUpload (405); the store's
 * abort tolerates that, and an aborted upload's parts stay in s3rver's own uploads folder, never
 * as an object in the bucket. S3RVER_VERBOSE=1 shows its request log.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitFor } from './ports.js';

/** s3rver's built-in account (lib/models/account.js); any other key pair is refused with 403. */
export const S3RVER_ACCESS_KEY = 'S3RVER';
export const S3RVER_SECRET_KEY = 'S3RVER';

export interface S3Server {
  /** http://127.0.0.1:<port> */
  readonly endpoint: string;
  /** s3rver's data folder (buckets are sub-folders). */
  readonly dataDir: string;
  /** Environment a pathembed process needs to use `bucket` here (path-style, s3rver's keys). */
  env(bucket: string, prefix?: string): Record<string, string>;
  stop(): Promise<void>;
}

export interface S3ServerOptions {
  /** Buckets created at start. */
  readonly buckets?: readonly string[];
}

export async function startS3Server(options: S3ServerOptions = {}): Promise<S3Server> {
  const require = createRequire(import.meta.url);
  const bin = path.join(path.dirname(require.resolve('s3rver/package.json')), 'bin', 's3rver.js');
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-s3rver-'));
  const port = await freePort();
  const args = [
    // s3rver signs ListObjectsV2 continuation tokens with DES, which OpenSSL 3 keeps in its legacy provider.
    '--openssl-legacy-provider',
    bin,
    '-d',
    dataDir,
    '-a',
    '127.0.0.1',
    '-p',
    String(port),
    '--no-vhost-buckets',
    ...(process.env.S3RVER_VERBOSE === '1' ? [] : ['--silent']),
  ];
  for (const b of options.buckets ?? []) args.push('--configure-bucket', b);
  const child: ChildProcess = spawn(process.execPath, args, {
    stdio: ['ignore', process.env.S3RVER_VERBOSE === '1' ? 'inherit' : 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d.toString();
  });
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`s3rver exited (${child.exitCode}): ${stderr}`);
      const res = await fetch(`${endpoint}/`);
      // Unsigned: 403 AccessDenied still proves the server is up.
      return res.status > 0;
    }, `s3rver on port ${port}`);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    endpoint,
    dataDir,
    env: (bucket, prefix = '') => ({
      PATHEMBED_RESULT_STORE: `s3://${bucket}${prefix ? `/${prefix}` : ''}`,
      PATHEMBED_S3_ENDPOINT: endpoint,
      PATHEMBED_S3_REGION: 'us-east-1',
      PATHEMBED_S3_FORCE_PATH_STYLE: 'true',
      AWS_ACCESS_KEY_ID: S3RVER_ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: S3RVER_SECRET_KEY,
    }),
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
