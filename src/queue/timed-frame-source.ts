/**
 * A FrameSource wrapper that times every frame fetch into the worker's latency histogram, so
 * /metrics shows how the stores answer without the DICOMweb layer knowing about metrics.
 */
import type { DicomJsonDataset } from '../dicom-json.js';
import type { EncodedFrame, FrameSource, FrameSourceStats } from '../wsi/frame-source.js';
import type { FrameFetchRecorder } from './service-metrics.js';

const MS_PER_S = 1000;

export class TimedFrameSource implements FrameSource {
  constructor(
    private readonly inner: FrameSource,
    private readonly recorder: FrameFetchRecorder,
  ) {}

  get description(): string {
    return this.inner.description;
  }

  get stats(): FrameSourceStats {
    return this.inner.stats;
  }

  seriesMetadata(signal?: AbortSignal): Promise<DicomJsonDataset[]> {
    return this.inner.seriesMetadata(signal);
  }

  async fetchFrames(
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

  async close(): Promise<void> {
    await this.inner.close?.();
  }
}
