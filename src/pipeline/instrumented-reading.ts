/**
 * Wrappers around a job's frame source and frame decoder that (1) time the fetch and decode
 * stages and (2) make a failed frame name itself: the code stays what the source or codec said
 * (DICOMWEB_NOT_FOUND, FRAME_DECODE_ERROR, …) so the queue still knows whether to retry, and the
 * message and details gain the instance and 0-based frame index the job was reading.
 */
import type { FrameDecoder, FrameDescription, RgbFrame } from '../codecs/index.js';
import { isPathembedError, PathembedError } from '../errors.js';
import { type EncodedFrame, ForwardingFrameSource, type FrameSource } from '../wsi/frame-source.js';
import type { StageClock } from './stage-clock.js';

/** Frame indices listed in a message before it says "…". */
const LISTED_FRAMES = 10;

interface FrameIdentity {
  readonly instanceUid: string;
  readonly frameIndex: number;
}

function frameList(indices: readonly number[]): string {
  const shown = indices.slice(0, LISTED_FRAMES).join(', ');
  return indices.length > LISTED_FRAMES ? `${shown}, … (${indices.length} frames)` : shown;
}

/** The error with the frame it was about; aborts pass through untouched. */
function aboutFrames(
  err: unknown,
  instanceUid: string,
  frameIndices: readonly number[],
  what: string,
): unknown {
  if (!isPathembedError(err)) return err;
  if (err.details.instanceUid !== undefined && err.details.frameIndices !== undefined) return err;
  const frames = frameIndices.length === 1 ? `frame ${frameIndices[0]}` : `frames ${frameList(frameIndices)}`;
  return new PathembedError(
    err.code,
    `${err.message} (${what} ${frames} (0-based) of instance ${instanceUid})`,
    { ...err.details, instanceUid, frameIndices: [...frameIndices] },
    { cause: err },
  );
}

/** Where decoded frames came from, so a decode failure can name its frame. */
export class FrameOrigins {
  private readonly origins = new WeakMap<Uint8Array, FrameIdentity>();

  note(data: Uint8Array, identity: FrameIdentity): void {
    this.origins.set(data, identity);
  }

  of(data: Uint8Array): FrameIdentity | undefined {
    return this.origins.get(data);
  }
}

export class InstrumentedFrameSource extends ForwardingFrameSource {
  constructor(
    inner: FrameSource,
    private readonly clock: StageClock,
    private readonly origins: FrameOrigins,
  ) {
    super(inner);
  }

  override async fetchFrames(
    instanceUid: string,
    frameIndices: readonly number[],
    signal?: AbortSignal,
  ): Promise<EncodedFrame[]> {
    let frames: EncodedFrame[];
    try {
      frames = await this.clock.time(() => this.inner.fetchFrames(instanceUid, frameIndices, signal));
    } catch (err) {
      throw aboutFrames(err, instanceUid, frameIndices, 'fetching');
    }
    frames.forEach((f, i) => {
      // fetchFrames answers one frame per index asked, in order.
      this.origins.note(f.data, { instanceUid, frameIndex: frameIndices[i]! });
    });
    return frames;
  }
}

/** The decoder's `decode`, timed, naming the frame when it fails. */
export function instrumentedDecoder(
  decoder: Pick<FrameDecoder, 'decode'>,
  clock: StageClock,
  origins: FrameOrigins,
): Pick<FrameDecoder, 'decode'> {
  return {
    async decode(encoded: Uint8Array, transferSyntaxUid: string, desc: FrameDescription): Promise<RgbFrame> {
      try {
        return await clock.time(() => decoder.decode(encoded, transferSyntaxUid, desc));
      } catch (err) {
        const origin = origins.of(encoded);
        throw origin ? aboutFrames(err, origin.instanceUid, [origin.frameIndex], 'decoding') : err;
      }
    },
  };
}
