/**
 * What the pipeline is given rather than builds: configuration, logger, the embedding engine and
 * a way to open a slide's frame source. The CLI, the queue workers and the tests inject real
 * parts (or instrumented ones), and the pipeline never imports Express, BullMQ or Redis.
 */
import type { FrameDecoder } from '../codecs/index.js';
import type { Config } from '../config.js';
import { bearerAuth, DicomWebClient } from '../dicomweb/index.js';
import type { ModelManifest } from '../embed/index.js';
import type { Logger } from '../log.js';
import type { StowClient } from '../results/sr/store-sr.js';
import { DicomWebFrameSource } from '../wsi/dicomweb-frame-source.js';
import type { FrameSource } from '../wsi/frame-source.js';
import { openLocalFrameSource } from '../wsi/local-frame-source.js';
import type { JobProgress, SlideSourceSpec } from './job-types.js';

export interface OpenSourceContext {
  /** Bearer token for the store; never stored, logged or written to a result. */
  readonly token?: string;
  readonly signal?: AbortSignal;
}

export type OpenSource = (
  spec: SlideSourceSpec,
  context: OpenSourceContext,
) => FrameSource | Promise<FrameSource>;

/**
 * The engine as the pipeline uses it: an EmbeddingEngine, a WorkerEmbeddingEngine (the same in a
 * worker thread, so inference does not block reading), or a stand-in in tests.
 */
export interface PipelineEngine {
  readonly manifest: ModelManifest;
  /** Side of the square patches `embed` takes, in pixels. */
  readonly patchSize: number;
  /** Floats per embedding. */
  readonly embeddingWidth: number;
  /** One embedding per patch (RGB uint8, patchSize² x 3), in order. */
  embed(patches: readonly Uint8Array[]): Promise<Float32Array[]>;
}

export interface PipelineDeps {
  readonly config: Config;
  readonly logger: Logger;
  readonly engine: PipelineEngine;
  readonly openSource: OpenSource;
  /**
   * A frame decoder to share across jobs (its WASM worker pool is costly to start). Default: one
   * per call, closed at its end.
   */
  readonly decoder?: FrameDecoder;
  /**
   * The STOW-RS client for an SR destination. Default: a DicomWebClient from `config`, with the
   * job's token when the destination is the store the slide came from.
   */
  readonly stowClient?: (destination: string, context: OpenSourceContext) => StowClient;
}

export interface RunContext {
  /** Bearer token for the source store (and the SR destination when it is the same store). */
  readonly token?: string;
  /** Cancels the job: the pipeline stops within one batch with JOB_CANCELLED. */
  readonly signal?: AbortSignal;
  /** Called after every batch. */
  readonly onProgress?: (progress: JobProgress) => void;
}

/**
 * The usual `openSource`: a local folder, or a DICOMweb series through a client configured from
 * `config` (allow-list, retries, per-store limits) with the job's token when it has one.
 */
export function defaultOpenSource(config: Config, logger?: Logger): OpenSource {
  return (spec, context) => {
    if (spec.kind === 'local') return openLocalFrameSource(spec.folder);
    const client = DicomWebClient.fromConfig(config, {
      ...(logger ? { logger } : {}),
      ...(context.token !== undefined ? { auth: bearerAuth(context.token) } : {}),
    });
    return new DicomWebFrameSource(client, spec);
  };
}
