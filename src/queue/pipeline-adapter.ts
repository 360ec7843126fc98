/**
 * Binds the queue's PipelinePort to the real layers: the pipeline (planSlide, embedPlan), the
 * results writers (JSON, SR) and, for /v1/predict, the slide model and patch reader. Frame sources
 * are opened per job with the job's own token (or the configured auth) and timed for /metrics.
 */
import { decodeThreadCount, FrameDecoder } from '../codecs/index.js';
import type { Config } from '../config.js';
import type { DicomJsonDataset } from '../dicom-json.js';
import { bearerAuth, DicomWebClient } from '../dicomweb/index.js';
import { PathembedError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  buildSrForPlan,
  checkRange,
  type EmbedOptions,
  EmbedRunStats,
  embedOnSession,
  openReadingSession,
  type PatchEmbedding,
  type PipelineDeps,
  type PipelineEngine,
  planOnSession,
  type SlidePlan,
  writeJsonResult,
} from '../pipeline/index.js';
import { streamSink } from '../results/result-sink.js';
import { stowSr } from '../results/sr/store-sr.js';
import { DicomWebFrameSource } from '../wsi/dicomweb-frame-source.js';
import { FrameCache } from '../wsi/frame-cache.js';
import type { FrameSource } from '../wsi/frame-source.js';
import { PatchReader } from '../wsi/patch-reader.js';
import { openSlide } from '../wsi/slide.js';
import type {
  JsonResultInfo,
  PipelinePort,
  PlannedSlide,
  PlanRange,
  RunContext,
  SrInfo,
  SrWritten,
  StageBusyMs,
} from './pipeline-port.js';
import type { PredictPatch } from './predict-jobs.js';
import type { DicomWebSourceSpec } from './queue-jobs.js';
import type { ResultUpload } from './result-store.js';
import type { FrameFetchRecorder } from './service-metrics.js';
import { TimedFrameSource } from './timed-frame-source.js';

const SOP_INSTANCE_UID_TAG = '00080018';
const PER_FRAME_GROUPS_TAG = '52009230';
const MICROSECONDS_PER_MS = 1000;

/** Timings are reported to the microsecond, as in a one-process run. */
function roundMs(ms: number): number {
  return Math.round(ms * MICROSECONDS_PER_MS) / MICROSECONDS_PER_MS;
}

/**
 * What a worker needs of a model: the pipeline's engine plus the provider it runs on (published for
 * /readyz) and a close. Both EmbeddingEngine and WorkerEmbeddingEngine (inference off the event
 * loop, so frame read-ahead keeps running during a batch) satisfy it.
 */
export type QueueEngine = PipelineEngine & { readonly provider: string; close(): Promise<void> };

export interface PipelineAdapterOptions {
  /** Frame fetch latencies go here (the worker's recorder); none: not timed. */
  readonly frames?: FrameFetchRecorder;
}

export class PipelineAdapter implements PipelinePort {
  readonly #decoder: FrameDecoder;
  readonly #deps: PipelineDeps;

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
    private readonly engine: QueueEngine,
    private readonly options: PipelineAdapterOptions = {},
  ) {
    // One decoder for every job of the process: its WASM worker pool is costly to start.
    this.#decoder = new FrameDecoder({ decodeThreads: decodeThreadCount(config.PATHEMBED_DECODE_THREADS) });
    this.#decoder.warmUp();
    this.#deps = {
      config,
      logger,
      engine,
      decoder: this.#decoder,
      openSource: (spec, context) => {
        if (spec.kind !== 'dicomweb') {
          throw new PathembedError(
            'INVALID_ARGUMENT',
            'Queue jobs read DICOMweb series only, not local folders',
          );
        }
        return this.openSource(spec, context);
      },
    };
  }

  async plan(source: DicomWebSourceSpec, options: EmbedOptions, run: RunContext): Promise<PlannedSlide> {
    const ctx = { token: run.token, signal: run.signal };
    const session = await openReadingSession(this.#deps, source, ctx);
    try {
      const { plan, metadata } = await planOnSession(session, source, options, this.#deps, ctx);
      const wanted = new Set([
        plan.baseLevel.sopInstanceUid,
        ...plan.level.instances.map((i) => i.sopInstanceUid),
      ]);
      const kept = metadata
        .filter((ds) => wanted.has(String(ds[SOP_INSTANCE_UID_TAG]?.Value?.[0])))
        .map((ds) => {
          // Per-frame groups can be megabytes on sparse slides; the SR needs none of them.
          const { [PER_FRAME_GROUPS_TAG]: _dropped, ...rest } = ds;
          return rest as DicomJsonDataset;
        });
      return { plan, metadata: kept };
    } finally {
      await session.close();
    }
  }

  /** As the pipeline's embedPlan, keeping the session's and the run's stage clocks for `stageMs`. */
  async *embed(
    plan: SlidePlan,
    range: PlanRange,
    run: RunContext,
    stageMs?: StageBusyMs,
  ): AsyncGenerator<PatchEmbedding> {
    checkRange(range, plan.patches.length);
    const ctx = { token: run.token, signal: run.signal };
    const session = await openReadingSession(this.#deps, plan.source, ctx);
    const stats = new EmbedRunStats();
    try {
      yield* embedOnSession(session, plan, range, this.#deps, ctx, stats);
    } finally {
      if (stageMs) {
        stageMs.fetchMs = session.fetchClock.ms;
        stageMs.decodeMs = session.decodeClock.ms;
        stageMs.inferMs = stats.inferClock.ms;
      }
      await session.close();
    }
  }

  get manifest() {
    return this.engine.manifest;
  }

  get executionProvider(): string {
    return this.engine.provider;
  }

  /** A frame source for a job: its token when it has one, else the configured auth. */
  openSource(spec: DicomWebSourceSpec, run: Pick<RunContext, 'token'>): FrameSource {
    const client = DicomWebClient.fromConfig(this.config, {
      logger: this.logger,
      ...(run.token !== undefined ? { auth: bearerAuth(run.token) } : {}),
    });
    const source = new DicomWebFrameSource(client, spec);
    return this.options.frames ? new TimedFrameSource(source, this.options.frames) : source;
  }

  async writeJson(
    plan: SlidePlan,
    embeddings: AsyncIterable<PatchEmbedding>,
    upload: ResultUpload,
    info: JsonResultInfo,
  ): Promise<void> {
    const { manifest } = this.engine;
    await writeJsonResult(
      plan,
      embeddings,
      streamSink({ ...upload, description: `result of ${info.jobId}` }),
      {
        model: { name: manifest.name, version: manifest.version, sha256: manifest.sha256 },
        batchSize: this.config.PATHEMBED_BATCH_SIZE,
        embeddingWidth: this.engine.embeddingWidth,
        // Read once every embedding is written. fetch, decode and infer are sums of busy time
        // over the chunk jobs (which may run on several workers at once), so they can exceed
        // totalMs; the job record keeps the wall-clock times of the job's phases.
        timings: () => {
          const stages = info.stageMs?.() ?? { fetchMs: 0, decodeMs: 0, inferMs: 0 };
          return {
            planMs: Math.max(0, info.plannedAt - info.startedAt),
            fetchMs: roundMs(stages.fetchMs),
            decodeMs: roundMs(stages.decodeMs),
            inferMs: roundMs(stages.inferMs),
            totalMs: Math.max(0, Date.now() - info.startedAt),
          };
        },
      },
    );
  }

  async writeSr(
    planned: PlannedSlide,
    embeddings: AsyncIterable<PatchEmbedding>,
    upload: ResultUpload,
    info: SrInfo,
    run: RunContext,
  ): Promise<SrWritten> {
    const { manifest } = this.engine;
    const { plan } = planned;
    const { bytes, sr } = await buildSrForPlan(plan, planned.metadata, embeddings, {
      model: { name: manifest.name, version: manifest.version, sha256: manifest.sha256 },
      embeddingWidth: this.engine.embeddingWidth,
      maxPatches: this.config.PATHEMBED_SR_MAX_PATCHES,
      jsonResultName: info.jsonResultName,
    });
    upload.stream.end(bytes);
    await upload.commit();
    if (info.stowTo) {
      // The job's token is for its source store: it goes to the SR destination only when that
      // is the same store, never to another host.
      const sameStore =
        plan.source.kind === 'dicomweb' &&
        new URL(plan.source.baseUrl).origin === new URL(info.stowTo).origin;
      const client = DicomWebClient.fromConfig(this.config, {
        logger: this.logger,
        ...(sameStore && run.token !== undefined ? { auth: bearerAuth(run.token) } : {}),
      });
      await stowSr(client, bytes, sr.sopInstanceUid, info.stowTo, run.signal);
    }
    return {
      studyUid: sr.studyInstanceUid,
      seriesUid: sr.seriesInstanceUid,
      sopInstanceUid: sr.sopInstanceUid,
    };
  }

  async readDicomPatches(
    spec: DicomWebSourceSpec,
    patches: readonly PredictPatch[],
    requireInside: boolean,
    run: RunContext,
  ): Promise<Uint8Array[]> {
    const slide = await openSlide(this.openSource(spec, run), run.signal);
    try {
      const levels = slide.pyramid.levels;
      const wanted = spec.instanceUids;
      // The coordinates refer to the level holding the named instances (Path Foundation's
      // instance_uids); without them, to the finest level.
      const level = wanted
        ? levels.find((l) => l.instances.some((i) => wanted.includes(i.sopInstanceUid)))
        : levels[0];
      if (!level) {
        throw new PathembedError(
          'NO_MATCHING_LEVEL',
          `None of the instances ${wanted?.join(', ')} is a pyramid level of ${slide.source.description}`,
          { instanceUids: wanted },
        );
      }
      const cache = new FrameCache(slide.source, this.#decoder, {
        maxBytes: this.config.PATHEMBED_FRAME_CACHE_BYTES,
      });
      const reader = new PatchReader(cache, { levelTolerance: this.config.PATHEMBED_LEVEL_TOLERANCE });
      const out: Uint8Array[] = [];
      for (const p of patches) {
        const rgb = await reader.readRegion(level, p.x, p.y, p.width, p.height, {
          requireInside,
          signal: run.signal,
        });
        out.push(rgb.data);
      }
      return out;
    } finally {
      await slide.close();
    }
  }

  embedPixels(patches: readonly Uint8Array[]): Promise<Float32Array[]> {
    return this.engine.embed(patches);
  }

  async close(): Promise<void> {
    await this.#decoder.close();
    await this.engine.close();
  }
}

export function createPipelinePort(
  config: Config,
  logger: Logger,
  engine: QueueEngine,
  options: PipelineAdapterOptions = {},
): PipelinePort {
  return new PipelineAdapter(config, logger, engine, options);
}
