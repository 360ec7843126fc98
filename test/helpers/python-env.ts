/**
 * Independent readers for the files pathembed writes: a Python virtual environment under .cache
 * with the packages a test names (h5py, pyarrow, pydicom...), installed by pip from the machine's
 * package index (a local mirror on CI machines; pip's own configuration says where). Built once
 * per package set and reused; tests run scripts in it and assert on what they print.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const CACHE = fileURLToPath(new URL('../../.cache/python/', import.meta.url));
/** pip over a slow mirror; a first build of pyarrow + h5py takes about a minute here. */
const INSTALL_TIMEOUT_MS = 600_000;
const SCRIPT_TIMEOUT_MS = 300_000;
const MAX_OUTPUT_BYTES = 256 * 1024 * 1024;

export interface PythonEnv {
  readonly python: string;
  /** Runs `code` with `args`; resolves with stdout, rejects with stderr in the message. */
  run(code: string, args?: readonly string[]): Promise<string>;
}

/**
 * The one package set tests use, so that a run builds one venv: HDF5, Arrow/Parquet and DICOM
 * readers written by others than the libraries pathembed writes with, and the two image libraries
 * Google's Path Foundation server computes pixels with: Pillow (ImageCms for ICC transforms) and
 * OpenCV (resizes).
 */
export const INDEPENDENT_READERS = [
  'duckdb',
  'h5py',
  'numpy',
  'opencv-python-headless',
  'pillow',
  'pyarrow',
  'pydicom',
] as const;

const building = new Map<string, Promise<PythonEnv>>();

/** A venv holding `packages` (pip requirement strings), built on first use. */
export function pythonEnv(packages: readonly string[] = INDEPENDENT_READERS): Promise<PythonEnv> {
  const sorted = [...packages].sort();
  const key = createHash('sha256').update(sorted.join('\n')).digest('hex').slice(0, 12);
  let env = building.get(key);
  if (!env) {
    env = build(path.join(CACHE, key), sorted);
    building.set(key, env);
  }
  return env;
}

/**
 * Builds the venv in a folder of its own and renames it into place when it is complete: test files
 * run in several processes, and two of them building one folder at once broke each other (one
 * removed what the other was installing into). The first rename wins; a loser uses the winner's.
 */
async function build(dir: string, packages: readonly string[]): Promise<PythonEnv> {
  const python = path.join(dir, 'bin', 'python');
  const ready = path.join(dir, '.ready');
  if (!existsSync(ready)) {
    await mkdir(path.dirname(dir), { recursive: true });
    const staging = `${dir}.building-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await run('python3', ['-m', 'venv', staging]);
      try {
        await run(path.join(staging, 'bin', 'python'), ['-m', 'pip', 'install', '--quiet', ...packages], {
          timeout: INSTALL_TIMEOUT_MS,
        });
      } catch (err) {
        const stderr = (err as { stderr?: string }).stderr ?? '';
        throw new Error(
          `pip could not install ${packages.join(', ')} into ${staging}: ${stderr.slice(-2000)}`,
        );
      }
      await writeFile(path.join(staging, '.ready'), '');
      // A folder without .ready is a build the older helper left unfinished.
      if (existsSync(dir) && !existsSync(ready)) await rm(dir, { recursive: true, force: true });
      try {
        await rename(staging, dir);
      } catch (err) {
        if (!existsSync(ready)) throw err;
      }
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }
  return {
    python,
    async run(code, args = []) {
      try {
        const { stdout } = await run(python, ['-c', code, ...args], {
          timeout: SCRIPT_TIMEOUT_MS,
          maxBuffer: MAX_OUTPUT_BYTES,
        });
        return stdout;
      } catch (err) {
        const stderr = (err as { stderr?: string }).stderr ?? String(err);
        throw new Error(`python failed: ${stderr.slice(-4000)}`);
      }
    },
  };
}
