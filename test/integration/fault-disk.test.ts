/**
 * A full results disk, for real: the results folder is a small tmpfs (mounted by the test; the
 * test runs as root, as CI does, and fails loudly if it cannot mount), sized from a first run of
 * the same slide so that the plan, the chunks and the JSON fit and the DICOM SR does not (then:
 * so that the JSON does not). The job must fail with RESULT_WRITE_FAILED after its retries, leave
 * no temporary file (which would keep the disk full), present no result, and leave nothing of
 * itself on the disk; with space again, the same request completes.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resultKeys } from '../../src/queue/result-store.js';
import { everyIndex, filesUnder, type Harness, startHarness } from '../helpers/service-harness.js';
import { fixture, services } from '../helpers/services.js';

const PAGE_BYTES = 4096;
const ROOMY_BYTES = 64 * 1024 * 1024;

let mountPoint: string;
let h: Harness;

function mountTmpfs(sizeBytes: number, remount: boolean): void {
  execFileSync('mount', [
    '-t',
    'tmpfs',
    '-o',
    `${remount ? 'remount,' : ''}size=${sizeBytes}`,
    'tmpfs',
    mountPoint,
  ]);
}

const pages = (bytes: number) => Math.ceil(bytes / PAGE_BYTES) * PAGE_BYTES;

beforeAll(async () => {
  mountPoint = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-tmpfs-'));
  mountTmpfs(ROOMY_BYTES, false);
  h = await startHarness({ redisUrl: services().redisUrl, resultsDir: mountPoint });
});

afterAll(async () => {
  await h?.close();
  if (mountPoint) {
    try {
      execFileSync('umount', [mountPoint]);
    } finally {
      await fs.rm(mountPoint, { recursive: true, force: true });
    }
  }
});

const request = { options: { minTissue: 0 }, outputs: ['json', 'dicom-sr'] };

describe('a results disk that fills up', () => {
  it('fails with RESULT_WRITE_FAILED, removes temporary and partial files, and works again with space', async () => {
    const source = fixture('synthetic-full').seriesUrl;
    // A first run measures what the job writes.
    const first = await h.submit(source, request);
    const ok = await h.final(first);
    expect(ok.state).toBe('completed');
    const size = async (key: string) => (await h.api.ctx.results.size(key)) ?? 0;
    const planned = ok.progress.planned as number;
    const chunkCount = Math.ceil(planned / Number(h.env.PATHEMBED_CHUNK_PATCHES));
    const chunkBytes = pages((planned / chunkCount) * 384 * 4 + 64) * chunkCount;
    const base =
      pages(await size(resultKeys.plan(first))) + pages(await size(resultKeys.metadata(first))) + chunkBytes;
    const json = pages(await size(resultKeys.json(first)));
    const sr = pages(await size(resultKeys.sr(first)));
    expect(sr).toBeGreaterThan(4 * PAGE_BYTES);
    await fs.rm(path.join(mountPoint, 'jobs'), { recursive: true, force: true });

    for (const [what, capacity] of [
      ['the SR', base + json + pages(sr / 2)],
      ['the JSON', base + pages(json / 2)],
    ] as const) {
      mountTmpfs(capacity, true);
      const id = await h.submit(source, { ...request, recompute: true });
      const end = await h.final(id);
      expect({ what, state: end.state, code: end.error?.code }).toEqual({
        what,
        state: 'failed',
        code: 'RESULT_WRITE_FAILED',
      });
      expect(end.error?.message).toMatch(/ENOSPC/);
      expect((await fetch(`${h.url}/v1/jobs/${id}/result`)).status).toBe(404);
      expect((await fetch(`${h.url}/v1/jobs/${id}/sr`)).status).toBe(404);
      // Nothing left: no temporary file, no plan, chunk or partial result of the failed job.
      expect(await filesUnder(mountPoint)).toEqual([]);
    }

    mountTmpfs(ROOMY_BYTES, true);
    const again = await h.submit(source, { ...request, recompute: true });
    const end = await h.final(again);
    expect(end.state).toBe('completed');
    expect(await h.resultIndices(again)).toEqual(everyIndex(end.progress.planned as number));
    expect(await h.tempFiles()).toEqual([]);
  });
});
