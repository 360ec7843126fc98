/**
 * The `FrameSource` of one DICOMweb series: what the slide model reads frames and metadata
 * through, so it never sees URLs, batching or frame numbers. Holds its own frame counters, apart
 * from the client's (which may serve many series at once).
 */
import type { DicomJsonDataset } from '../dicom-json.js';
import {
  type DicomWebClient,
  describeSeriesReference,
  parseSeriesReference,
  type SeriesReference,
  type SeriesReferenceInput,
} from '../dicomweb/index.js';
import type { EncodedFrame, FrameSource, FrameSourceStats } from './frame-source.js';

export class DicomWebFrameSource implements FrameSource {
  readonly reference: SeriesReference;
  /** The series URL (credentials never appear in a reference). */
  readonly description: string;
  readonly stats: FrameSourceStats = { requests: 0, frames: 0, bytes: 0 };
  readonly #client: DicomWebClient;

  /** Throws INVALID_SERIES_REFERENCE for a malformed reference; nothing is fetched yet. */
  constructor(client: DicomWebClient, reference: SeriesReferenceInput) {
    this.#client = client;
    this.reference = parseSeriesReference(reference);
    this.description = describeSeriesReference(this.reference);
  }

  seriesMetadata(signal?: AbortSignal): Promise<DicomJsonDataset[]> {
    return this.#client.seriesMetadata(this.reference, { signal });
  }

  /** QIDO-RS summary of the instances (fewer attributes than `seriesMetadata`, one cheap request). */
  searchInstances(signal?: AbortSignal): Promise<DicomJsonDataset[]> {
    return this.#client.searchInstances(this.reference, { signal });
  }

  /** A BulkDataURI of this series' metadata (an ICC profile, say). */
  fetchBulkData(uri: string, signal?: AbortSignal): Promise<Uint8Array> {
    return this.#client.fetchBulkData(this.reference, uri, { signal });
  }

  fetchFrames(
    instanceUid: string,
    frameIndices: readonly number[],
    signal?: AbortSignal,
  ): Promise<EncodedFrame[]> {
    return this.#client.fetchFrames(this.reference, instanceUid, frameIndices, { signal, stats: this.stats });
  }
}
