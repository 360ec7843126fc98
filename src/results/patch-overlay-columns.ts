/**
 * The patch overlay's shape as the API sends it: built by patch-overlay.ts on the server and read
 * by the web page (src/ui/browser), which imports this module only, since it imports nothing.
 */

/** Columns, one entry per patch in result order (`scores` and `rgb` are flattened rows). */
export interface PatchOverlay {
  readonly count: number;
  readonly components: number;
  readonly patchIndex: number[];
  readonly x: number[];
  readonly y: number[];
  readonly width: number[];
  readonly height: number[];
  readonly tissueFraction: number[];
  /** count x 3 bytes: the PCA colour. */
  readonly rgb: number[];
  /** count x components scores. */
  readonly scores: number[];
}
