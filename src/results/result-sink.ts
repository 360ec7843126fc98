/**
 * Where a result's text goes while it is written, all-or-nothing: nothing is visible until
 * `commit`, and `abort` leaves nothing behind. The file sink writes a temporary file in the
 * target's folder and renames it into place (atomic within one file system); the stream sink
 * adapts any writable with its own commit/abort, such as the queue's result store uploads.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { type FileHandle, mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { PathembedError } from '../errors.js';

export interface ResultSink {
  /** Where the result goes, for messages. */
  readonly description: string;
  write(data: string | Uint8Array): Promise<void>;
  /** Makes everything written visible at once. */
  commit(): Promise<void>;
  /** Drops everything written; safe to call more than once and after a failed commit. */
  abort(): Promise<void>;
}

const TEMP_SUFFIX_BYTES = 6;
/** Read size when copying a scratch file into a sink: few writes, little memory. */
const PUBLISH_BLOCK_BYTES = 1024 * 1024;

/** RESULT_WRITE_FAILED for `what` (a result, an HDF5 result...) at `target`; typed errors pass through. */
export function resultWriteFailed(what: string, target: string, err: unknown): PathembedError {
  if (err instanceof PathembedError) return err;
  return new PathembedError(
    'RESULT_WRITE_FAILED',
    `Cannot write the ${what} ${target}: ${(err as Error)?.message ?? String(err)}`,
    { target },
    { cause: err },
  );
}

const writeFailed = (description: string, err: unknown) => resultWriteFailed('result', description, err);

/** A file written beside its target and renamed into place on commit. */
export async function fileSink(filePath: string): Promise<ResultSink> {
  // pid + random: two processes writing the same result each use their own temporary file.
  const tempPath = tempPathBeside(filePath);
  let handle: FileHandle;
  try {
    await mkdir(path.dirname(filePath), { recursive: true });
    handle = await open(tempPath, 'wx');
  } catch (err) {
    throw writeFailed(filePath, err);
  }
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await handle.close();
  };
  return {
    description: filePath,
    async write(data) {
      try {
        if (typeof data === 'string') await handle.write(data, null, 'utf8');
        else await handle.write(data);
      } catch (err) {
        throw writeFailed(filePath, err);
      }
    },
    async commit() {
      try {
        // Durable before visible: a crash right after the rename must not leave an empty file.
        await handle.sync();
        await close();
        await rename(tempPath, filePath);
      } catch (err) {
        throw writeFailed(filePath, err);
      }
    },
    async abort() {
      await close().catch(() => undefined);
      await rm(tempPath, { force: true }).catch(() => undefined);
    },
  };
}

/** Any writable whose owner publishes or drops what was written (e.g. a result store upload). */
export function streamSink(upload: {
  readonly stream: Writable;
  commit(): Promise<void>;
  abort(): Promise<void>;
  readonly description?: string;
}): ResultSink {
  const description = upload.description ?? 'result stream';
  return {
    description,
    async write(data) {
      try {
        if (upload.stream.destroyed) throw new Error('the stream is closed');
        if (!upload.stream.write(data)) await once(upload.stream, 'drain');
      } catch (err) {
        throw writeFailed(description, err);
      }
    },
    async commit() {
      try {
        await upload.commit();
      } catch (err) {
        throw writeFailed(description, err);
      }
    },
    async abort() {
      await upload.abort().catch(() => undefined);
    },
  };
}

/** Writes a whole file atomically (temporary file beside it, then rename), e.g. an SR. */
export async function writeBytesAtomic(filePath: string, bytes: Uint8Array): Promise<void> {
  const sink = await fileSink(filePath);
  try {
    await sink.write(bytes);
    await sink.commit();
  } catch (err) {
    await sink.abort();
    throw err;
  }
}

/**
 * Copies a finished local file into a sink and commits it (a format that needs random access
 * while writing, such as HDF5, is built in a scratch file first). Aborts the sink on failure.
 */
export async function publishFile(filePath: string, sink: ResultSink): Promise<void> {
  try {
    for await (const chunk of createReadStream(filePath, { highWaterMark: PUBLISH_BLOCK_BYTES })) {
      await sink.write(chunk as Buffer);
    }
    await sink.commit();
  } catch (err) {
    await sink.abort();
    throw writeFailed(sink.description, err);
  }
}

/** A unique scratch path beside `filePath` (same file system, so a rename publishes it). */
export function tempPathBeside(filePath: string): string {
  return `${filePath}.${process.pid}.${randomBytes(TEMP_SUFFIX_BYTES).toString('hex')}.tmp`;
}
