/**
 * The result view's backend in the service: a job's slide is read from the job's own DICOMweb
 * store through a SlideOpener (allow-list checked by the client, the service's store auth, never a
 * local folder), and its overlay from the JSON result in the result store. A job's per-job store
 * token is not kept after the job (docs/api.md), so slides of stores that need one are viewable
 * only when the service's own auth (PATHEMBED_AUTH) reaches them (docs/ui.md).
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { FrameDecoder } from '../codecs/index.js';
import type { Config } from '../config.js';
import { formatSeriesUrl } from '../dicomweb/index.js';
import { frameDecoderOptions, slideOpener } from '../domain-options.js';
import { PathembedError } from '../errors.js';
import type { Logger } from '../log.js';
import type { JobSubmitter } from '../queue/job-submitter.js';
import type { QueueContext } from '../queue/queue-context.js';
import { LocalResultStore, resultKeys } from '../queue/result-store.js';
import { buildPatchOverlay, type PatchOverlay } from '../results/patch-overlay.js';
import { streamResult } from '../results/result-reader.js';
import { SlideCache } from '../ui/slide-cache.js';
import type { SlideLease, ViewerBackend } from '../ui/viewer-backend.js';
import type { SlideOpener } from '../wsi/slide-opener.js';

/** Overlays kept in memory (a few MB each for large slides). */
const OVERLAY_CACHE_ENTRIES = 8;

export class StoreViewerBackend implements ViewerBackend {
  readonly #slides: SlideCache;
  readonly #overlays = new Map<string, Promise<PatchOverlay>>();
  readonly #decoder: FrameDecoder;
  readonly #opener: SlideOpener;

  constructor(
    config: Config,
    private readonly ctx: QueueContext,
    private readonly submitter: JobSubmitter,
    logger: Logger,
  ) {
    this.#slides = new SlideCache(config.PATHEMBED_UI_OPEN_SLIDES);
    this.#decoder = new FrameDecoder({ ...frameDecoderOptions(config), decodeThreads: 1 });
    // The viewer's open slides share one frame budget.
    const frameCacheBytes = Math.floor(config.PATHEMBED_FRAME_CACHE_BYTES / config.PATHEMBED_UI_OPEN_SLIDES);
    this.#opener = slideOpener(
      { ...config, PATHEMBED_FRAME_CACHE_BYTES: frameCacheBytes },
      { logger, allowLocal: false, decoder: this.#decoder },
    );
  }

  async openSlide(jobId: string, keyId: string): Promise<SlideLease> {
    const record = await this.submitter.get(jobId, keyId);
    const spec = { ...record.source, kind: 'dicomweb' as const };
    return this.#slides.lease(formatSeriesUrl(record.source), () => this.#opener.openSlideReader(spec));
  }

  async overlay(jobId: string, keyId: string): Promise<PatchOverlay> {
    const record = await this.submitter.get(jobId, keyId);
    if (record.state !== 'completed' || !record.result?.json) {
      throw new PathembedError(
        'NOT_FOUND',
        `Job ${jobId} has no JSON result to draw (state ${record.state})`,
        {
          jobId,
          state: record.state,
        },
      );
    }
    let cached = this.#overlays.get(jobId);
    if (!cached) {
      cached = this.#buildOverlay(jobId);
      this.#overlays.set(jobId, cached);
      const mine = cached;
      // Forget a failed build, but not a newer one that replaced it after an eviction.
      mine.catch(() => {
        if (this.#overlays.get(jobId) === mine) this.#overlays.delete(jobId);
      });
      while (this.#overlays.size > OVERLAY_CACHE_ENTRIES) {
        this.#overlays.delete(this.#overlays.keys().next().value as string);
      }
    }
    return cached;
  }

  /** Reads the result twice from a local path: the store's own file, or a temporary copy of it. */
  async #buildOverlay(jobId: string): Promise<PatchOverlay> {
    const key = resultKeys.json(jobId);
    const store = this.ctx.results;
    if (store instanceof LocalResultStore) {
      const file = store.localPath(key);
      return buildPatchOverlay(() => streamResult(file));
    }
    const tmp = path.join(os.tmpdir(), `pathembed-overlay-${randomUUID()}.json`);
    try {
      const input = await store.openRead(key);
      if (!input) throw new PathembedError('NOT_FOUND', `The stored result ${key} is missing`);
      await pipeline(input, (await fs.open(tmp, 'w')).createWriteStream());
      return await buildPatchOverlay(() => streamResult(tmp));
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  async close(): Promise<void> {
    await this.#slides.close();
    await this.#decoder.close();
  }
}
