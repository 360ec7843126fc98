/**
 * Binds the queue's PipelinePort to the real layers: the pipeline (planSlide, embedPlan), the
 * results writers (JSON, HDF5, Parquet, bulk annotations, SR) and, for /v1/predict, the slide model and patch reader. Frame sources
 * are opened per job with the job's own token (or the configured auth) and timed for /metrics.
 */
import { once } from 'node:events';
import { FrameDecoder } from '../codecs/index.js';
import type { Config } from '../config.js';
import { type DicomJsonDataset, str } from '../dicom-json.js';
import { Tag } from '../dicom-tags.js';
import { frameDecoderOptions, pipelineDeps, slideOpener } from '../domain-options.js';
import { PathembedError } from '../errors.js';
import type { RectPx } from '../geometry.js';
import type { Logger } from '../log.js';
import {
  buildAnnForPlan,
  buildSrForPlan,
  checkRange,
  type EmbedOptions,
  EmbedRunStats,
  embedOnSession,
  openReadingSession,
  type PatchFileKind,
  type PatchOutcome,
  type PipelineDeps,
  type PipelineEngine,
  planOnSession,
  resultHeaderFor,
  type SlidePlan,
  writeJsonResult,
  writePatchFile,
} from '../pipeline/index.js';
import type { ResultHeaderInput } from '../results/index.js';
import { streamSink } from '../results/result-sink.js';
import { stowSr } from '../results/sr/store-sr.js';
import type { FrameSource } from '../wsi/frame-source.js';
import {
  type IccProfileName,
  type IccTransforms,
  iccProfileOf,
  type RgbTransform,
  sharedIccTransforms,
  transformingDecoder,
} from '../wsi/icc-transform.js';
import { readPatchList } from '../wsi/patch-list.js';
import { levelForResize } from '../wsi/resized-level.js';
import type { Slide } from '../wsi/slide.js';
import type { SlideLevel } from '../wsi/slide-level.js';
import type { SlideOpener } from '../wsi/slide-opener.js';
import type {
  AnnInfo,
  AnnWritten,
  DicomPatchOptions,
  JsonResultInfo,
  PipelinePort,
  PlannedSlide,
  PlanRange,
  RunContext,
  SrInfo,
  SrWritten,
  StageBusyMs,
} from './pipeline-port.js';
import type { DicomWebSourceSpec } from './queue-jobs.js';
import type { ResultUpload } from './result-store.js';
import type { FrameFetchRecorder } from './service-metrics.js';
import { TimedFrameSource } from './timed-frame-source.js';

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
  readonly #slides: SlideOpener;
  readonly #icc: IccTransforms;

  constructor(
    readonly config: Config,
    readonly logger: Logger,
    private readonly engine: QueueEngine,
    private readonly options: PipelineAdapterOptions = {},
  ) {
    // One decoder for every job of the process: its WASM worker pool is costly to start.
    this.#decoder = new FrameDecoder(frameDecoderOptions(config));
    // Its workers start now, not on the first job's first frame.
    this.#decoder.warmUp();
    const unavailable = this.#decoder.nativeJpegUnavailable;
    if (unavailable) logger.warn({ reason: unavailable }, 'JPEG frames decode with the slower WASM build');
    else logger.info({ jpegDecoder: this.#decoder.jpegDecoder }, 'frame decoder ready');
    // The same profile cache as the pipeline's job transforms, so each profile is read once a process.
    this.#icc = sharedIccTransforms(config.PATHEMBED_ICC_PROFILE_DIR);
    const { frames } = options;
    this.#slides = slideOpener(config, {
      logger,
      allowLocal: false,
      decoder: this.#decoder,
      ...(frames ? { decorateSource: (source: FrameSource) => new TimedFrameSource(source, frames) } : {}),
    });
    this.#deps = pipelineDeps(config, logger, engine, this.#slides);
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
        .filter((ds) => wanted.has(String(ds[Tag.SOPInstanceUID]?.Value?.[0])))
        .map((ds) => {
          // Per-frame groups can be megabytes on sparse slides; the SR needs none of them.
          const { [Tag.PerFrameFunctionalGroupsSequence]: _dropped, ...rest } = ds;
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
  ): AsyncGenerator<PatchOutcome> {
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

  resultHeader(plan: SlidePlan): ResultHeaderInput {
    const { manifest } = this.engine;
    return resultHeaderFor(plan, {
      model: { name: manifest.name, version: manifest.version, sha256: manifest.sha256 },
      batchSize: this.#deps.options.batchSize,
      embeddingWidth: this.engine.embeddingWidth,
    });
  }

  async writeJson(
    plan: SlidePlan,
    embeddings: AsyncIterable<PatchOutcome>,
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
        batchSize: this.#deps.options.batchSize,
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

  async writePatchFile(
    kind: PatchFileKind,
    plan: SlidePlan,
    embeddings: AsyncIterable<PatchOutcome>,
    upload: ResultUpload,
    info: { readonly jobId: string },
  ): Promise<{ readonly patchCount: number; readonly bytes: number }> {
    const { manifest } = this.engine;
    return writePatchFile(
      kind,
      plan,
      embeddings,
      streamSink({ ...upload, description: `${kind} result of ${info.jobId}` }),
      {
        model: { name: manifest.name, version: manifest.version, sha256: manifest.sha256 },
        batchSize: this.#deps.options.batchSize,
        embeddingWidth: this.engine.embeddingWidth,
      },
    );
  }

  async writeSr(
    planned: PlannedSlide,
    embeddings: AsyncIterable<PatchOutcome>,
    upload: ResultUpload,
    info: SrInfo,
    run: RunContext,
  ): Promise<SrWritten> {
    const { manifest } = this.engine;
    const { plan } = planned;
    const ann = info.bulkAnnotations;
    const { bytes, sr } = await buildSrForPlan(plan, planned.metadata, embeddings, {
      model: { name: manifest.name, version: manifest.version, sha256: manifest.sha256 },
      embeddingWidth: this.engine.embeddingWidth,
      maxPatches: this.#deps.options.srMaxPatches,
      jsonResultName: info.jsonResultName,
      ...(ann
        ? {
            bulkAnnotations: {
              seriesInstanceUid: ann.seriesUid,
              sopInstanceUid: ann.sopInstanceUid,
              annotationCount: ann.annotationCount,
              includesEmbedding: ann.includesEmbedding,
            },
          }
        : {}),
    });
    upload.stream.end(bytes);
    await upload.commit();
    if (info.stowTo) {
      // The job's token is for its source store: mayForwardToken decides whether it goes along.
      const client = this.#slides.stowClient(plan.source, info.stowTo, run);
      await stowSr(client, bytes, sr.sopInstanceUid, info.stowTo, run.signal);
    }
    return {
      studyUid: sr.studyInstanceUid,
      seriesUid: sr.seriesInstanceUid,
      sopInstanceUid: sr.sopInstanceUid,
    };
  }

  async writeAnn(
    planned: PlannedSlide,
    embeddings: () => AsyncIterable<PatchOutcome>,
    upload: ResultUpload,
    info: AnnInfo,
    run: RunContext,
  ): Promise<AnnWritten> {
    const { manifest } = this.engine;
    const { plan } = planned;
    const { parts, ann } = await buildAnnForPlan(plan, planned.metadata, embeddings, {
      model: { name: manifest.name, version: manifest.version, sha256: manifest.sha256 },
      embeddingWidth: this.engine.embeddingWidth,
      includeEmbedding: info.includeEmbedding,
    });
    // Part by part, honouring backpressure: the columns are never copied into one buffer here.
    for (const part of parts) {
      if (!upload.stream.write(part)) await once(upload.stream, 'drain');
    }
    await upload.commit();
    if (info.stowTo) {
      const client = this.#slides.stowClient(plan.source, info.stowTo, run);
      await stowSr(
        client,
        Buffer.concat(parts),
        ann.sopInstanceUid,
        info.stowTo,
        run.signal,
        'the bulk annotations',
      );
    }
    return {
      studyUid: ann.studyInstanceUid,
      seriesUid: ann.seriesInstanceUid,
      sopInstanceUid: ann.sopInstanceUid,
      annotationCount: ann.annotationCount,
      includesEmbedding: info.includeEmbedding,
    };
  }

  async readDicomPatches(
    spec: DicomWebSourceSpec,
    patches: readonly RectPx[],
    requireInside: boolean,
    run: RunContext,
    options: DicomPatchOptions = {},
  ): Promise<Uint8Array[]> {
    const slide = await this.#slides.openSlide(spec, run);
    try {
      const levels = slide.pyramid.levels;
      const wanted = spec.instanceUids;
      // The coordinates refer to the level holding the named instances (Path Foundation's
      // instance_uids); without them, to the finest level. Instances of two levels name no one
      // coordinate space, which Google refuses too.
      const named = wanted
        ? levels.filter((l) => l.instances.some((i) => wanted.includes(i.sopInstanceUid)))
        : levels.slice(0, 1);
      if (named.length > 1) {
        throw new PathembedError(
          'INSTANCES_NOT_CONCATENATED',
          `The instances ${wanted?.join(', ')} belong to ${named.length} pyramid levels (${named.map((l) => l.index).join(', ')}) of ${slide.source.description}; name the instances of one level per dicom_path.`,
          { instanceUids: wanted, levels: named.map((l) => l.index) },
        );
      }
      const level = named[0];
      if (!level) {
        throw new PathembedError(
          'NO_MATCHING_LEVEL',
          `None of the instances ${wanted?.join(', ')} is a pyramid level of ${slide.source.description}`,
          { instanceUids: wanted },
        );
      }
      const size = options.resize
        ? { widthPx: options.resize.width, heightPx: options.resize.height }
        : undefined;
      // The resize may need a finer level than the named one, which the source restricted to the
      // named instances does not hold: then the whole series is opened.
      let readFrom = level;
      let reading = slide;
      if (size) {
        const needsFiner = size.widthPx > level.widthPx || size.heightPx > level.heightPx;
        if (needsFiner && wanted) {
          const { instanceUids: _named, ...series } = spec;
          reading = await this.#slides.openSlide(series, run);
        }
        readFrom = levelForResize(reading.pyramid.levels, level, size);
      }
      try {
        const transform = options.icc
          ? await this.#slideIccTransform(reading, readFrom, options.icc, run.signal)
          : undefined;
        // The reader's source is the slide's: the slides below close it.
        const { reader } = this.#slides.readerOver(reading.source, {
          ...(transform ? { decoder: (decoder) => transformingDecoder(decoder, transform) } : {}),
        });
        return await readPatchList(reader, size ? readFrom : level, patches, {
          ...(size ? { size } : {}),
          requireInside,
          signal: run.signal,
        });
      } finally {
        if (reading !== slide) await reading.close();
      }
    } finally {
      await slide.close();
    }
  }

  /**
   * The transform from the ICC profile of `level`'s instance to `target`, or undefined when the
   * slide has none (its pixels are then embedded as stored, as Google's server does).
   */
  async #slideIccTransform(
    slide: Slide,
    level: SlideLevel,
    target: IccProfileName,
    signal: AbortSignal,
  ): Promise<RgbTransform | undefined> {
    const uid = level.instances[0]?.sopInstanceUid;
    const ds = (await slide.source.seriesMetadata(signal)).find((d) => str(d, Tag.SOPInstanceUID) === uid);
    const where = ds ? iccProfileOf(ds) : undefined;
    if (!where) return undefined;
    let profile: Uint8Array;
    if ('inline' in where) profile = where.inline;
    else if (slide.source.fetchBulkData)
      profile = await slide.source.fetchBulkData(where.bulkDataUri, signal);
    else
      throw new PathembedError(
        'ICC_TRANSFORM_FAILED',
        `${slide.source.description} cannot fetch its ICC profile`,
      );
    return this.#icc.transform(profile, target);
  }

  /** Transforms RGB pixels from `profile` (ICC bytes) to `target`. */
  iccTransform(profile: Uint8Array, target: IccProfileName): Promise<RgbTransform> {
    return this.#icc.transform(profile, target);
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
