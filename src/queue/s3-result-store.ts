/**
 * The ResultStore on the S3 API (AWS S3, MinIO, Ceph, Google Cloud Storage's interoperability
 * endpoint, s3rver in tests): what lets API and workers on different machines share results, plans
 * and chunk files with no shared folder. It keeps the folder store's semantics: a value is visible
 * complete or not at all (PutObject and CompleteMultipartUpload publish atomically), a missing key
 * reads as undefined, deleteTree removes a prefix, and failures become typed codes (5xx and network:
 * retryable; access denied and missing bucket: CONFIG_INVALID, since only the operator can fix them).
 */

import { PassThrough, type Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  type DeleteObjectsCommandOutput,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { type ErrorCode, PathembedError } from '../errors.js';
import { checkKey, type ResultStore, type ResultUpload } from './result-store.js';

export interface S3ResultStoreOptions {
  readonly bucket: string;
  /** Key prefix under which every value lives, without leading or trailing '/'; '' for the bucket root. */
  readonly prefix: string;
  /** Endpoint URL of an S3-compatible store; undefined for AWS S3. */
  readonly endpoint?: string;
  readonly region: string;
  /** `<endpoint>/<bucket>` addressing, which self-hosted stores need. */
  readonly forcePathStyle: boolean;
  /** Fixed credentials (tests, benches); default: the AWS SDK's default credential chain. */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
}

/**
 * Multipart part size of streamed uploads. Values smaller than this (plans, metadata, chunk files
 * of a few hundred KB) go up in one PutObject; larger ones (a JSON result of 100,000 patches, ~400
 * MB) in parts, so memory stays at PART_SIZE x UPLOAD_QUEUE_SIZE whatever the size. 8 MiB is above
 * S3's 5 MiB minimum part and keeps a 10,000-part upload (S3's maximum) at 80 GB.
 */
const PART_SIZE_BYTES = 8 * 1024 * 1024;
/** Parts in flight per upload: two overlap the next part's production with the current send. */
const UPLOAD_QUEUE_SIZE = 2;
/** DeleteObjects takes at most 1,000 keys per request (S3's limit; ListObjectsV2 pages match it). */
const DELETE_BATCH = 1000;
/**
 * Parallel DeleteObject calls where the store has no DeleteObjects: a slide's chunks (tens to
 * hundreds) go in a few round trips without opening more sockets than the SDK's default pool (50).
 */
const SINGLE_DELETE_CONCURRENCY = 16;

type Operation = 'read' | 'write' | 'delete' | 'check';

/** The HTTP status of an SDK error; undefined when no response came (network, DNS, timeout). */
function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

function isNotFound(err: unknown): boolean {
  const name = (err as Error).name;
  return name === 'NoSuchKey' || name === 'NotFound' || (httpStatus(err) === 404 && name !== 'NoSuchBucket');
}

/** Codes of answers that no retry fixes: credentials or the bucket itself are wrong. */
const CONFIG_ERROR_NAMES = new Set([
  'NoSuchBucket',
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidBucketName',
  'AllAccessDisabled',
]);

export class S3ResultStore implements ResultStore {
  readonly client: S3Client;
  readonly bucket: string;
  readonly #prefix: string;
  readonly #where: string;
  /** False once the store answered DeleteObjects with 501: then deleteTree deletes key by key. */
  #multiDelete = true;

  constructor(options: S3ResultStoreOptions) {
    this.bucket = options.bucket;
    this.#prefix = options.prefix ? `${options.prefix}/` : '';
    this.#where = `s3://${options.bucket}/${options.prefix}${options.endpoint ? ` at ${options.endpoint}` : ''}`;
    this.client = new S3Client({
      region: options.region,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...(options.credentials ? { credentials: { ...options.credentials } } : {}),
      forcePathStyle: options.forcePathStyle,
      followRegionRedirects: true,
      // Checksums only where S3 requires them: the SDK's default CRC32 trailers (aws-chunked
      // uploads) are refused by several S3-compatible stores, GCS's interoperability API among them.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  get description(): string {
    return this.#where;
  }

  #key(key: string): string {
    checkKey(key);
    return this.#prefix + key;
  }

  /** An SDK failure as a typed error naming the object, the store and what to do. */
  #error(op: Operation, key: string, err: unknown): PathembedError {
    if (err instanceof PathembedError) return err;
    const status = httpStatus(err);
    const name = (err as Error).name;
    const reason = `${name}${status ? ` (HTTP ${status})` : ''}: ${(err as Error).message}`;
    const details = { key, store: this.#where, ...(status ? { httpStatus: status } : {}), s3Error: name };
    if (CONFIG_ERROR_NAMES.has(name) || status === 403) {
      return new PathembedError(
        'CONFIG_INVALID',
        `The result store ${this.#where} refused ${op} of ${key}: ${reason}. Check that the bucket exists and that the credentials (AWS SDK default chain) may read, write, list and delete in it (PATHEMBED_RESULT_STORE, PATHEMBED_S3_ENDPOINT).`,
        details,
        { cause: err },
      );
    }
    const transient = status === undefined || status >= 500 || status === 429;
    let code: ErrorCode;
    if (!transient) code = 'INTERNAL';
    else code = op === 'read' ? 'RESULT_STORE_UNAVAILABLE' : 'RESULT_WRITE_FAILED';
    return new PathembedError(
      code,
      `Could not ${op} ${key} in ${this.#where}: ${reason}.${transient ? ' The object store is unreachable or failing; the job is retried.' : ''}`,
      details,
      { cause: err },
    );
  }

  /**
   * Fails with CONFIG_INVALID when the bucket is missing or the credentials cannot reach it: run at
   * API and worker start, so a wrong bucket stops the process instead of failing every job.
   */
  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const status = httpStatus(err);
      const why =
        status === 404
          ? 'the bucket does not exist'
          : status === 403 || status === 401
            ? 'the credentials are missing or not allowed to use the bucket (AWS SDK default chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance or pod role)'
            : status === undefined
              ? `the store cannot be reached (${(err as Error).name}: ${(err as Error).message})`
              : `the store answered HTTP ${status} (${(err as Error).name})`;
      throw new PathembedError(
        'CONFIG_INVALID',
        `PATHEMBED_RESULT_STORE ${this.#where}: ${why}. Create the bucket or fix PATHEMBED_RESULT_STORE, PATHEMBED_S3_ENDPOINT and the credentials.`,
        { store: this.#where, ...(status ? { httpStatus: status } : {}) },
        { cause: err },
      );
    }
  }

  async put(key: string, data: Uint8Array | string): Promise<void> {
    const Key = this.#key(key);
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: data }));
    } catch (err) {
      throw this.#error('write', key, err);
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    const stream = await this.openRead(key);
    if (!stream) return undefined;
    const parts: Buffer[] = [];
    try {
      for await (const part of stream) parts.push(part as Buffer);
    } catch (err) {
      throw this.#error('read', key, err);
    }
    return Buffer.concat(parts);
  }

  async exists(key: string): Promise<boolean> {
    return (await this.size(key)) !== undefined;
  }

  async size(key: string): Promise<number | undefined> {
    const Key = this.#key(key);
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      return head.ContentLength ?? 0;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.#error('read', key, err);
    }
  }

  /** The object's body as the HTTP response streams it: nothing is buffered here. */
  async openRead(key: string): Promise<Readable | undefined> {
    const Key = this.#key(key);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
      return out.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.#error('read', key, err);
    }
  }

  async openWrite(key: string): Promise<ResultUpload> {
    const Key = this.#key(key);
    const stream = new PassThrough();
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key, Body: stream },
      partSize: PART_SIZE_BYTES,
      queueSize: UPLOAD_QUEUE_SIZE,
      // Parts of a failed upload are aborted (AbortMultipartUpload); a bucket lifecycle rule
      // (AbortIncompleteMultipartUpload, see deploy/) sweeps any a killed process left.
      leavePartsOnError: false,
    });
    // The upload runs while the caller writes; its outcome is read by commit or dropped by abort.
    const done = upload.done();
    done.catch(() => undefined);
    let settled = false;
    return {
      stream,
      commit: async () => {
        if (settled) return;
        settled = true;
        if (!stream.writableEnded) stream.end();
        try {
          await done;
        } catch (err) {
          stream.destroy();
          throw this.#error('write', key, err);
        }
      },
      abort: async () => {
        if (settled) return;
        settled = true;
        // Aborting first: the uploader sees the signal before it would PutObject what was written.
        await upload.abort();
        stream.destroy(new Error('upload aborted'));
        await done.catch(() => undefined);
      },
    };
  }

  async delete(key: string): Promise<void> {
    const Key = this.#key(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }));
    } catch (err) {
      if (isNotFound(err)) return;
      throw this.#error('delete', key, err);
    }
  }

  /** Lists `prefix/` page by page (ListObjectsV2) and deletes each page with one DeleteObjects. */
  async deleteTree(prefix: string): Promise<void> {
    try {
      for await (const keys of this.#keyPages(`${this.#key(prefix)}/`, DELETE_BATCH)) {
        if (keys.length > 0) await this.#deleteMany(keys.map((Key) => ({ Key })));
      }
    } catch (err) {
      throw this.#error('delete', prefix, err);
    }
  }

  /** The full object keys under `Prefix`, one ListObjectsV2 page at a time. */
  async *#keyPages(Prefix: string, MaxKeys?: number): AsyncGenerator<string[]> {
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix,
          ...(MaxKeys ? { MaxKeys } : {}),
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      yield (page.Contents ?? []).flatMap((o) => (o.Key ? [o.Key] : []));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async #deleteMany(keys: { Key: string }[]): Promise<void> {
    if (!this.#multiDelete) return this.#deleteOneByOne(keys);
    let out: DeleteObjectsCommandOutput;
    try {
      out = await this.client.send(
        new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: keys, Quiet: true } }),
      );
    } catch (err) {
      // Some S3-compatible stores have no multi-object delete and answer 501 NotImplemented.
      if (httpStatus(err) !== 501 && (err as Error).name !== 'NotImplemented') throw err;
      this.#multiDelete = false;
      return this.#deleteOneByOne(keys);
    }
    const failed = out.Errors ?? [];
    if (failed.length > 0) {
      const first = failed[0];
      throw new PathembedError(
        'RESULT_WRITE_FAILED',
        `Could not delete ${failed.length} of ${keys.length} objects in ${this.#where}; first: ${first?.Key}: ${first?.Code} ${first?.Message}`,
        { store: this.#where, failed: failed.length },
      );
    }
  }

  /** DeleteObject per key, SINGLE_DELETE_CONCURRENCY at a time. */
  async #deleteOneByOne(keys: { Key: string }[]): Promise<void> {
    for (let i = 0; i < keys.length; i += SINGLE_DELETE_CONCURRENCY) {
      await Promise.all(
        keys
          .slice(i, i + SINGLE_DELETE_CONCURRENCY)
          .map(({ Key }) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }))),
      );
    }
  }

  /** Every key under `prefix/` relative to the store's root (tests and operators' checks). */
  async list(prefix = ''): Promise<string[]> {
    const keys: string[] = [];
    try {
      for await (const page of this.#keyPages(prefix ? `${this.#key(prefix)}/` : this.#prefix)) {
        for (const key of page) keys.push(key.slice(this.#prefix.length));
      }
    } catch (err) {
      throw this.#error('read', prefix, err);
    }
    return keys;
  }

  close(): void {
    this.client.destroy();
  }
}
