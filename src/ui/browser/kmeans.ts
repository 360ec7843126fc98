/**
 * k-means in the browser over the overlay's principal component scores (8 per patch): k-means++
 * seeding from a fixed-seed generator, so the same k always gives the same clusters, then Lloyd
 * iterations until no patch changes cluster.
 */

const MAX_ITERATIONS = 100;

/** mulberry32: a small seeded generator (the clusters must not change between reloads). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function dist2(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    s += d * d;
  }
  return s;
}

/** The cluster (0..k-1) of each row of `flat` (n rows of `dims`). */
export function kMeans(flat: readonly number[], dims: number, k: number, seed = 1): Int32Array {
  const n = dims > 0 ? Math.floor(flat.length / dims) : 0;
  const rows = Array.from({ length: n }, (_, i) => Float64Array.from(flat.slice(i * dims, (i + 1) * dims)));
  const labels = new Int32Array(n);
  if (n === 0) return labels;
  const clusters = Math.max(1, Math.min(k, n));
  const random = seeded(seed);
  const centres: Float64Array[] = [Float64Array.from(rows[Math.floor(random() * n)] as Float64Array)];
  const nearest = rows.map((r) => dist2(r, centres[0] as Float64Array));
  while (centres.length < clusters) {
    const total = nearest.reduce((a, b) => a + b, 0);
    let pick = random() * total;
    let chosen = 0;
    for (let i = 0; i < n; i++) {
      pick -= nearest[i] ?? 0;
      if (pick <= 0) {
        chosen = i;
        break;
      }
    }
    const centre = Float64Array.from(rows[chosen] as Float64Array);
    centres.push(centre);
    rows.forEach((r, i) => {
      nearest[i] = Math.min(nearest[i] ?? 0, dist2(r, centre));
    });
  }
  labels.fill(-1);
  for (let it = 0; it < MAX_ITERATIONS; it++) {
    let changed = 0;
    rows.forEach((r, i) => {
      let best = 0;
      let bestD = Number.POSITIVE_INFINITY;
      centres.forEach((c, j) => {
        const d = dist2(r, c);
        if (d < bestD) {
          bestD = d;
          best = j;
        }
      });
      if (labels[i] !== best) changed++;
      labels[i] = best;
    });
    if (changed === 0) break;
    const sums = centres.map(() => new Float64Array(dims));
    const counts = new Int32Array(centres.length);
    rows.forEach((r, i) => {
      const j = labels[i] ?? 0;
      counts[j] = (counts[j] ?? 0) + 1;
      const s = sums[j] as Float64Array;
      for (let d = 0; d < dims; d++) s[d] = (s[d] ?? 0) + (r[d] ?? 0);
    });
    centres.forEach((c, j) => {
      const count = counts[j] ?? 0;
      if (count === 0) return;
      const s = sums[j] as Float64Array;
      for (let d = 0; d < dims; d++) c[d] = (s[d] ?? 0) / count;
    });
  }
  return labels;
}

/** Distinct colours for up to 12 clusters (Tableau/ColorBrewer-like), repeated beyond. */
export const CLUSTER_PALETTE: ReadonlyArray<readonly [number, number, number]> = [
  [31, 119, 180],
  [255, 127, 14],
  [44, 160, 44],
  [214, 39, 40],
  [148, 103, 189],
  [140, 86, 75],
  [227, 119, 194],
  [127, 127, 127],
  [188, 189, 34],
  [23, 190, 207],
  [255, 221, 0],
  [0, 0, 128],
];
