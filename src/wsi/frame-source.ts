/**
 * Where encoded frames come from: a DICOMweb store or a local folder of Part 10 files. The slide
 * model and the patch reader see only this interface, so both sources read identically.
 * Frame indices are 0-based within an instance; the 1-based DICOM frame numbers exist only inside
 * src/dicomweb/ (and the local reader's own file access).
 */
import type { DicomJsonDataset } from '../dicom-json.js';
import type { EncodedFrame, FrameSourceStats } from '../encoded-frame.js';

export type { EncodedFrame, FrameSourceStats };

export interface FrameSource {
  /** A human-readable name of the source for messages (URL without credentials, or folder path). */
  readonly description: string;
  /** DICOM JSON metadata (PS3.18 F.2) of every instance of the series, bulk data omitted. */
  seriesMetadata(signal?: AbortSignal): Promise<DicomJsonDataset[]>;
  /**
   * Frames of one instance, in the order asked. Implementations batch as they see fit (DICOMweb:
   * several frame numbers per request, capped by config).
   */
  fetchFrames(
    instanceUid: string,
    frameIndices: readonly number[],
    signal?: AbortSignal,
  ): Promise<EncodedFrame[]>;
  /** A BulkDataURI the metadata gave (an ICC profile); sources whose metadata is inline lack it. */
  fetchBulkData?(uri: string, signal?: AbortSignal): Promise<Uint8Array>;
  readonly stats: FrameSourceStats;
  close?(): Promise<void>;
}

/**
 * A FrameSource that hands everything to another. Decorators (timing, error context) extend it and
 * override only what they add, instead of restating every forwarding member.
 */
export class ForwardingFrameSource implements FrameSource {
  constructor(protected readonly inner: FrameSource) {}

  get description(): string {
    return this.inner.description;
  }

  get stats(): FrameSourceStats {
    return this.inner.stats;
  }

  seriesMetadata(signal?: AbortSignal): Promise<DicomJsonDataset[]> {
    return this.inner.seriesMetadata(signal);
  }

  fetchFrames(
    instanceUid: string,
    frameIndices: readonly number[],
    signal?: AbortSignal,
  ): Promise<EncodedFrame[]> {
    return this.inner.fetchFrames(instanceUid, frameIndices, signal);
  }

  fetchBulkData(uri: string, signal?: AbortSignal): Promise<Uint8Array> {
    if (!this.inner.fetchBulkData) {
      return Promise.reject(new Error(`${this.inner.description} serves no bulk data by URI`));
    }
    return this.inner.fetchBulkData(uri, signal);
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }
}
