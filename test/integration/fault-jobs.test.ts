/**
 * The standing fault suite, store and submission side: the real API and a real worker in this
 * process, real Redis (a fresh prefix), the test Orthanc behind the fault-injecting proxy
 * (test/helpers/fault-server.ts). Every case runs a real job and checks its end state: each
 * planned patch exactly once in the result, or a failure with the right code; never a record left
 * unfinished; no temporary file; nothing left on disk by a failed job.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bullJobIds, QUEUE_NAME } from '../../src/queue/queue-jobs.js';
import { resultKeys } from '../../src/queue/result-store.js';
import {
  type FaultServer,
  type FaultStep,
  type RecordedRequest,
  startFaultServer,
} from '../helpers/fault-server.js';
import { everyIndex, type Harness, startHarness, until } from '../helpers/service-harness.js';
import { fixture, services } from '../helpers/services.js';

/** Request attempts per store request in this file (PATHEMBED_RETRY_MAX_ATTEMPTS). */
const REQUEST_ATTEMPTS = 3;
/** A request slower than this is a timeout (PATHEMBED_REQUEST_TIMEOUT_MS). */
const REQUEST_TIMEOUT_MS = 1500;
const CONCURRENT_SUBMITS = 50;
const BODY_LIMIT_KB = 64;
/** Above the 12 patches of the jobs here, below the 60-odd of a 100 px stride. */
const MAX_PATCHES_PER_JOB = 30;

let faults: FaultServer;
let h: Harness;

beforeAll(async () => {
  faults = await startFaultServer(services().orthancUrl);
  h = await startHarness({
    redisUrl: services().redisUrl,
    env: {
      PATHEMBED_ALLOWED_STORES: `${new URL(services().dicomWebUrl).origin},${faults.url}`,
      PATHEMBED_RETRY_MAX_ATTEMPTS: String(REQUEST_ATTEMPTS),
      PATHEMBED_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      PATHEMBED_BODY_LIMIT: `${BODY_LIMIT_KB}kb`,
      PATHEMBED_MAX_PATCHES_PER_JOB: String(MAX_PATCHES_PER_JOB),
    },
  });
});

afterAll(async () => {
  await h?.close();
  await faults?.close();
});

const isFrames = (r: RecordedRequest) => r.path.includes('/frames/');
/** `step` for every `n`th frame request (1-based count of frame requests), proxy otherwise. */
function everyNthFrame(n: number, step: FaultStep): FaultStep {
  let seen = 0;
  return {
    kind: 'match',
    when: (r) => isFrames(r) && ++seen % n === 0,
    apply: step,
  };
}

/** The synthetic slide through the proxy: 12 patches at minTissue 0 (3 chunks of 4). */
function viaProxy(name = 'synthetic-full'): string {
  return faults.via(fixture(name).seriesUrl);
}

/** A fresh job (recompute) on the proxied slide; resolves with its end state. */
async function runJob(name = 'synthetic-full') {
  const id = await h.submit(viaProxy(name), { options: { minTissue: 0 }, recompute: true });
  return { id, end: await h.final(id) };
}

const SOI = Buffer.from([0xff, 0xd8, 0xff]);
const EOI = Buffer.from([0xff, 0xd9]);
const CORRUPT_BYTES = 200;

/**
 * Overwrites bytes in the middle of the JPEG streams of a multipart frame answer for which
 * `which(i)` holds (i: the stream's position in the answer); headers and boundaries are kept.
 */
function corruptJpegs(body: Buffer, which: (i: number) => boolean): Buffer {
  const out = Buffer.from(body);
  let at = out.indexOf(SOI);
  for (let i = 0; at >= 0; i++) {
    const eoi = out.indexOf(EOI, at + SOI.length);
    if (eoi < 0) break;
    if (which(i)) {
      const mid = Math.floor((at + eoi) / 2);
      for (let k = 0; k < CORRUPT_BYTES && mid + k < eoi - 1; k++)
        out[mid + k] = (out[mid + k] * 31 + 17) & 0xff;
    }
    at = out.indexOf(SOI, eoi);
  }
  return out;
}

/** The 1-based frame numbers a WADO-RS frames request asks for, in order. */
function framesOf(requestPath: string): number[] {
  const list = /\/frames\/([\d,]+)/.exec(requestPath)?.[1] ?? '';
  return list.split(',').map(Number);
}

/** Tile size and tiles per row of level 0 of a TILED_FULL series, from its metadata. */
async function tiledGeometry(seriesUrl: string) {
  const metadata = (await (await fetch(`${seriesUrl}/metadata`)).json()) as Array<
    Record<string, { Value?: number[] }>
  >;
  // Level 0: the instance with the widest total pixel matrix.
  const width = (d: Record<string, { Value?: number[] }>) => Number(d['00480006']?.Value?.[0] ?? 0);
  const ds = metadata.reduce((a, b) => (width(b) > width(a) ? b : a));
  const value = (tag: string) => Number(ds[tag]?.Value?.[0]);
  const tileWidth = value('00280011');
  const tileHeight = value('00280010');
  return { tileWidth, tileHeight, columns: Math.ceil(value('00480006') / tileWidth) };
}

interface ResultDoc {
  level: { scaleFromGrid: number };
  patches: Array<{ index: number; x: number; y: number; width: number; height: number; embedding: number[] }>;
  summary: {
    plannedPatchCount: number;
    patchCount: number;
    failedPatchCount: number;
    failedPatches: Array<{ index: number; code: string; message: string }>;
  };
}

async function resultDocument(id: string): Promise<ResultDoc> {
  const res = await fetch(`${h.url}/v1/jobs/${id}/result`);
  expect(res.status).toBe(200);
  return (await res.json()) as ResultDoc;
}

async function expectCompletedExactlyOnce(id: string, end: Awaited<ReturnType<Harness['final']>>) {
  expect(end.error ?? undefined).toBeUndefined();
  expect(end.state).toBe('completed');
  const planned = end.progress.planned as number;
  expect(planned).toBeGreaterThan(0);
  expect(end.progress.done).toBe(planned);
  expect(await h.resultIndices(id)).toEqual(everyIndex(planned));
  expect(await h.tempFiles()).toEqual([]);
}

async function expectFailedClean(id: string, end: Awaited<ReturnType<Harness['final']>>, code: string) {
  expect(end.state).toBe('failed');
  expect(end.error?.code).toBe(code);
  // No result presented, and nothing of the job left on disk: plan, metadata, chunks, partial results.
  expect((await fetch(`${h.url}/v1/jobs/${id}/result`)).status).toBe(404);
  await until(
    `job ${id}'s files to be removed`,
    async () => ((await h.jobFiles(id)).length === 0 ? true : undefined),
    10_000,
  );
  expect(await h.tempFiles()).toEqual([]);
}

describe('submission', () => {
  it(`makes exactly one job of ${CONCURRENT_SUBMITS} identical concurrent submits`, async () => {
    const source = viaProxy();
    const body = JSON.stringify({ sources: [source], options: { minTissue: 0, stridePx: 200 } });
    const answers = await Promise.all(
      Array.from({ length: CONCURRENT_SUBMITS }, async () => {
        const res = await fetch(`${h.url}/v1/jobs`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        expect(res.status).toBe(202);
        return ((await res.json()) as { jobs: Array<{ id: string; existing: boolean }> }).jobs[0];
      }),
    );
    const ids = new Set(answers.map((a) => a.id));
    expect(ids.size).toBe(1);
    expect(answers.filter((a) => !a.existing)).toHaveLength(1);
    expect(answers.filter((a) => a.existing)).toHaveLength(CONCURRENT_SUBMITS - 1);
    const [id] = ids;
    await expectCompletedExactlyOnce(id, await h.final(id));
    // One slide job was ever queued for it: the slide was planned once.
    const slideJobs = (await h.api.ctx.queue.getJobs(['completed', 'failed', 'waiting', 'active'])).filter(
      (j) => j?.name === 'slide' && j.data.jobId === id,
    );
    expect(slideJobs).toHaveLength(1);
  });

  it('enqueues and runs a job whose submitter died between its record and its queue job', async () => {
    // What a SIGKILL between the two writes leaves: the alias and a queued record, no queue job.
    const ctx = h.api.ctx;
    const source = { kind: 'dicomweb' as const, ...parseSource(viaProxy()) };
    const jobId = 'j0123456789abcdef0123456789abcdef';
    await ctx.records.create({
      id: jobId,
      createdAt: Date.now() - 60_000,
      source,
      options: { pixelSpacingUm: 0.5, stridePx: 224, minTissue: 0 },
      outputs: ['json'],
      priority: 5,
      keyId: 'anonymous',
      hasToken: false,
      modelSha256: 'x'.repeat(64),
    });
    expect(await ctx.queue.getJob(bullJobIds.slide(jobId))).toBeUndefined();
    // The reconciler (every second in this harness) finds it and enqueues it; it runs to the end.
    const end = await h.final(jobId, 60_000);
    await expectCompletedExactlyOnce(jobId, end);
  });
});

describe('store faults that request retries absorb', () => {
  const absorbed: Array<[string, () => FaultStep]> = [
    [
      'a connection dropped mid-body on every 3rd frame request',
      () => everyNthFrame(3, { kind: 'drop-mid-body' }),
    ],
    ['a connection reset on every 3rd frame request', () => everyNthFrame(3, { kind: 'reset' })],
    ['HTTP 500 on every 2nd frame request', () => everyNthFrame(2, { kind: 'status', status: 500 })],
    [
      'HTTP 503 with Retry-After on every 2nd frame request',
      () => everyNthFrame(2, { kind: 'status', status: 503, headers: { 'retry-after': '0' } }),
    ],
    [
      'an answer slower than the request timeout on every 3rd frame request',
      () => everyNthFrame(3, { kind: 'delay', ms: REQUEST_TIMEOUT_MS + 500 }),
    ],
    [
      'a slow but timely answer on every frame request',
      () => ({ kind: 'match', when: isFrames, apply: { kind: 'delay', ms: 150 } }),
    ],
  ];
  for (const [what, step] of absorbed) {
    it(`completes with every patch once: ${what}`, async () => {
      faults.reset();
      faults.setDefault(step());
      const { id, end } = await runJob();
      faults.reset();
      await expectCompletedExactlyOnce(id, end);
    });
  }

  it('completes with every patch once through a same-store redirect on every metadata request', async () => {
    faults.reset();
    const upstream = new URL(services().orthancUrl);
    faults.setDefault({
      kind: 'custom',
      respond: async (req, res) => {
        if (!isFrames(req) && !req.path.startsWith('/redirected')) {
          res.writeHead(307, { location: `${faults.url}/redirected${req.path}` }).end();
          return;
        }
        const target = req.path.replace(/^\/redirected/, '');
        const answer = await fetch(`${upstream.origin}${target}`, {
          headers: { accept: String(req.headers.accept ?? '*/*') },
        });
        const body = Buffer.from(await answer.arrayBuffer());
        res.writeHead(answer.status, {
          'content-type': answer.headers.get('content-type') ?? 'application/octet-stream',
          'content-length': String(body.length),
        });
        res.end(body);
      },
    });
    const { id, end } = await runJob();
    const redirected = faults.requests.filter((r) => r.path.startsWith('/redirected')).length;
    faults.reset();
    expect(redirected).toBeGreaterThan(0);
    await expectCompletedExactlyOnce(id, end);
  });
});

describe('store faults that end the job with the right code', () => {
  it('spends one retry budget on a store that always answers 500 (DICOMWEB_UNAVAILABLE)', async () => {
    faults.reset();
    faults.setDefault({ kind: 'status', status: 500, body: 'down' });
    const { id, end } = await runJob();
    const requests = faults.requests.length;
    faults.reset();
    await expectFailedClean(id, end, 'DICOMWEB_UNAVAILABLE');
    // The first request failed REQUEST_ATTEMPTS times and the job was not retried on top of it
    // (PATHEMBED_JOB_ATTEMPTS is 3 here: 9 requests before).
    expect(requests).toBe(REQUEST_ATTEMPTS);
  });

  it('fails a multipart body cut short but ended cleanly with DICOMWEB_BAD_RESPONSE naming the frames', async () => {
    // The store says the answer is complete: that is a broken store, not a lost connection
    // (a connection lost mid-body is retried, above).
    faults.reset();
    faults.setDefault(everyNthFrame(3, { kind: 'truncate', fraction: 0.6 }));
    const { id, end } = await runJob();
    faults.reset();
    await expectFailedClean(id, end, 'DICOMWEB_BAD_RESPONSE');
    expect(end.error?.message).toMatch(
      /Truncated WADO-RS frames .* of instance .*without the closing boundary/,
    );
  });

  it('fails with DICOMWEB_TIMEOUT when every frame answer is slower than the timeout', async () => {
    faults.reset();
    faults.setDefault({
      kind: 'match',
      when: isFrames,
      apply: { kind: 'delay', ms: REQUEST_TIMEOUT_MS + 500 },
    });
    const { id, end } = await runJob();
    faults.reset();
    await expectFailedClean(id, end, 'DICOMWEB_TIMEOUT');
  });

  it('removes plan, metadata and chunk files of a job whose store fails midway', async () => {
    faults.reset();
    // The first two frame requests succeed (a chunk is written), then the store answers 500.
    let frames = 0;
    faults.setDefault({
      kind: 'match',
      when: (r) => isFrames(r) && ++frames > 2,
      apply: { kind: 'status', status: 500 },
    });
    const { id, end } = await runJob();
    faults.reset();
    await expectFailedClean(id, end, 'DICOMWEB_UNAVAILABLE');
    expect(await h.api.ctx.results.exists(resultKeys.plan(id))).toBe(false);
  });

  it('fails corrupt JPEG frames with FRAME_DECODE_ERROR naming frame and instance', async () => {
    faults.reset();
    faults.setDefault({
      kind: 'match',
      when: isFrames,
      apply: { kind: 'mutate', mutate: (body) => corruptJpegs(body, () => true) },
    });
    const { id, end } = await runJob('synthetic-jpeg');
    faults.reset();
    await expectFailedClean(id, end, 'FRAME_DECODE_ERROR');
    expect(end.error?.message).toMatch(
      /Frame index \d+ of instance [\d.]+: JPEG frame could not be decoded: .*Corrupt JPEG data/,
    );
  });

  it('with frameErrors "skip", leaves out exactly the patches of a corrupt frame, lists them, and embeds the rest as a clean run does', async () => {
    faults.reset();
    const f = fixture('synthetic-jpeg');
    const geometry = await tiledGeometry(f.seriesUrl);
    // The slide's 12 grid patches, given explicitly: planning then reads no frame (no tissue mask),
    // so the corrupt frame is met only while embedding.
    const patches = [0, 224, 448].flatMap((y) => [0, 224, 448, 672].map((x) => ({ x, y })));
    const submit = async () => {
      const id = await h.submit(faults.via(f.seriesUrl), {
        options: { patches, frameErrors: 'skip' },
        outputs: ['json', 'dicom-sr'],
        recompute: true,
      });
      return { id, end: await h.final(id) };
    };
    const clean = await submit();
    await expectCompletedExactlyOnce(clean.id, clean.end);
    const cleanDoc = await resultDocument(clean.id);

    // Frame CORRUPT_FRAME (1-based, as in WADO-RS URLs) is corrupted in every answer that holds it.
    const CORRUPT_FRAME = geometry.columns + 2;
    faults.setDefault({
      kind: 'match',
      when: isFrames,
      apply: {
        kind: 'mutate',
        mutate: (body, req) => {
          const asked = framesOf(req.path);
          return corruptJpegs(body, (i) => asked[i] === CORRUPT_FRAME);
        },
      },
    });
    const { id, end } = await submit();
    faults.reset();
    expect(end.error ?? undefined).toBeUndefined();
    expect(end.state).toBe('completed');

    // Expected: the patches whose rectangle overlaps the corrupt frame's tile (level 0, downsample 1).
    const col = (CORRUPT_FRAME - 1) % geometry.columns;
    const row = Math.floor((CORRUPT_FRAME - 1) / geometry.columns);
    const tile = { x0: col * geometry.tileWidth, y0: row * geometry.tileHeight };
    const overlaps = (p: { x: number; y: number; width: number; height: number }) =>
      p.x < tile.x0 + geometry.tileWidth &&
      p.x + p.width > tile.x0 &&
      p.y < tile.y0 + geometry.tileHeight &&
      p.y + p.height > tile.y0;
    expect(cleanDoc.level.scaleFromGrid).toBe(1);
    const expectedFailed = cleanDoc.patches.filter(overlaps).map((p) => p.index);
    expect(expectedFailed.length).toBeGreaterThan(0);
    expect(expectedFailed.length).toBeLessThan(patches.length);

    const doc = await resultDocument(id);
    expect(doc.summary.failedPatchCount).toBe(expectedFailed.length);
    expect(doc.summary.failedPatches.map((p) => p.index)).toEqual(expectedFailed);
    for (const failed of doc.summary.failedPatches) {
      expect(failed.code).toBe('FRAME_DECODE_ERROR');
      expect(failed.message).toContain(`Frame index ${CORRUPT_FRAME - 1} of instance`);
    }
    expect(doc.summary.plannedPatchCount).toBe(patches.length);
    expect(doc.summary.patchCount).toBe(patches.length - expectedFailed.length);
    // The survivors are the clean run's patches, with the same embeddings, value for value.
    const survivors = cleanDoc.patches.filter((p) => !expectedFailed.includes(p.index));
    expect(doc.patches.map((p) => p.index)).toEqual(survivors.map((p) => p.index));
    expect(doc.patches.map((p) => p.embedding)).toEqual(survivors.map((p) => p.embedding));
    // Visible on the job too, and the SR was written from the survivors.
    const view = (await h.job(id)) as unknown as { results: { failedPatches: number; sr: unknown } };
    expect(view.results.failedPatches).toBe(expectedFailed.length);
    expect(view.results.sr).not.toBeNull();
    expect(
      ((await h.job(clean.id)) as unknown as { results: { failedPatches: number } }).results.failedPatches,
    ).toBe(0);
  });

  it('with frameErrors "skip", still fails a job whose every patch is unreadable, with FRAME_DECODE_ERROR', async () => {
    faults.reset();
    faults.setDefault({
      kind: 'match',
      when: isFrames,
      apply: { kind: 'mutate', mutate: (body) => corruptJpegs(body, () => true) },
    });
    // Explicit patches: no tissue mask to plan (a corrupt frame met while planning fails the job
    // under either policy, since the mask would be wrong).
    const id = await h.submit(viaProxy('synthetic-jpeg'), {
      options: {
        patches: [
          { x: 0, y: 0 },
          { x: 224, y: 0 },
        ],
        frameErrors: 'skip',
      },
      recompute: true,
    });
    const end = await h.final(id);
    faults.reset();
    await expectFailedClean(id, end, 'FRAME_DECODE_ERROR');
    expect(end.error?.message).toMatch(
      /Every one of the 2 planned patches failed.*Frame index \d+ of instance/,
    );
  });

  it('with frameErrors "skip" and only a Parquet output, fails an all-unreadable job instead of writing an empty file', async () => {
    faults.reset();
    faults.setDefault({
      kind: 'match',
      when: isFrames,
      apply: { kind: 'mutate', mutate: (body) => corruptJpegs(body, () => true) },
    });
    const id = await h.submit(viaProxy('synthetic-jpeg'), {
      options: { patches: [{ x: 0, y: 0 }], frameErrors: 'skip' },
      outputs: ['parquet'],
      recompute: true,
    });
    const end = await h.final(id);
    faults.reset();
    await expectFailedClean(id, end, 'FRAME_DECODE_ERROR');
    expect(end.error?.message).toMatch(/Every one of the 1 planned patches failed/);
  });

  it('fails a series the store does not have with DICOMWEB_NOT_FOUND, without retrying', async () => {
    faults.reset();
    const s = fixture('synthetic-full');
    const missing = viaProxy().replace(s.seriesUid, `${s.seriesUid}.999`);
    const id = await h.submit(missing, { options: { minTissue: 0 } });
    const end = await h.final(id);
    const requests = faults.requests.length;
    expect(['DICOMWEB_NOT_FOUND', 'NOT_A_WSI']).toContain(end.error?.code);
    await expectFailedClean(id, end, end.error?.code as string);
    expect(requests).toBeLessThanOrEqual(2);
  });
});

describe('bad requests', () => {
  async function post(body: string) {
    const res = await fetch(`${h.url}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    return { status: res.status, code: ((await res.json()) as { error?: { code: string } }).error?.code };
  }

  it('answers malformed JSON with 400 INVALID_ARGUMENT', async () => {
    expect(await post('{"sources": [')).toEqual({ status: 400, code: 'INVALID_ARGUMENT' });
  });

  it('answers a body over PATHEMBED_BODY_LIMIT with 413 PAYLOAD_TOO_LARGE', async () => {
    const sources = Array.from({ length: 2000 }, () => viaProxy());
    expect(JSON.stringify({ sources }).length).toBeGreaterThan(BODY_LIMIT_KB * 1024);
    expect(await post(JSON.stringify({ sources }))).toEqual({ status: 413, code: 'PAYLOAD_TOO_LARGE' });
  });

  it('answers a negative stride and a string priority with 400 INVALID_ARGUMENT', async () => {
    const body = { sources: [viaProxy()], options: { stridePx: -5 }, priority: 'high' };
    expect(await post(JSON.stringify(body))).toEqual({ status: 400, code: 'INVALID_ARGUMENT' });
  });

  it('fails a slide that plans more than PATHEMBED_MAX_PATCHES_PER_JOB patches with PAYLOAD_TOO_LARGE', async () => {
    faults.reset();
    const id = await h.submit(viaProxy(), { options: { minTissue: 0, stridePx: 100 } });
    const end = await h.final(id);
    await expectFailedClean(id, end, 'PAYLOAD_TOO_LARGE');
    expect(end.error?.message).toMatch(/PATHEMBED_MAX_PATCHES_PER_JOB/);
  });
});

describe('end state of the queue', () => {
  it('leaves no job of this file unfinished and no job stuck in the queue', async () => {
    const inFlight = await h.api.ctx.records.inFlightIds();
    expect(inFlight).toEqual([]);
    const counts = await h.api.ctx.queue.getJobCounts('waiting', 'active', 'delayed', 'waiting-children');
    expect(counts).toEqual({ waiting: 0, active: 0, delayed: 0, 'waiting-children': 0 });
    expect(QUEUE_NAME).toBe('embed');
  });
});

/** Base URL, study and series of a DICOMweb series URL. */
function parseSource(url: string): { baseUrl: string; studyUid: string; seriesUid: string } {
  const m = /^(.*)\/studies\/([^/]+)\/series\/([^/]+)$/.exec(url);
  if (!m) throw new Error(`not a series URL: ${url}`);
  return { baseUrl: m[1], studyUid: m[2], seriesUid: m[3] };
}
