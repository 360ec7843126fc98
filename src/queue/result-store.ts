/**
 * Where job outputs live: slide plans, chunk embedding files, the assembled JSON result, the
 * HDF5 and Parquet files and the SR. Behind a small interface with two implementations: the local
 * folder here (PATHEMBED_RESULTS_DIR, shared by API and workers on one machine or a shared volume)
 * and the S3 object store (s3-result-store.ts), through which machines share nothing but the bucket. Every
 * write is all-or-nothing: a reader sees no value or the complete value, which is what lets a
 * chunk whose file exists be skipped safely after a worker died.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, constants as fsConstants } from 'node:fs';
import { access, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { PathembedError } from '../errors.js';
import { searchIndexKey } from '../search/index.js';

/** A value being written as a stream; invisible to readers until `commit`. */
export interface ResultUpload {
  readonly stream: Writable;
  /** Ends the stream (if not ended) and publishes the value. */
  commit(): Promise<void>;
  /** Drops what was written. */
  abort(): Promise<void>;
}

export interface ResultStore {
  /** Human-readable location, for logs. */
  readonly description: string;
  put(key: string, data: Uint8Array | string): Promise<void>;
  get(key: string): Promise<Buffer | undefined>;
  exists(key: string): Promise<boolean>;
  /** Size in bytes, or undefined when the value does not exist. */
  size(key: string): Promise<number | undefined>;
  openRead(key: string): Promise<Readable | undefined>;
  openWrite(key: string): Promise<ResultUpload>;
  /** Removes one value (nothing when it does not exist). */
  delete(key: string): Promise<void>;
  /** Removes every value whose key starts with `prefix` + '/'. */
  deleteTree(prefix: string): Promise<void>;
  /** Every key under `prefix` ('' for all), relative to the store's root, in no set order. */
  list(prefix?: string): Promise<string[]>;
  /** Fails with CONFIG_INVALID when the store cannot be used (missing bucket, bad credentials, read-only folder). */
  check(): Promise<void>;
  /** Releases connections (the S3 client's sockets); nothing for a folder. */
  close(): void;
  /** A local file path for the key when the store is a file system (SR writers that need one). */
  localPath?(key: string): string;
}

/** Keys are relative paths of plain segments; this refuses traversal (`..`) and odd characters. */
const KEY_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/;
const TEMP_SUFFIX_BYTES = 6;

/**
 * A failed write as the registry's RESULT_WRITE_FAILED (retryable: a full disk or a lost volume
 * may be fixed before the next attempt), naming the value and the system's reason.
 */
export function resultWriteError(key: string, where: string, err: unknown): PathembedError {
  if (err instanceof PathembedError) return err;
  const errno = (err as NodeJS.ErrnoException).code;
  const reason = errno === 'ENOSPC' ? 'no space left on the device' : (err as Error).message;
  return new PathembedError(
    'RESULT_WRITE_FAILED',
    `Could not write ${key} to ${where}: ${reason}${errno ? ` (${errno})` : ''}. Free space on the results volume (PATHEMBED_RESULTS_DIR) and retry.`,
    { key, ...(errno ? { errno } : {}) },
    { cause: err },
  );
}

export function checkKey(key: string): void {
  if (!KEY_PATTERN.test(key) || key.split('/').some((s) => s === '..' || s === '.')) {
    throw new PathembedError('INTERNAL', `Invalid result store key '${key}'`);
  }
}

/** Result keys of one job, in one place so API and workers agree. */
export const resultKeys = {
  jobRoot: (jobId: string) => `jobs/${jobId}`,
  plan: (jobId: string) => `jobs/${jobId}/plan.json`,
  metadata: (jobId: string) => `jobs/${jobId}/metadata.json`,
  chunk: (jobId: string, chunkIndex: number) =>
    `jobs/${jobId}/chunks/${String(chunkIndex).padStart(6, '0')}.f32`,
  chunkRoot: (jobId: string) => `jobs/${jobId}/chunks`,
  json: (jobId: string) => `jobs/${jobId}/result.json`,
  sr: (jobId: string) => `jobs/${jobId}/result-sr.dcm`,
  ann: (jobId: string) => `jobs/${jobId}/result-ann.dcm`,
  hdf5: (jobId: string) => `jobs/${jobId}/result.h5`,
  parquet: (jobId: string) => `jobs/${jobId}/result.parquet`,
  /** The similar-patch search index (src/search), written at assembly. */
  searchIndex: searchIndexKey,
};

/** The local file system implementation: one folder, writes via temporary file + rename. */
export class LocalResultStore implements ResultStore {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  get description(): string {
    return this.root;
  }

  localPath(key: string): string {
    checkKey(key);
    return path.join(this.root, ...key.split('/'));
  }

  #tempPath(file: string): string {
    // pid + random: two workers racing on one chunk each write their own file; rename picks one.
    return `${file}.${process.pid}.${randomBytes(TEMP_SUFFIX_BYTES).toString('hex')}.tmp`;
  }

  async put(key: string, data: Uint8Array | string): Promise<void> {
    const upload = await this.openWrite(key);
    try {
      upload.stream.end(data);
      await upload.commit();
    } catch (err) {
      await upload.abort();
      throw resultWriteError(key, this.root, err);
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.localPath(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.size(key)) !== undefined;
  }

  async size(key: string): Promise<number | undefined> {
    try {
      return (await stat(this.localPath(key))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async openRead(key: string): Promise<Readable | undefined> {
    if (!(await this.exists(key))) return undefined;
    return createReadStream(this.localPath(key));
  }

  async openWrite(key: string): Promise<ResultUpload> {
    const file = this.localPath(key);
    try {
      await mkdir(path.dirname(file), { recursive: true });
    } catch (err) {
      throw resultWriteError(key, this.root, err);
    }
    const temp = this.#tempPath(file);
    const stream = createWriteStream(temp);
    // A write error (ENOSPC) is raised by commit; until then it must not crash the process.
    stream.on('error', () => undefined);
    let settled = false;
    const discard = async () => {
      stream.destroy();
      await rm(temp, { force: true });
    };
    return {
      stream,
      commit: async () => {
        if (settled) return;
        settled = true;
        try {
          if (!stream.writableEnded) stream.end();
          await finished(stream);
          await rename(temp, file);
        } catch (err) {
          // The temporary file goes on every failure path: left behind it would keep a full disk full.
          await discard();
          throw resultWriteError(key, this.root, err);
        }
      },
      abort: async () => {
        if (settled) return;
        settled = true;
        await discard();
      },
    };
  }

  async delete(key: string): Promise<void> {
    await rm(this.localPath(key), { force: true });
  }

  async deleteTree(prefix: string): Promise<void> {
    await rm(this.localPath(prefix), { recursive: true, force: true });
  }

  async list(prefix = ''): Promise<string[]> {
    const dir = prefix ? this.localPath(prefix) : this.root;
    let entries: string[];
    try {
      entries = await readdir(dir, { recursive: true });
    } catch (err) {
      if (
        (err as NodeJS.ErrnoException).code === 'ENOENT' ||
        (err as NodeJS.ErrnoException).code === 'ENOTDIR'
      )
        return [];
      throw err;
    }
    const keys: string[] = [];
    for (const entry of entries) {
      // Temporary files of writes in flight are not values yet.
      if (entry.endsWith('.tmp')) continue;
      const file = path.join(dir, entry);
      if ((await stat(file).catch(() => undefined))?.isFile()) {
        keys.push(path.relative(this.root, file).split(path.sep).join('/'));
      }
    }
    return keys;
  }

  async check(): Promise<void> {
    try {
      await mkdir(this.root, { recursive: true });
      await access(this.root, fsConstants.W_OK);
    } catch (err) {
      throw new PathembedError(
        'CONFIG_INVALID',
        `The results folder ${this.root} cannot be created or written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). Fix PATHEMBED_RESULTS_DIR / PATHEMBED_RESULT_STORE or the folder's permissions.`,
        { store: this.root },
        { cause: err },
      );
    }
  }

  close(): void {}
}
