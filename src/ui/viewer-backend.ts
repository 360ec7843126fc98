/**
 * What the web page's result view reads for one job, whoever holds it: the service (job records
 * in Redis, results in the result store, slides from the job's DICOMweb store) or the local viewer
 * (one result file and a slide folder, no Redis). The routes in viewer-routes.ts serve any backend
 * the same way, so the page does not know which it talks to.
 */
import type { PatchOverlay } from '../results/patch-overlay.js';
import type { SlideTiles } from '../wsi/slide-tiles.js';

/** An open slide's tiles; `release` hands it back to the backend's cache. */
export interface SlideLease {
  readonly tiles: SlideTiles;
  release(): void;
}

export interface ViewerBackend {
  /**
   * The slide of a job of the caller `keyId`, in any state (NOT_FOUND for a job of another key, as
   * GET /v1/jobs/:id answers); the overlay is what needs a completed job.
   */
  openSlide(jobId: string, keyId: string): Promise<SlideLease>;
  /** The patch overlay of a completed job (cached by the backend). */
  overlay(jobId: string, keyId: string): Promise<PatchOverlay>;
  close(): Promise<void>;
}
