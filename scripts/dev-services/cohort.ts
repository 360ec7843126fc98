/**
 * A cohort of tiny synthetic slides in a DICOMweb store, and the service as separate processes
 * (`pathembed serve`, `pathembed worker`): what the 50-slide scale test and `npm run bench:scale`
 * share. Each slide is one 448 x 448 px level at 0.5 um/px in JPEG (4 patches at stride 224), so
 * a cohort of 50 costs seconds of inference and the test measures the queue, not the model.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeSyntheticWsi } from '../../src/sample/synthetic-wsi-writer.js';
import { REPO_ROOT } from './fixtures.js';
import { uploadFolder } from './orthanc.js';

/** Two 224 px patches across and down: the smallest slide with more than one chunk at 2 per chunk. */
export const COHORT_SLIDE_PX = 448;
export const COHORT_PATCHES_PER_SLIDE = 4;

export interface CohortSlide {
  readonly seriesUrl: string;
  /** Orthanc instance ids, to delete the slide afterwards. */
  readonly orthancIds: readonly string[];
}

/** Writes `count` distinct tiny slides (UIDs from `seedPrefix`-n) and uploads them to Orthanc. */
export async function uploadCohort(
  orthancUrl: string,
  dicomWebUrl: string,
  count: number,
  seedPrefix: string,
): Promise<CohortSlide[]> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-cohort-'));
  try {
    const slides: CohortSlide[] = [];
    for (let n = 0; n < count; n++) {
      const dir = path.join(root, String(n));
      await fs.mkdir(dir);
      const wsi = await writeSyntheticWsi(dir, {
        seed: `${seedPrefix}-${n}`,
        widthPx: COHORT_SLIDE_PX,
        heightPx: COHORT_SLIDE_PX,
        downsamples: [1],
        transferSyntax: 'jpeg-baseline',
        jpegQuality: 80,
      });
      const orthancIds = await uploadFolder(orthancUrl, dir);
      slides.push({
        seriesUrl: `${dicomWebUrl}/studies/${wsi.studyInstanceUid}/series/${wsi.seriesInstanceUid}`,
        orthancIds,
      });
    }
    return slides;
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
}

/** Removes a cohort's instances from Orthanc, so a shared test store keeps only its fixtures. */
export async function deleteCohort(orthancUrl: string, slides: readonly CohortSlide[]): Promise<void> {
  for (const s of slides) {
    for (const id of s.orthancIds) await fetch(`${orthancUrl}/instances/${id}`, { method: 'DELETE' });
  }
}

export interface ServiceProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** stderr, for the message of a failed assertion. */
  readonly log: string[];
  readonly exited: Promise<unknown>;
  /** SIGKILL (no shutdown at all); resolves once it has exited. */
  kill(): Promise<void>;
}

/** `pathembed <args>` as its own process (node --import tsx, no npx wrapper, so SIGKILL hits it). */
export function startServiceProcess(
  name: string,
  args: string[],
  env: Record<string, string>,
): ServiceProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log: string[] = [];
  child.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
  const exited = new Promise((r) => child.once('exit', r));
  return {
    name,
    child,
    log,
    exited,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
