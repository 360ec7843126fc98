/**
 * What a web viewer draws over a slide: every patch's level-0 rectangle, its colour from the first
 * three principal components (the same mapping as the demo's overview.png) and its first few
 * component scores, so the browser can cluster the patches (k-means) without the 384-value
 * embeddings: a slide of 100,000 patches is a few megabytes of overlay instead of 150 MB of floats.
 * The result is read twice (covariance, then scores), so no embedding is held.
 */
import { CovarianceAccumulator, pcaColours, principalComponents, project } from './embedding-pca.js';
import { level0Rect, level0Scale } from './level0-coordinates.js';
import type { PatchOverlay } from './patch-overlay-columns.js';
import type { ResultStream } from './result-reader.js';

/** Component scores sent per patch: enough for k-means to separate what the picture shows. */
export const OVERLAY_COMPONENTS = 8;
/** Scores are rounded to this many decimals (the colours do not need more). */
const SCORE_DECIMALS = 4;

export type { PatchOverlay } from './patch-overlay-columns.js';

/** Builds the overlay from two reads of one result (`open` is called twice). */
export async function buildPatchOverlay(open: () => Promise<ResultStream>): Promise<PatchOverlay> {
  const first = await open();
  const acc = new CovarianceAccumulator(first.header.embeddingDimension);
  for await (const p of first.patches()) acc.add(p.embedding);
  const overlay: PatchOverlay = {
    count: acc.count,
    components: acc.count > 0 ? Math.min(OVERLAY_COMPONENTS, acc.dimension) : 0,
    patchIndex: [],
    x: [],
    y: [],
    width: [],
    height: [],
    tissueFraction: [],
    rgb: [],
    scores: [],
  };
  if (acc.count === 0) return overlay;
  const pca = principalComponents(acc, overlay.components);
  const second = await open();
  const factor = 10 ** SCORE_DECIMALS;
  const rows: number[][] = [];
  // The result states target-grid rectangles; the viewer's image (and /v1/search) is level 0.
  const scale = level0Scale(second.header);
  for await (const p of second.patches()) {
    const r = level0Rect(p, scale);
    overlay.patchIndex.push(p.index);
    overlay.x.push(r.x);
    overlay.y.push(r.y);
    overlay.width.push(r.width);
    overlay.height.push(r.height);
    overlay.tissueFraction.push(p.tissueFraction);
    const s = project(pca, p.embedding);
    rows.push(s);
    for (const v of s) overlay.scores.push(Math.round(v * factor) / factor);
  }
  // pcaColours projects again; give it the scores through a unit basis instead of the embeddings.
  for (const rgb of coloursFromScores(rows)) overlay.rgb.push(...rgb);
  return overlay;
}

/** pcaColours' mapping applied to scores already projected (identity basis, zero mean). */
function coloursFromScores(rows: readonly number[][]): Array<[number, number, number]> {
  const k = rows[0]?.length ?? 0;
  const identity = {
    mean: new Float64Array(k),
    components: Array.from({ length: k }, (_, i) => {
      const e = new Float64Array(k);
      e[i] = 1;
      return e;
    }),
    variances: new Array<number>(k).fill(0),
  };
  return pcaColours(
    identity,
    rows.map((r) => Float32Array.from(r)),
  );
}
