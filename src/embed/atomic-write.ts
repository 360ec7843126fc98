/**
 * Writing a file so that readers only ever see the old content or the complete new content. Two
 * processes may build the default model at the same moment (test workers, a demo started twice);
 * each writes its own temporary file beside the target and renames it into place, and rename
 * within one directory is atomic on POSIX file systems, so a half-written model is never loaded.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

const TEMP_SUFFIX_BYTES = 6;

export async function writeFileAtomic(filePath: string, data: Uint8Array | string): Promise<void> {
  await mkdir(path.dirname(filePath), { recursive: true });
  // The pid and random suffix keep racing writers (and threads of one process) off each other's file.
  const tempPath = `${filePath}.${process.pid}.${randomBytes(TEMP_SUFFIX_BYTES).toString('hex')}.tmp`;
  try {
    await writeFile(tempPath, data);
    await rename(tempPath, filePath);
  } catch (err) {
    await rm(tempPath, { force: true });
    throw err;
  }
}
