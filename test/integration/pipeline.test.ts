import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDefaultModel } from '../../models/default-model.js';
import { FrameDecoder } from '../../src/codecs/index.js';
import { type Config, loadConfig } from '../../src/config.js';
import { engineOptions, pipelineDeps, slideOpener } from '../../src/domain-options.js';
import { EmbeddingEngine } from '../../src/embed/index.js';
import { isPathembedError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import {
  embedOnSession,
  embedPlan,
  isFailedPatch,
  openReadingSession,
  type PatchEmbedding,
  type PatchOutcome,
  type PipelineDeps,
  planSlide,
  runEmbeddingJob,
  type SlidePlan,
  type SlideSourceSpec,
} from '../../src/pipeline/index.js';
import { readResult, streamResult } from '../../src/results/index.js';
import { FrameCache } from '../../src/wsi/frame-cache.js';
import { buildPatchGrid } from '../../src/wsi/patch-grid.js';
import { framesForPatches, PatchReader } from '../../src/wsi/patch-reader.js';
import { computeTissueMask } from '../../src/wsi/tissue-mask.js';
import { maxAbsDiff } from '../helpers/compare.js';
import { fixture, services } from '../helpers/services.js';

// Small batches so that chunk boundaries and "within one batch" are meaningful on a few dozen patches.
const BATCH = 8;
const DIM = 384;
const TOLERANCE = 1e-4;

let dir: string;
let config: Config;
let engine: EmbeddingEngine;
let deps: PipelineDeps;
let spec: SlideSourceSpec;
let plan: SlidePlan;
let full: PatchEmbedding[];

/** Every outcome, each of which must be an embedding (no job here skips patches). */
async function collect(it: AsyncIterable<PatchOutcome>): Promise<PatchEmbedding[]> {
  const out: PatchEmbedding[] = [];
  for await (const e of it) {
    if (isFailedPatch(e)) throw new Error(`patch ${e.index} failed: ${e.failed.message}`);
    out.push(e);
  }
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-pipeline-'));
  config = loadConfig({
    PATHEMBED_INTRA_OP_THREADS: '2',
    PATHEMBED_EXECUTION_PROVIDER: 'cpu',
    PATHEMBED_BATCH_SIZE: String(BATCH),
    PATHEMBED_RETRY_MAX_ATTEMPTS: '1',
    PATHEMBED_RESULTS_DIR: dir,
  });
  const logger = createLogger('silent');
  await ensureDefaultModel(engineOptions(config), logger);
  engine = await EmbeddingEngine.open(engineOptions(config), logger);
  deps = pipelineDeps(config, logger, engine);
  const f = fixture('cmu-jpeg');
  spec = { kind: 'dicomweb', baseUrl: services().dicomWebUrl, studyUid: f.studyUid, seriesUid: f.seriesUid };
  plan = await planSlide(spec, {}, deps);
  full = await collect(embedPlan(plan, undefined, deps));
});

afterAll(async () => {
  await engine?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('pipeline over the harness Orthanc with the real model', () => {
  it('plans the tissue grid of the slide (a few dozen patches) as the wsi layer computes it', async () => {
    expect(plan.patches.length).toBeGreaterThan(10);
    expect(plan.patches.length).toBeLessThan(100);
    expect(plan.patchSelection).toBe('tissue-grid');
    expect(plan.level.index).toBe(0);
    expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
    // Independently: the grid the wsi layer gives for the same slide and defaults.
    const slide = await slideOpener(config).openSlide(spec);
    const decoder = new FrameDecoder({ decodeThreads: 1 });
    try {
      const reader = new PatchReader(new FrameCache(slide.source, decoder, { maxBytes: 64 << 20 }), {
        levelTolerance: config.PATHEMBED_LEVEL_TOLERANCE,
      });
      const mask = await computeTissueMask(reader, slide.pyramid.levels, {
        spacingUm: config.PATHEMBED_TISSUE_SPACING_UM,
      });
      const choice = reader.chooseLevel(slide.pyramid.levels, 0.5);
      const grid = buildPatchGrid(choice, mask, {
        pixelSpacingUm: 0.5,
        patchSizePx: 224,
        stridePx: config.PATHEMBED_STRIDE_PX,
        minTissue: config.PATHEMBED_MIN_TISSUE,
      });
      expect(plan.patches).toEqual(grid.patches);
    } finally {
      await slide.close();
      await decoder.close();
    }
  });

  it('embeds every planned patch once, in order, 384 finite numbers each', () => {
    expect(full.map((e) => e.index)).toEqual(plan.patches.map((p) => p.index));
    for (const e of full) {
      expect(e.embedding).toHaveLength(DIM);
      expect(e.embedding.every(Number.isFinite)).toBe(true);
    }
    // Not all the same: the patches differ, so must their embeddings.
    expect(maxAbsDiff(full[0].embedding, full[full.length - 1].embedding)).toBeGreaterThan(1e-3);
  });

  it("gives a patch the engine's embedding of the same patch read directly by the patch reader", async () => {
    const slide = await slideOpener(config).openSlide(spec);
    const decoder = new FrameDecoder({ decodeThreads: 1 });
    try {
      const reader = new PatchReader(new FrameCache(slide.source, decoder, { maxBytes: 64 << 20 }), {
        levelTolerance: config.PATHEMBED_LEVEL_TOLERANCE,
      });
      const picks = [0, Math.floor(full.length / 2), full.length - 1];
      const pixels = await Promise.all(
        picks.map(async (i) => {
          const p = plan.patches[i];
          const rgb = await reader.getPatch(
            slide.pyramid.levels,
            { x: p.x, y: p.y, width: 224, height: 224 },
            0.5,
          );
          return rgb.data;
        }),
      );
      const direct = await engine.embed(pixels);
      picks.forEach((i, k) => {
        expect(maxAbsDiff(full[i].embedding, direct[k])).toBeLessThan(TOLERANCE);
      });
    } finally {
      await slide.close();
      await decoder.close();
    }
  });

  it('runs chunks (patch ranges) that concatenate to the full run', async () => {
    const n = plan.patches.length;
    const cuts = [0, 5, BATCH + 5, n];
    const chunks: PatchEmbedding[] = [];
    for (let c = 0; c + 1 < cuts.length; c++) {
      chunks.push(...(await collect(embedPlan(plan, { start: cuts[c], end: cuts[c + 1] }, deps))));
    }
    expect(chunks.map((e) => e.index)).toEqual(full.map((e) => e.index));
    chunks.forEach((e, i) => {
      expect(maxAbsDiff(e.embedding, full[i].embedding)).toBeLessThan(TOLERANCE);
    });
    await expect(collect(embedPlan(plan, { start: 3, end: n + 1 }, deps))).rejects.toThrow(/not within/);
  });

  it('lets each frame go once the last patch of the range that needs it is read, embeddings unchanged', async () => {
    const end = 2 * BATCH + 3;
    const session = await openReadingSession(deps, spec, {});
    try {
      const held: number[] = [];
      const out: PatchEmbedding[] = [];
      for await (const e of embedOnSession(session, plan, { start: 0, end }, deps, {})) {
        if (isFailedPatch(e)) throw new Error(`patch ${e.index} failed: ${e.failed.message}`);
        out.push(e);
        held.push(session.cache.stats().cachedFrames);
      }
      expect(out.map((e) => e.index)).toEqual(full.slice(0, end).map((e) => e.index));
      out.forEach((e, i) => {
        expect(maxAbsDiff(e.embedding, full[i].embedding)).toBeLessThan(TOLERANCE);
      });
      const stats = session.cache.stats();
      // Every frame the range read was fetched once, and none is held once the range is done.
      expect(stats.framesFetched).toBe(
        framesForPatches({ level: plan.level, scale: plan.downsample }, plan.patches.slice(0, end)).length,
      );
      expect(stats.cachedFrames).toBe(0);
      expect(Math.max(...held)).toBeLessThan(stats.framesFetched);
    } finally {
      await session.close();
    }
  });

  it('stops within one batch when cancelled, with JOB_CANCELLED', async () => {
    const controller = new AbortController();
    let embedCalls = 0;
    let callsAtAbort = 0;
    const counting: PipelineDeps = {
      ...deps,
      engine: {
        manifest: engine.manifest,
        patchSize: engine.patchSize,
        embeddingWidth: engine.embeddingWidth,
        embed: (p) => {
          embedCalls++;
          return engine.embed(p);
        },
      },
    };
    const got: PatchOutcome[] = [];
    const err = await (async () => {
      for await (const e of embedPlan(plan, undefined, counting, { signal: controller.signal })) {
        got.push(e);
        if (got.length === 1) {
          controller.abort();
          callsAtAbort = embedCalls;
        }
      }
    })().catch((e) => e);
    expect(isPathembedError(err, 'JOB_CANCELLED'), String(err)).toBe(true);
    expect(got.length).toBeLessThanOrEqual(BATCH);
    expect(embedCalls).toBe(callsAtAbort);

    // Aborted while a batch is running: that batch is not reported, nothing after it runs.
    const during = new AbortController();
    const seen: PatchOutcome[] = [];
    const pending = (async () => {
      for await (const e of embedPlan(plan, undefined, deps, { signal: during.signal })) seen.push(e);
    })();
    setTimeout(() => during.abort(), 50);
    const err2 = await pending.catch((e) => e);
    expect(isPathembedError(err2, 'JOB_CANCELLED'), String(err2)).toBe(true);
    expect(seen.length).toBeLessThanOrEqual(BATCH);
  });

  it('fails with the frame’s own code, naming the frame, when a frame is not in the store (404)', async () => {
    const broken: PipelineDeps = {
      ...deps,
      slides: slideOpener(config, {
        decorateSource: (inner) => ({
          description: inner.description,
          stats: inner.stats,
          seriesMetadata: (signal) => inner.seriesMetadata(signal),
          // Frames of this instance are asked for under an instance UID the store does not have.
          fetchFrames: (uid, frames, signal) => inner.fetchFrames(`${uid}.404`, frames, signal),
        }),
      }),
    };
    const err = await collect(embedPlan(plan, { start: 0, end: 2 }, broken)).catch((e) => e);
    expect(isPathembedError(err, 'DICOMWEB_NOT_FOUND'), String(err)).toBe(true);
    const instanceUid = plan.level.instances[0].sopInstanceUid;
    expect(err.message).toContain(instanceUid);
    expect(err.message).toMatch(/frames? \d+/);
    expect(err.details).toMatchObject({ instanceUid, patchIndex: 0 });
    expect(Array.isArray(err.details.frameIndices)).toBe(true);
  });

  for (const encoding of ['float32-array', 'float32-base64'] as const) {
    it(`writes a JSON result the reader parses back (${encoding}), never holding the token`, async () => {
      const token = 'secret-token-d41d8cd98f00b204';
      const jsonPath = path.join(dir, `job-${encoding}.json`);
      const progress: number[] = [];
      const outcome = await runEmbeddingJob(spec, {}, { jsonPath, embeddingEncoding: encoding }, deps, {
        token,
        onProgress: (p) => progress.push(p.done),
      });
      const text = await readFile(jsonPath, 'utf8');
      expect(text).not.toContain(token);
      const doc = await readResult(jsonPath);
      expect(doc.header.embeddingEncoding).toBe(encoding);
      expect(doc.header.source).toMatchObject({
        kind: 'dicomweb',
        baseUrl: services().dicomWebUrl,
        seriesInstanceUid: plan.seriesInstanceUid,
      });
      expect(doc.header.model.sha256).toBe(engine.manifest.sha256);
      expect(doc.header.grid.coordinates).toBe('target-grid');
      expect(doc.patches.map((p) => p.index)).toEqual(full.map((e) => e.index));
      doc.patches.forEach((p, i) => {
        expect(p).toMatchObject({ x: plan.patches[i].x, y: plan.patches[i].y, width: 224, height: 224 });
        // The JSON holds float32 exactly, so it equals what the pipeline computed.
        expect(maxAbsDiff(p.embedding, full[i].embedding)).toBeLessThan(TOLERANCE);
      });
      expect(doc.summary.patchCount).toBe(plan.patches.length);
      expect(doc.summary.meanEmbedding).toHaveLength(DIM);
      expect(doc.summary.timings.inferMs).toBeGreaterThan(0);
      expect(doc.summary.timings.fetchMs).toBeGreaterThan(0);
      expect(outcome.summary.patchCount).toBe(plan.patches.length);
      expect(progress.at(-1)).toBe(plan.patches.length);
      const streamed = await streamResult(jsonPath);
      let count = 0;
      for await (const p of streamed.patches()) expect(p.index).toBe(doc.patches[count++].index);
      expect(count).toBe(doc.patches.length);
    });
  }

  it('reads a local folder like the store: same plan, same embeddings', async () => {
    const local: SlideSourceSpec = { kind: 'local', folder: fixture('cmu-jpeg').dir };
    const explicit = plan.patches.slice(0, 3).map((p) => ({ x: p.x, y: p.y }));
    const localPlan = await planSlide(local, { patches: explicit }, deps);
    expect(localPlan.patchSelection).toBe('explicit');
    expect(localPlan.patches.map((p) => [p.x, p.y])).toEqual(explicit.map((p) => [p.x, p.y]));
    const got = await collect(embedPlan(localPlan, undefined, deps));
    got.forEach((e, i) => {
      expect(maxAbsDiff(e.embedding, full[i].embedding)).toBeLessThan(TOLERANCE);
    });
  });
});
