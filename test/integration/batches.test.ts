/**
 * Cohorts end to end: the real API and a real worker (in this process, the real model on 2
 * threads), real Redis (a fresh prefix), the test Orthanc with a cohort of small synthetic slides
 * uploaded by this file (two studies of one patient: slides with a label, and one label-only
 * series), and the fault proxy in front of Orthanc for what Orthanc cannot do on demand (page caps,
 * 429 storms). A study, a search and a URL list each run as a batch; resubmission reuses jobs;
 * DELETE cancels; a bad filter is a 400 naming it; the manifest's checksums are those of the
 * served results; progress never goes backwards; a 429 pauses only the store that sent it; and
 * `pathembed batch` follows a batch to its end with the right exit status.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../scripts/dev-services/fixtures.js';
import { uploadFolder } from '../../scripts/dev-services/orthanc.js';
import { createApi } from '../../src/api/app.js';
import { listen } from '../../src/api/server.js';
import { findStudySlides } from '../../src/dicomweb/index.js';
import { dicomWebClient } from '../../src/domain-options.js';
import { isPathembedError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { BatchStore } from '../../src/queue/batch-record.js';
import { type SyntheticWsiOptions, writeSyntheticWsi } from '../../src/sample/synthetic-wsi-writer.js';
import { type FaultServer, startFaultServer } from '../helpers/fault-server.js';
import { type Harness, startHarness, until } from '../helpers/service-harness.js';
import { services } from '../helpers/services.js';

const RUN = randomBytes(4).toString('hex');
const PATIENT = `PE-BATCH-${RUN}`;
/** Series per QIDO page: smaller than the 5 series of the patient, so searches page. */
const PAGE_SIZE = 2;
/** Two 224 px patches per slide at 0.5 um/px: the grid is 2 x 1. */
const SLIDE = { widthPx: 460, heightPx: 240, downsamples: [1] } as const;
const PATCHES_PER_SLIDE = 2;
const EVERY_PATCH = { minTissue: 0 };

let h: Harness;
let faults: FaultServer;
let dir: string;
let dicomWeb: string;
const studies = { s1: `2.25.${BigInt(`0x${RUN}01`)}`, s2: `2.25.${BigInt(`0x${RUN}02`)}` };
/** Series UIDs by slide name; E's first VOLUME instance for an instance reference. */
const series: Record<string, string> = {};
let instanceOfE: string;

interface Reply {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
  body: any;
  text: string;
  bytes: Buffer;
}

async function call(method: string, route: string, body?: unknown): Promise<Reply> {
  const res = await fetch(`${h.url}${route}`, {
    method,
    headers: body !== undefined ? { 'content-type': 'application/json' } : {},
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  const text = bytes.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text, bytes };
}

const seriesUrl = (base: string, study: string, name: string) =>
  `${base}/studies/${study}/series/${series[name]}`;

async function slide(name: string, study: string, extra: Partial<SyntheticWsiOptions>) {
  const out = path.join(dir, name);
  const wsi = await writeSyntheticWsi(out, {
    ...SLIDE,
    seed: `batch-${RUN}-${name}`,
    studyInstanceUid: study,
    patientId: PATIENT,
    containerIdentifier: `SLIDE-${RUN}-${name}`,
    associatedImages: ['LABEL'],
    ...extra,
  });
  series[name] = wsi.seriesInstanceUid;
  await uploadFolder(services().orthancUrl, out);
  return wsi;
}

/** Polls a batch to its end, checking at every poll that its progress never went back. */
async function followBatch(id: string) {
  let last = { finished: 0, patchesDone: 0 };
  let polls = 0;
  const end = await until(`batch ${id} to end`, async () => {
    const got = await call('GET', `/v1/batches/${id}`);
    expect(got.status).toBe(200);
    const p = got.body.progress;
    polls++;
    expect(p.finished).toBeGreaterThanOrEqual(last.finished);
    expect(p.patchesDone).toBeGreaterThanOrEqual(last.patchesDone);
    last = { finished: p.finished, patchesDone: p.patchesDone };
    return got.body.state === 'running' ? undefined : got.body;
  });
  return { end, polls };
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-batch-'));
  dicomWeb = services().dicomWebUrl;
  faults = await startFaultServer(services().orthancUrl);
  await slide('A', studies.s1, { studyDate: '20230101' });
  await slide('B', studies.s1, { studyDate: '20230101' });
  await slide('C', studies.s1, { studyDate: '20230101', volume: false });
  await slide('D', studies.s2, { studyDate: '20240505' });
  const e = await slide('E', studies.s2, { studyDate: '20240505' });
  instanceOfE = e.levels[0]!.instances[0]!.sopInstanceUid;
  h = await startHarness({
    redisUrl: services().redisUrl,
    env: {
      PATHEMBED_ALLOWED_STORES: `${new URL(dicomWeb).origin},${faults.url}`,
      PATHEMBED_SEARCH_PAGE_SIZE: String(PAGE_SIZE),
    },
  });
});

afterAll(async () => {
  await h?.close();
  await faults?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('a study as a batch', () => {
  let batchId: string;

  it('runs every slide series of the study, reports the label-only series as skipped, and never goes backwards', async () => {
    const study = `${dicomWeb}/studies/${studies.s1}`;
    const res = await call('POST', '/v1/batches', { sources: [study], options: EVERY_PATCH });
    expect(res.status, res.text).toBe(202);
    batchId = res.body.id;
    expect(batchId).toMatch(/^b[0-9a-f]{32}$/);
    expect(res.body.slides).toBe(2);
    expect(res.body.existing).toBe(false);
    expect(res.body.skipped).toEqual([
      {
        seriesUrl: seriesUrl(dicomWeb, studies.s1, 'C'),
        reason: 'the series holds no VOLUME image, only LABEL',
        imageTypes: ['LABEL'],
        source: 0,
      },
    ]);
    const { end, polls } = await followBatch(batchId);
    expect(polls).toBeGreaterThan(1);
    expect(end.state).toBe('completed');
    expect(end.counts.completed).toBe(2);
    expect(end.failed).toEqual([]);
    expect(end.progress).toMatchObject({
      finished: 2,
      patchesDone: 2 * PATCHES_PER_SLIDE,
      patchesPlanned: 2 * PATCHES_PER_SLIDE,
      etaSeconds: 0,
    });
    expect(end.progress.slidesPerMinute).toBeGreaterThan(0);
  });

  it('pages through its jobs and lists them in a manifest whose sha256 are those of the served results', async () => {
    const first = await call('GET', `/v1/batches/${batchId}/jobs?limit=1`);
    expect(first.status).toBe(200);
    expect(first.body.total).toBe(2);
    expect(first.body.jobs).toHaveLength(1);
    const second = await call('GET', first.body.next);
    expect(second.body.jobs).toHaveLength(1);
    expect(second.body.next).toBeNull();
    const ids = [first.body.jobs[0].id, second.body.jobs[0].id];
    const seriesSeen = [first.body.jobs[0].source.seriesUid, second.body.jobs[0].source.seriesUid].sort();
    expect(seriesSeen).toEqual([series.A, series.B].sort());

    const manifest = await call('GET', `/v1/batches/${batchId}/manifest`);
    expect(manifest.status).toBe(200);
    expect(manifest.body.slides.map((s: { jobId: string }) => s.jobId)).toEqual(ids);
    const csv = await call('GET', `/v1/batches/${batchId}/manifest?format=csv`);
    expect(csv.status).toBe(200);
    const lines = csv.text.trimEnd().split('\r\n');
    expect(lines).toHaveLength(3);
    const header = lines[0]!.split(',');
    for (const [i, row] of manifest.body.slides.entries()) {
      expect(row).toMatchObject({ state: 'completed', patches: PATCHES_PER_SLIDE, errorCode: null });
      expect(row.files).toHaveLength(1);
      const served = await call('GET', `/v1/jobs/${row.jobId}/result`);
      expect(served.status).toBe(200);
      expect(row.files[0]).toEqual({
        output: 'json',
        bytes: served.bytes.length,
        sha256: sha256(served.bytes),
        url: `/v1/jobs/${row.jobId}/result`,
      });
      const cells = lines[i + 1]!.split(',');
      expect(cells[header.indexOf('job_id')]).toBe(row.jobId);
      expect(cells[header.indexOf('json_sha256')]).toBe(sha256(served.bytes));
      expect(Number(cells[header.indexOf('json_bytes')])).toBe(served.bytes.length);
    }
  });

  it('is the same batch when submitted again, answered by its finished jobs', async () => {
    const again = await call('POST', '/v1/batches', {
      sources: [{ baseUrl: `${dicomWeb}/`, studyUid: studies.s1 }],
      options: EVERY_PATCH,
    });
    expect(again.status, again.text).toBe(202);
    expect(again.body.id).toBe(batchId);
    expect(again.body).toMatchObject({ existing: true, reusedJobs: 2, state: 'completed', runs: 1 });
    expect(again.body.progress.finished).toBe(2);
  });

  it('refuses a study with more slide microscopy series than a batch may hold instead of cutting it short', async () => {
    // Study 1 holds three Modality SM series (A, B and the label-only C).
    const client = dicomWebClient(h.config);
    const study = { baseUrl: dicomWeb, studyUid: studies.s1 };
    const fits = await findStudySlides(client, study, 3);
    expect(fits.slides.length + fits.skipped.length).toBe(3);
    const err = await findStudySlides(client, study, 2).catch((e: unknown) => e);
    expect(isPathembedError(err) && err.code).toBe('PAYLOAD_TOO_LARGE');
    expect((err as Error).message).toMatch(/more than 2 slide microscopy \(Modality SM\) series/);
  });

  it('expands a study in POST /v1/jobs too, one job per slide series', async () => {
    const res = await call('POST', '/v1/jobs', {
      sources: [`${dicomWeb}/studies/${studies.s1}`],
      options: EVERY_PATCH,
    });
    expect(res.status, res.text).toBe(202);
    expect(res.body.jobs.map((j: { existing: boolean }) => j.existing)).toEqual([true, true]);
    expect(res.body.jobs.map((j: { source: string }) => j.source).sort()).toEqual(
      [seriesUrl(dicomWeb, studies.s1, 'A'), seriesUrl(dicomWeb, studies.s1, 'B')].sort(),
    );
    expect(res.body.skipped.map((s: { seriesUrl: string }) => s.seriesUrl)).toEqual([
      seriesUrl(dicomWeb, studies.s1, 'C'),
    ]);
  });

  it('is admitted whole against PATHEMBED_MAX_JOBS_PER_KEY: refused before any job exists, or reused', async () => {
    // A second API on the same Redis and prefix whose keys may hold one unfinished job.
    const limited = await createApi(
      Object.freeze({ ...h.config, PATHEMBED_MAX_JOBS_PER_KEY: 1 }),
      createLogger('silent'),
    );
    const server = await listen(limited.app, '127.0.0.1', 0);
    try {
      const post = async (body: unknown) => {
        const res = await fetch(`${server.url}/v1/batches`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        return { status: res.status, body: (await res.json()) as Reply['body'] };
      };
      const jobsBefore = (await call('GET', '/v1/jobs?limit=1')).body.total;
      const tooMany = await post({
        sources: [`${dicomWeb}/studies/${studies.s1}`],
        options: { minTissue: 0, stridePx: 150 },
      });
      expect(tooMany.status).toBe(429);
      expect(tooMany.body.error.code).toBe('TOO_MANY_JOBS');
      expect(tooMany.body.error.details).toMatchObject({ newJobs: 2, limit: 1 });
      expect((await call('GET', '/v1/jobs?limit=1')).body.total).toBe(jobsBefore);
      // The finished study batch needs no new job, so the same limit lets it through.
      const reused = await post({ sources: [`${dicomWeb}/studies/${studies.s1}`], options: EVERY_PATCH });
      expect(reused.status).toBe(202);
      expect(reused.body).toMatchObject({ existing: true, reusedJobs: 2, state: 'completed' });
    } finally {
      await server.close();
      await limited.close();
    }
  });
});

describe('a search as a batch', () => {
  it('pages the store with offset and limit and turns the slide series it matches into jobs', async () => {
    faults.reset();
    const store = faults.via(dicomWeb);
    const res = await call('POST', '/v1/batches', {
      sources: [{ search: { store, filters: { PatientID: PATIENT } } }],
      options: EVERY_PATCH,
    });
    expect(res.status, res.text).toBe(202);
    // Five SM series of the patient, two per page: pages at offsets 0, 2 and 4, the last short.
    const pages = faults.requests
      .filter((r) => /\/series\?/.test(r.path))
      .map((r) => new URL(r.path, faults.url));
    expect(pages.map((u) => u.searchParams.get('offset') ?? '0')).toEqual(['0', '2', '4']);
    for (const u of pages) {
      expect(u.searchParams.get('limit')).toBe(String(PAGE_SIZE));
      expect(u.searchParams.get('PatientID')).toBe(PATIENT);
      expect(u.searchParams.get('Modality')).toBe('SM');
    }
    expect(res.body.slides).toBe(4);
    expect(res.body.skipped.map((s: { seriesUrl: string }) => s.seriesUrl)).toEqual([
      seriesUrl(store, studies.s1, 'C'),
    ]);
    const { end } = await followBatch(res.body.id);
    expect(end.state).toBe('completed');
    expect(end.progress.patchesDone).toBe(4 * PATCHES_PER_SLIDE);
    const jobs = await call('GET', `/v1/batches/${res.body.id}/jobs`);
    expect(jobs.body.jobs.map((j: { source: { seriesUid: string } }) => j.source.seriesUid).sort()).toEqual(
      [series.A, series.B, series.D, series.E].sort(),
    );
  });

  it('keeps paging a store that answers fewer series than asked for', async () => {
    faults.reset();
    // The store's own cap: one series per page whatever the limit asked.
    faults.setDefault({
      kind: 'match',
      when: (r) => /\/series\?/.test(r.path),
      apply: {
        kind: 'mutate',
        mutate: (body) => Buffer.from(JSON.stringify((JSON.parse(body.toString()) as unknown[]).slice(0, 1))),
      },
    });
    try {
      const res = await call('POST', '/v1/batches', {
        sources: [{ search: { store: faults.via(dicomWeb), filters: { PatientID: PATIENT } } }],
        options: EVERY_PATCH,
      });
      expect(res.status, res.text).toBe(202);
      const offsets = faults.requests
        .filter((r) => /\/series\?/.test(r.path))
        .map((r) => new URL(r.path, faults.url).searchParams.get('offset') ?? '0');
      // Five one-series pages, then an empty one that ends the search.
      expect(offsets).toEqual(['0', '1', '2', '3', '4', '5']);
      expect(res.body.slides).toBe(4);
      expect(res.body.skipped).toHaveLength(1);
    } finally {
      faults.reset();
    }
  });

  it('narrows by study date and container, by keyword or tag', async () => {
    const byDate = await call('POST', '/v1/batches', {
      sources: [
        { search: { store: dicomWeb, filters: { PatientID: PATIENT, StudyDate: '20240101-20241231' } } },
      ],
      options: EVERY_PATCH,
    });
    expect(byDate.status, byDate.text).toBe(202);
    expect(byDate.body.slides).toBe(2);
    expect(byDate.body.skipped).toEqual([]);
    const byContainer = await call('POST', '/v1/batches', {
      sources: [{ search: { store: dicomWeb, filters: { '00400512': `SLIDE-${RUN}-D` } } }],
      options: EVERY_PATCH,
    });
    expect(byContainer.status, byContainer.text).toBe(202);
    expect(byContainer.body.slides).toBe(1);
    expect((await followBatch(byDate.body.id)).end.state).toBe('completed');
  });

  it('refuses a filter key off the allow-list with a 400 naming it', async () => {
    const res = await call('POST', '/v1/batches', {
      sources: [{ search: { store: dicomWeb, filters: { PatientID: PATIENT, PatientAge: '040Y' } } }],
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('INVALID_SEARCH_FILTER');
    expect(res.body.error.message).toContain(
      'sources.0: search.filters: "PatientAge" is not a searchable key',
    );
    expect(res.body.error.message).toContain('PatientID');
    expect(res.body.error.details.allowed).toContain('ContainerIdentifier');
    expect((await call('GET', `/v1/batches/b${'0'.repeat(32)}`)).status).toBe(404);
    expect((await call('GET', '/v1/batches/not-a-batch/manifest')).status).toBe(404);
  });
});

describe('a list of URLs as a batch', () => {
  it('runs series and instance references, reusing jobs other batches finished', async () => {
    const res = await call('POST', '/v1/batches', {
      sources: [
        seriesUrl(dicomWeb, studies.s1, 'A'),
        seriesUrl(dicomWeb, studies.s2, 'D'),
        `${seriesUrl(dicomWeb, studies.s2, 'E')}/instances/${instanceOfE}`,
      ],
      options: EVERY_PATCH,
    });
    expect(res.status, res.text).toBe(202);
    expect(res.body.slides).toBe(3);
    // A (the study batch) and D (the date search) are done already; E's single instance is new.
    expect(res.body.reusedJobs).toBe(2);
    const { end } = await followBatch(res.body.id);
    expect(end.state).toBe('completed');
    expect(end.counts.completed).toBe(3);
  });

  it('cancels its unfinished jobs on DELETE and reports them as failed slides', async () => {
    faults.reset();
    // Every store request hangs: the batch's jobs cannot finish before the DELETE.
    faults.setDefault({ kind: 'delay', ms: 10_000 });
    try {
      const slow = faults.via(dicomWeb);
      const res = await call('POST', '/v1/batches', {
        sources: [seriesUrl(slow, studies.s2, 'D'), seriesUrl(slow, studies.s2, 'E')],
        // Options no other test uses: new jobs, not ones an earlier batch finished.
        options: { minTissue: 0, stridePx: 100 },
      });
      expect(res.status, res.text).toBe(202);
      expect(res.body.progress.finished).toBe(0);
      const del = await call('DELETE', `/v1/batches/${res.body.id}`);
      expect(del.status).toBe(200);
      expect(del.body).toMatchObject({ state: 'cancelled', cancelledJobs: 2 });
      expect(del.body.counts.cancelled).toBe(2);
      expect(del.body.failed.map((f: { code: string }) => f.code)).toEqual([
        'JOB_CANCELLED',
        'JOB_CANCELLED',
      ]);
      const jobs = await call('GET', `/v1/batches/${res.body.id}/jobs`);
      expect(jobs.body.jobs.map((j: { state: string }) => j.state)).toEqual(['cancelled', 'cancelled']);
    } finally {
      faults.reset();
    }
  });
});

describe('a store answering 429', () => {
  it('pauses that store only: the other store’s slide finishes while it waits, and then it finishes too', async () => {
    faults.reset();
    const stormy = faults.via(dicomWeb);
    faults.setDefault({
      kind: 'match',
      when: (r) => r.path.includes('/frames/'),
      apply: { kind: 'status', status: 429, headers: { 'retry-after': '1' }, body: 'slow down' },
    });
    const pauseKey = `${h.prefix}:svc:store-pause:${Buffer.from(stormy).toString('base64url')}`;
    let pauseSeenMs = 0;
    const watch = setInterval(async () => {
      pauseSeenMs = Math.max(pauseSeenMs, await h.redis.pttl(pauseKey));
    }, 50);
    try {
      const options = { minTissue: 0, stridePx: 112 };
      const res = await call('POST', '/v1/batches', {
        sources: [seriesUrl(stormy, studies.s1, 'A'), seriesUrl(dicomWeb, studies.s1, 'B')],
        options,
      });
      expect(res.status, res.text).toBe(202);
      const page = await call('GET', `/v1/batches/${res.body.id}/jobs`);
      const [stormyJob, healthyJob] = page.body.jobs.map((j: { id: string }) => j.id);
      const healthy = await h.final(healthyJob);
      expect(healthy.state).toBe('completed');
      // The healthy store's slide ended while the other store was still answering 429.
      expect((await h.job(stormyJob)).state).not.toBe('completed');
      expect(faults.requests.filter((r) => r.path.includes('/frames/')).length).toBeGreaterThan(0);
      expect(pauseSeenMs).toBeGreaterThan(0);
      const byStore = await h.redis.hgetall(`${h.prefix}:svc:metrics:rate-limit-engaged-by-store`);
      expect(Number(byStore[stormy])).toBeGreaterThanOrEqual(1);
      expect(byStore[dicomWeb]).toBeUndefined();
      const metrics = await (await fetch(`${h.url}/metrics`)).text();
      expect(metrics).toContain(`pathembed_store_rate_limit_engagements_total{store="${stormy}"}`);

      faults.reset();
      const stormyEnd = await h.final(stormyJob);
      expect(stormyEnd.state).toBe('completed');
      const { end } = await followBatch(res.body.id);
      expect(end).toMatchObject({ state: 'completed', failed: [] });
    } finally {
      clearInterval(watch);
      faults.reset();
    }
  });
});

describe('pathembed batch', () => {
  function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn('npx', ['tsx', 'src/cli/main.ts', 'batch', ...args], {
        cwd: REPO_ROOT,
        env: { ...process.env, LOG_LEVEL: 'silent' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => {
        stdout += c.toString();
      });
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
      });
      // 'close', not 'exit': the output streams may still hold data when the process exits.
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  it('marks a completed slide whose result file is gone from the store NOT_FOUND in the manifest, not as an output it never had', async () => {
    const res = await call('POST', '/v1/batches', {
      sources: [seriesUrl(dicomWeb, studies.s2, 'D')],
      options: EVERY_PATCH,
      outputs: ['json', 'parquet'],
    });
    expect(res.status).toBe(202);
    const { end } = await followBatch(res.body.id);
    expect(end.state).toBe('completed');
    const [job] = (await call('GET', `/v1/batches/${res.body.id}/jobs`)).body.jobs;
    await fs.rm(path.join(h.resultsDir, 'jobs', job.id, 'result.parquet'));
    const manifest = await call('GET', `/v1/batches/${res.body.id}/manifest`);
    expect(manifest.status).toBe(200);
    const [row] = manifest.body.slides;
    expect(row).toMatchObject({ jobId: job.id, state: 'completed', errorCode: 'NOT_FOUND' });
    expect(row.files.map((f: { output: string }) => f.output)).toEqual(['json']);
  });

  it('never raises progress marks with counts taken during a run a resubmission has replaced', async () => {
    const store = new BatchStore(h.redis, h.api.ctx.keys);
    const id = `b-marks-${randomBytes(4).toString('hex')}`;
    const key = h.api.ctx.keys.batch(id);
    // A second run has started (its marks reset); a poller still holds run 1's counts.
    await h.redis.hset(key, 'runs', 2, 'markFinished', 1, 'markPatchesDone', 5);
    try {
      expect(await store.raiseMarks(id, 1, 10, 100)).toEqual({ finished: 1, patchesDone: 5 });
      expect(await h.redis.hmget(key, 'markFinished', 'markPatchesDone')).toEqual(['1', '5']);
      expect(await store.raiseMarks(id, 2, 3, 20)).toEqual({ finished: 3, patchesDone: 20 });
      expect(await h.redis.hmget(key, 'markFinished', 'markPatchesDone')).toEqual(['3', '20']);
    } finally {
      await h.redis.del(key);
    }
  });

  it('follows a file of URLs to its end, writes the manifest, and exits non-zero when a slide failed', async () => {
    const ok = path.join(dir, 'ok.txt');
    await fs.writeFile(
      ok,
      `# slides A and B\n${seriesUrl(dicomWeb, studies.s1, 'A')}\n\n${seriesUrl(dicomWeb, studies.s1, 'B')}\n`,
    );
    const manifestFile = path.join(dir, 'manifest.csv');
    const good = await runCli([
      ok,
      '--api',
      h.url,
      '--min-tissue',
      '0',
      '--poll-ms',
      '200',
      '-o',
      manifestFile,
    ]);
    expect(good.code, good.stderr).toBe(0);
    const summary = JSON.parse(good.stdout);
    expect(summary).toMatchObject({ state: 'completed', slides: 2, failed: [] });
    expect(summary.manifest).toBe(`${h.url}/v1/batches/${summary.batch}/manifest`);
    expect((await fs.readFile(manifestFile, 'utf8')).trimEnd().split('\r\n')).toHaveLength(3);

    const bad = path.join(dir, 'bad.txt');
    const missing = `${dicomWeb}/studies/${studies.s1}/series/2.25.${BigInt(`0x${RUN}99`)}`;
    await fs.writeFile(bad, `${seriesUrl(dicomWeb, studies.s1, 'A')}\n${missing}\n`);
    const failed = await runCli([bad, '--api', h.url, '--min-tissue', '0', '--poll-ms', '200']);
    expect(failed.code).toBe(1);
    const out = JSON.parse(failed.stdout);
    expect(out.state).toBe('failed');
    expect(out.failed).toHaveLength(1);
    expect(out.failed[0].seriesUrl).toBe(missing);
    expect(failed.stderr).toContain(`failed ${missing}`);
  });
});
