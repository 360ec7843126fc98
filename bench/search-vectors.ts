/**
 * Test vectors for similar-patch search (bench/search.ts, test/unit/search-index.test.ts):
 * uniform random directions, and clustered ones, closer to real embeddings, which gather around
 * tissue types rather than spreading over the sphere. Seeded, so every run draws the same vectors.
 */
import { SeededRandom } from '../models/seeded-random.js';

/** n vectors of `dimension` standard-normal values: uniform directions once normalised. */
export function uniformVectors(n: number, dimension: number, seed: number): Float32Array {
  const random = new SeededRandom(seed);
  const out = new Float32Array(n * dimension);
  for (let i = 0; i < out.length; i++) out[i] = random.normal();
  return out;
}

export interface ClusterShape {
  /** Number of cluster centres (uniform directions). */
  readonly clusters: number;
  /** Noise norm relative to the centre's (0.5: points about cos 0.9 from their centre). */
  readonly spread: number;
}

/** Clustered default: √n clusters (at least 16), spread 0.5. */
export function defaultClusters(n: number): ClusterShape {
  return { clusters: Math.max(16, Math.round(Math.sqrt(n))), spread: 0.5 };
}

/** n vectors, each a random centre plus Gaussian noise of norm about `spread` (centres of norm 1). */
export function clusteredVectors(
  n: number,
  dimension: number,
  shape: ClusterShape,
  seed: number,
): Float32Array {
  const random = new SeededRandom(seed);
  const centres = new Float32Array(shape.clusters * dimension);
  for (let c = 0; c < shape.clusters; c++) {
    let norm = 0;
    for (let i = 0; i < dimension; i++) {
      const v = random.normal();
      centres[c * dimension + i] = v;
      norm += v * v;
    }
    norm = Math.sqrt(norm);
    for (let i = 0; i < dimension; i++) centres[c * dimension + i] = centres[c * dimension + i]! / norm;
  }
  const out = new Float32Array(n * dimension);
  const noise = shape.spread / Math.sqrt(dimension);
  for (let row = 0; row < n; row++) {
    const c = Math.floor(random.uniform() * shape.clusters);
    for (let i = 0; i < dimension; i++) {
      out[row * dimension + i] = centres[c * dimension + i]! + noise * random.normal();
    }
  }
  return out;
}
