/**
 * Similar-patch search end to end: the real API and a real worker (the real model), real Redis,
 * the test Orthanc with two small synthetic slides uploaded by this file, run as one batch. Slide
 * A (8 patches) is above PATHEMBED_SIMILARITY_EXACT_BELOW (6), so its index is an HNSW graph; slide B
 * (4 patches) is below, so exact. Every distance the API answers is checked against 1 − cos
 * computed here from the job's own JSON result; the CLI is checked against the API on the same
 * job, and on the downloaded result file with no service.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../scripts/dev-services/fixtures.js';
import { uploadFolder } from '../../scripts/dev-services/orthanc.js';
import { S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY, startS3Server } from '../../scripts/dev-services/s3-server.js';
import { createApi } from '../../src/api/app.js';
import { listen } from '../../src/api/server.js';
import { searchBuildOptions } from '../../src/domain-options.js';
import { createLogger } from '../../src/log.js';
import { S3ResultStore } from '../../src/queue/s3-result-store.js';
import { parseResult } from '../../src/results/index.js';
import { level0Point, level0Scale } from '../../src/results/level0-coordinates.js';
import { writeSyntheticWsi } from '../../src/sample/synthetic-wsi-writer.js';
import {
  indexOfDocument,
  JobIndexCache,
  StoredIndexes,
  searchSimilar,
  storeJobIndex,
} from '../../src/search/index.js';
import { type Harness, startHarness, until } from '../helpers/service-harness.js';
import { services } from '../helpers/services.js';

const RUN = randomBytes(4).toString('hex');
const EVERY_PATCH = { minTissue: 0 };
/** 224 px patches at the slides' 0.5 um/px: A is a 4 x 2 grid, B 2 x 2. */
const SLIDES = {
  A: { widthPx: 900, heightPx: 460, patches: 8 },
  B: { widthPx: 460, heightPx: 460, patches: 4 },
  C: { widthPx: 460, heightPx: 240, patches: 2 },
} as const;

let h: Harness;
let dir: string;
const seriesUrls: Record<string, string> = {};
const seriesUids: Record<string, string> = {};
let batchId: string;
const jobIds: Record<string, string> = {};

interface Patch {
  index: number;
  x: number;
  y: number;
  width: number;
  height: number;
  embedding: number[];
}
// biome-ignore lint/suspicious/noExplicitAny: result documents are checked field by field
const results: Record<string, { doc: any; patches: Patch[]; text: string }> = {};

interface Reply {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
  body: any;
  text: string;
}

async function call(method: string, route: string, body?: unknown): Promise<Reply> {
  const res = await fetch(`${h.url}${route}`, {
    method,
    headers: body !== undefined ? { 'content-type': 'application/json' } : {},
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text };
}

const search = (body: unknown) => call('POST', '/v1/search', body);

function cosineDistance(a: number[], b: number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return 1 - dot / Math.sqrt(na * nb);
}

/** A patch's rectangle in level-0 pixels, from the result header (as the index states it). */
function level0Rect(name: string, p: Patch) {
  const scale = level0Scale(results[name]!.doc);
  const a = level0Point(p.x, p.y, scale);
  const b = level0Point(p.x + p.width, p.y + p.height, scale);
  return { x: a.x0, y: a.y0, width: b.x0 - a.x0, height: b.y0 - a.y0 };
}

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('npx', ['tsx', 'src/cli/main.ts', 'search', ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, LOG_LEVEL: 'silent', PATHEMBED_SIMILARITY_EXACT_BELOW: '6' },
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
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-search-'));
  for (const [name, s] of Object.entries(SLIDES)) {
    const out = path.join(dir, name);
    const wsi = await writeSyntheticWsi(out, {
      widthPx: s.widthPx,
      heightPx: s.heightPx,
      downsamples: [1],
      seed: `search-${RUN}-${name}`,
      patientId: `PE-SEARCH-${RUN}`,
    });
    await uploadFolder(services().orthancUrl, out);
    seriesUids[name] = wsi.seriesInstanceUid;
    seriesUrls[name] =
      `${services().dicomWebUrl}/studies/${wsi.studyInstanceUid}/series/${wsi.seriesInstanceUid}`;
  }
  h = await startHarness({
    redisUrl: services().redisUrl,
    env: {
      PATHEMBED_ALLOWED_STORES: new URL(services().dicomWebUrl).origin,
      PATHEMBED_SIMILARITY_EXACT_BELOW: '6',
      PATHEMBED_SIMILARITY_MAX_K: '50',
    },
  });
  const submitted = await call('POST', '/v1/batches', {
    sources: [seriesUrls.A, seriesUrls.B],
    options: EVERY_PATCH,
  });
  expect(submitted.status, submitted.text).toBe(202);
  batchId = submitted.body.id;
  await until(`batch ${batchId} to end`, async () => {
    const got = await call('GET', `/v1/batches/${batchId}`);
    return got.body.state === 'running' ? undefined : got.body;
  });
  const jobs = await call('GET', `/v1/batches/${batchId}/jobs`);
  for (const j of jobs.body.jobs) {
    expect(j.state).toBe('completed');
    const name = j.source.seriesUid === seriesUids.A ? 'A' : 'B';
    jobIds[name] = j.id;
    const res = await call('GET', `/v1/jobs/${j.id}/result`);
    results[name] = { doc: res.body, patches: res.body.patches, text: res.text };
  }
}, 600_000);

afterAll(async () => {
  await h?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('POST /v1/search', () => {
  it('writes each job an index beside its results: HNSW above the threshold, exact below', async () => {
    expect(results.A!.patches).toHaveLength(SLIDES.A.patches);
    expect(results.B!.patches).toHaveLength(SLIDES.B.patches);
    for (const name of ['A', 'B']) {
      const file = path.join(h.resultsDir, 'jobs', jobIds[name]!, 'search-index.bin');
      expect((await fs.readFile(file)).subarray(0, 8).toString('ascii')).toBe('PESEARCH');
    }
  });

  it.each([
    ['A', 'hnsw'],
    ['B', 'exact'],
  ] as const)(
    'answers a point of job %s with its own patch first and 1 - cos distances ascending (%s)',
    async (name, kind) => {
      const { patches } = results[name]!;
      const target = patches[patches.length - 1]!;
      const rect = level0Rect(name, target);
      const res = await search({
        jobId: jobIds[name],
        patch: { x: rect.x + Math.floor(rect.width / 2), y: rect.y + 3 },
        k: 50,
      });
      expect(res.status, res.text).toBe(200);
      expect(res.body.index).toEqual({ kind, size: patches.length, jobs: 1 });
      expect(res.body.query).toEqual({
        jobId: jobIds[name],
        k: 50,
        patch: { jobId: jobIds[name], patchIndex: target.index, ...rect },
      });
      const neighbours = res.body.neighbours;
      expect(neighbours).toHaveLength(patches.length);
      expect(neighbours[0]).toMatchObject({ jobId: jobIds[name], patchIndex: target.index, ...rect });
      expect(neighbours[0].distance).toBeLessThan(1e-5);
      for (let i = 0; i < neighbours.length; i++) {
        const n = neighbours[i];
        if (i > 0) expect(n.distance).toBeGreaterThanOrEqual(neighbours[i - 1].distance);
        const p = patches.find((q) => q.index === n.patchIndex)!;
        expect(Math.abs(n.distance - cosineDistance(target.embedding, p.embedding))).toBeLessThan(1e-5);
        expect(n).toMatchObject(level0Rect(name, p));
        expect(n.source).toEqual({
          kind: 'dicomweb',
          baseUrl: services().dicomWebUrl,
          studyInstanceUid: results[name]!.doc.source.studyInstanceUid,
          seriesInstanceUid: results[name]!.doc.source.seriesInstanceUid,
        });
      }
      expect(new Set(neighbours.map((n: { patchIndex: number }) => n.patchIndex)).size).toBe(patches.length);
    },
  );

  it('searches a batch across both slides, k nearest of the union by 1 - cos', async () => {
    const query = results.B!.patches[1]!;
    const rect = level0Rect('B', query);
    const res = await search({ batchId, patch: { jobId: jobIds.B, x: rect.x, y: rect.y }, k: 7 });
    expect(res.status, res.text).toBe(200);
    expect(res.body.index).toEqual({ kind: 'hnsw', size: 12, jobs: 2 });
    expect(res.body.query.batchId).toBe(batchId);
    const expected = (['A', 'B'] as const)
      .flatMap((name) =>
        results[name]!.patches.map((p) => ({
          jobId: jobIds[name],
          patchIndex: p.index,
          distance: cosineDistance(query.embedding, p.embedding),
        })),
      )
      .sort((a, b) => a.distance - b.distance)
      .slice(0, 7);
    const got = res.body.neighbours;
    // The synthetic slides share their coordinate-encoded content, so patch 1 of A is the same
    // image as patch 1 of B (distance 0 in both): ranks are compared by distance, not by id.
    expect(got).toHaveLength(7);
    got.forEach((n: { jobId: string; patchIndex: number; distance: number }, i: number) => {
      expect(Math.abs(n.distance - expected[i]!.distance)).toBeLessThan(1e-5);
      const name = n.jobId === jobIds.A ? 'A' : 'B';
      const p = results[name]!.patches.find((q) => q.index === n.patchIndex)!;
      expect(Math.abs(n.distance - cosineDistance(query.embedding, p.embedding))).toBeLessThan(1e-5);
    });
    const zero = got.filter((n: { distance: number }) => n.distance < 1e-5);
    expect(zero.map((n: { jobId: string; patchIndex: number }) => `${n.jobId}/${n.patchIndex}`)).toContain(
      `${jobIds.B}/1`,
    );
    const series = new Set(
      got.map((n: { source: { seriesInstanceUid: string } }) => n.source.seriesInstanceUid),
    );
    expect(series.size).toBe(2);
  });

  it('answers an embedding query: the patch it came from first', async () => {
    const p = results.A!.patches[5]!;
    const res = await search({ jobId: jobIds.A, embedding: p.embedding, k: 3 });
    expect(res.status, res.text).toBe(200);
    expect(res.body.query).toEqual({ jobId: jobIds.A, k: 3, embedding: { dimension: 384 } });
    expect(res.body.neighbours).toHaveLength(3);
    expect(res.body.neighbours[0]).toMatchObject({ patchIndex: 5 });
    expect(res.body.neighbours[0].distance).toBeLessThan(1e-5);
  });

  it('refuses with stable codes: unknown job, point outside, wrong length, bad body, k too large, not completed', async () => {
    const unknown = await search({ jobId: 'j0000000000000000000000000000dead', patch: { x: 0, y: 0 } });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('NOT_FOUND');

    const outside = await search({ jobId: jobIds.B, patch: { x: 5000, y: 10 } });
    expect(outside.status).toBe(400);
    expect(outside.body.error.code).toBe('INVALID_ARGUMENT');
    expect(outside.body.error.message).toContain('(5000, 10)');
    expect(outside.body.error.message).toContain(jobIds.B);

    const short = await search({ jobId: jobIds.B, embedding: new Array(383).fill(0.1) });
    expect(short.status).toBe(400);
    expect(short.body.error.code).toBe('INVALID_ARGUMENT');
    expect(short.body.error.message).toMatch(/383 values.*384/);

    const both = await search({ jobId: jobIds.B, batchId, patch: { x: 0, y: 0 } });
    expect(both.status).toBe(400);
    expect(both.text).toContain('exactly one of jobId and batchId');
    const noJob = await search({ batchId, patch: { x: 0, y: 0 } });
    expect(noJob.status).toBe(400);
    expect(noJob.text).toContain('patch.jobId');
    const bigK = await search({ jobId: jobIds.B, patch: { x: 0, y: 0 }, k: 51 });
    expect(bigK.status).toBe(400);
    expect(bigK.body.error.message).toContain('PATHEMBED_SIMILARITY_MAX_K');

    const id = await h.submit(seriesUrls.C!, { options: EVERY_PATCH });
    const early = await search({ jobId: id, patch: { x: 0, y: 0 } });
    expect(early.status, early.text).toBe(409);
    expect(early.body.error.code).toBe('JOB_NOT_COMPLETED');
    expect(early.body.error.details.jobId).toBe(id);
    await call('DELETE', `/v1/jobs/${id}`);
    await h.final(id);
  });
});

describe('search indexes and the contract', () => {
  it('builds a missing index from the JSON result on first query, stores it, and answers the same', async () => {
    const rect = level0Rect('B', results.B!.patches[3]!);
    const body = { jobId: jobIds.B, patch: { x: rect.x, y: rect.y }, k: 4 };
    const before = await search(body);
    const file = path.join(h.resultsDir, 'jobs', jobIds.B!, 'search-index.bin');
    await fs.rm(file);
    // A second API on the same Redis and results folder: its cache is empty.
    const api = await createApi(h.config, createLogger('silent'));
    const server = await listen(api.app, '127.0.0.1', 0);
    try {
      const res = await fetch(`${server.url}/v1/search`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual(before.body);
      expect((await fs.readFile(file)).subarray(0, 8).toString('ascii')).toBe('PESEARCH');
    } finally {
      await server.close();
      await api.close();
    }
  });

  it('is behind the API keys, and a key sees only its own jobs and batches', async () => {
    const api = await createApi(
      Object.freeze({ ...h.config, PATHEMBED_API_KEYS: ['search-test-key-0123456789'] }),
      createLogger('silent'),
    );
    const server = await listen(api.app, '127.0.0.1', 0);
    const post = (body: unknown, key?: string) =>
      fetch(`${server.url}/v1/search`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
        body: JSON.stringify(body),
      });
    try {
      const body = { jobId: jobIds.A, patch: { x: 0, y: 0 } };
      expect((await post(body)).status).toBe(401);
      // The jobs were submitted without a key: another key is told they do not exist.
      const other = await post(body, 'search-test-key-0123456789');
      expect(other.status).toBe(404);
      expect(((await other.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND');
      const batch = await post(
        { batchId, patch: { jobId: jobIds.A, x: 0, y: 0 } },
        'search-test-key-0123456789',
      );
      expect(batch.status).toBe(404);
    } finally {
      await server.close();
      await api.close();
    }
  });

  it('stores and loads an index through the S3 result store as through the folder', async () => {
    const s3 = await startS3Server({ buckets: ['search'] });
    const store = new S3ResultStore({
      bucket: 'search',
      prefix: 'pfx',
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: S3RVER_ACCESS_KEY, secretAccessKey: S3RVER_SECRET_KEY },
    });
    try {
      const build = searchBuildOptions(h.config);
      const built = await indexOfDocument(jobIds.A!, parseResult(results.A!.text, 'A'), build);
      await storeJobIndex(store, built);
      expect(await store.list('jobs')).toEqual([`jobs/${jobIds.A}/search-index.bin`]);
      const provider = new StoredIndexes({
        storage: store,
        cache: new JobIndexCache(1024 * 1024),
        build,
        check: async () => undefined,
        readResult: async () => undefined,
        missing: (id) => new Error(`no index of ${id}`),
      });
      const rect = level0Rect('A', results.A!.patches[4]!);
      const body = { jobId: jobIds.A, patch: { x: rect.x, y: rect.y }, k: 8 };
      const fromS3 = await searchSimilar(provider, {
        scope: { jobId: jobIds.A! },
        target: { patch: { jobId: jobIds.A!, x: rect.x, y: rect.y } },
        k: 8,
      });
      expect(fromS3.index.kind).toBe('hnsw');
      expect(JSON.parse(JSON.stringify(fromS3))).toEqual((await search(body)).body);
    } finally {
      store.close();
      await s3.stop();
    }
  });

  it('is in the OpenAPI document with its request and response schemas', async () => {
    const doc = await call('GET', '/openapi.json');
    expect(doc.body.paths['/v1/search'].post.responses['409']).toBeDefined();
    const req = doc.body.components.schemas.SearchRequest;
    expect(req.additionalProperties).toBe(false);
    expect(Object.keys(req.properties).sort()).toEqual(['batchId', 'embedding', 'jobId', 'k', 'patch']);
    const neighbour = doc.body.components.schemas.SearchResponse.properties.neighbours.items;
    expect(Object.keys(neighbour.properties)).toEqual(
      expect.arrayContaining(['jobId', 'patchIndex', 'x', 'y', 'width', 'height', 'distance', 'source']),
    );
  });
});

describe('pathembed search', () => {
  it('prints the API answer for a job (--json) and a table', async () => {
    const p = results.A!.patches[2]!;
    const rect = level0Rect('A', p);
    const args = [
      '--api',
      h.url,
      '--job',
      jobIds.A!,
      '--x',
      String(rect.x),
      '--y',
      String(rect.y),
      '--k',
      '4',
    ];
    const api = await search({ jobId: jobIds.A, patch: { x: rect.x, y: rect.y }, k: 4 });
    const json = await runCli([...args, '--json']);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(api.body);
    const table = await runCli(args);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toBe(
      `query: patch 2 of ${jobIds.A} at (${rect.x}, ${rect.y}) ${rect.width}x${rect.height}`,
    );
    expect(lines[1]).toBe('index: hnsw, 8 patches in 1 job(s)');
    expect(lines[2]).toMatch(/^#\s+distance\s+job\s+patch\s+x\s+y\s+size\s+series$/);
    expect(lines).toHaveLength(3 + 4);
    expect(lines[3]!.split(/\s+/).slice(0, 4)).toEqual([
      '1',
      api.body.neighbours[0].distance.toFixed(6),
      jobIds.A,
      '2',
    ]);
  });

  it('searches a local result file with no service, answering as the API does', async () => {
    const file = path.join(dir, `${jobIds.A}.json`);
    await fs.writeFile(file, results.A!.text);
    const p = results.A!.patches[6]!;
    const rect = level0Rect('A', p);
    const local = await runCli([
      '--result',
      file,
      '--x',
      String(rect.x + 1),
      '--y',
      String(rect.y + 1),
      '--k',
      '8',
      '--json',
    ]);
    expect(local.code, local.stderr).toBe(0);
    const api = await search({ jobId: jobIds.A, patch: { x: rect.x + 1, y: rect.y + 1 }, k: 8 });
    const got = JSON.parse(local.stdout);
    expect(got.index).toEqual({ kind: 'hnsw', size: 8, jobs: 1 });
    expect(got.neighbours.map((n: { patchIndex: number }) => n.patchIndex)).toEqual(
      api.body.neighbours.map((n: { patchIndex: number }) => n.patchIndex),
    );
    got.neighbours.forEach((n: { distance: number }, i: number) => {
      expect(Math.abs(n.distance - api.body.neighbours[i].distance)).toBeLessThan(1e-6);
    });
    const outside = await runCli(['--result', file, '--x', '99999', '--y', '0']);
    expect(outside.code).toBe(1);
    expect(outside.stderr).toContain('INVALID_ARGUMENT');
    expect(outside.stderr).toContain('(99999, 0)');
  });
});
