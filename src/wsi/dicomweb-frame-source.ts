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
import { joinShared, raceAbort, type SharedRequest } from './shared-request.js';

export class DicomWebFrameSource implements FrameSource {
  readonly reference: SeriesReference;
  /** The series URL (credentials never appear in a reference). */
  readonly description: string;
  readonly stats: FrameSourceStats = { requests: 0, frames: 0, bytes: 0 };
  readonly #client: DicomWebClient;
  /**
   * The series metadata, asked once per source: the slide model parses it when the slide opens and
   * later readers (the ICC profile of a level, say) look things up in it without another request.
   * A failed or aborted fetch is forgotten, so the next call asks again.
   */
  #metadata: SharedRequest<DicomJsonDataset[]> | undefined;

  /** Throws INVALID_SERIES_REFERENCE for a malformed reference; nothing is fetched yet. */
  constructor(client: DicomWebClient, reference: SeriesReferenceInput) {
    this.#client = client;
    this.reference = parseSeriesReference(reference);
    this.description = describeSeriesReference(this.reference);
  }

  seriesMetadata(signal?: AbortSignal): Promise<DicomJsonDataset[]> {
    let shared = this.#metadata;
    if (!shared) {
      const started: SharedRequest<DicomJsonDataset[]> = {
        promise: this.#client.seriesMetadata(this.reference, { signal }),
        signal,
      };
      started.promise.catch(() => {
        if (this.#metadata === started) this.#metadata = undefined;
      });
      this.#metadata = shared = started;
    }
    // A caller joining the request of another, whose signal then aborts, asks again.
    return raceAbort(
      joinShared(shared, signal, () => this.seriesMetadata(signal)),
      signal,
    );
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
