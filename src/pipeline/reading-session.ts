/**
 * One job's way of reading a slide: its frame source (opened with the job's token), a decoded-
 * frame cache and a patch reader over it, with the fetch and decode stages timed and failures
 * naming their frame. Planning and embedding in one process share a session, so the frames the
 * tissue mask read are not fetched again and the source is opened once.
 */
import { decodeThreadCount, FrameDecoder } from '../codecs/index.js';
import { FrameCache } from '../wsi/frame-cache.js';
import type { FrameSource } from '../wsi/frame-source.js';
import { PatchReader } from '../wsi/patch-reader.js';
import { FrameOrigins, InstrumentedFrameSource, instrumentedDecoder } from './instrumented-reading.js';
import type { SlideSourceSpec } from './job-types.js';
import type { PipelineDeps, RunContext } from './pipeline-deps.js';
import { StageClock } from './stage-clock.js';

export interface ReadingSession {
  readonly source: FrameSource;
  readonly cache: FrameCache;
  readonly reader: PatchReader;
  readonly fetchClock: StageClock;
  readonly decodeClock: StageClock;
  close(): Promise<void>;
}

export async function openReadingSession(
  deps: PipelineDeps,
  spec: SlideSourceSpec,
  ctx: RunContext,
): Promise<ReadingSession> {
  // The decoder's workers start while the slide's metadata is read.
  const ownDecoder = deps.decoder
    ? undefined
    : new FrameDecoder({ decodeThreads: decodeThreadCount(deps.config.PATHEMBED_DECODE_THREADS) });
  (deps.decoder ?? ownDecoder)?.warmUp();
  let inner: Awaited<ReturnType<PipelineDeps['openSource']>>;
  try {
    inner = await deps.openSource(spec, { token: ctx.token, signal: ctx.signal });
  } catch (err) {
    await ownDecoder?.close();
    throw err;
  }
  const fetchClock = new StageClock();
  const decodeClock = new StageClock();
  const origins = new FrameOrigins();
  const decoder = instrumentedDecoder((deps.decoder ?? ownDecoder)!, decodeClock, origins);
  const source = new InstrumentedFrameSource(inner, fetchClock, origins);
  const cache = new FrameCache(source, decoder, { maxBytes: deps.config.PATHEMBED_FRAME_CACHE_BYTES });
  const reader = new PatchReader(cache, { levelTolerance: deps.config.PATHEMBED_LEVEL_TOLERANCE });
  return {
    source,
    cache,
    reader,
    fetchClock,
    decodeClock,
    async close() {
      cache.clear();
      await source.close();
      await ownDecoder?.close();
    },
  };
}
