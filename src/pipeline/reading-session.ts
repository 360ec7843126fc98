/**
 * One job's way of reading a slide: a SlideOpener reader (opened with the job's token) with the
 * fetch and decode stages timed and failures naming their frame. Planning and embedding in one
 * process share a session, so the frames the tissue mask read are not fetched again and the
 * source is opened once.
 */
import type { FrameCache } from '../wsi/frame-cache.js';
import type { FrameSource } from '../wsi/frame-source.js';
import type { PatchReader } from '../wsi/patch-reader.js';
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
  deps: Pick<PipelineDeps, 'slides'>,
  spec: SlideSourceSpec,
  ctx: RunContext,
): Promise<ReadingSession> {
  const fetchClock = new StageClock();
  const decodeClock = new StageClock();
  const origins = new FrameOrigins();
  const opened = await deps.slides.openReader(
    spec,
    { token: ctx.token, signal: ctx.signal },
    {
      source: (inner) => new InstrumentedFrameSource(inner, fetchClock, origins),
      decoder: (decoder) => instrumentedDecoder(decoder, decodeClock, origins),
    },
  );
  return { ...opened, fetchClock, decodeClock };
}
