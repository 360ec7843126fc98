/**
 * A FrameSource wrapper that times every frame fetch into the worker's latency histogram, so
 * /metrics shows how the stores answer without the DICOMweb layer knowing about metrics.
 */
import { type EncodedFrame, ForwardingFrameSource, type FrameSource } from '../wsi/frame-source.js';
import type { FrameFetchRecorder } from './service-metrics.js';

const MS_PER_S = 1000;

export class TimedFrameSource extends ForwardingFrameSource {
  constructor(
    inner: FrameSource,
    private readonly recorder: FrameFetchRecorder,
  ) {
    super(inner);
  }

  override async fetchFrames(
    instanceUid: string,
    frameIndices: readonly number[],
    signal?: AbortSignal,
  ): Promise<EncodedFrame[]> {
    const started = performance.now();
    try {
      return await this.inner.fetchFrames(instanceUid, frameIndices, signal);
    } finally {
      this.recorder.observe((performance.now() - started) / MS_PER_S);
    }
  }
}
