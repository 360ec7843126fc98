/**
 * How closely one build of the model reproduces another's embeddings: cosine similarity per
 * patch (min and mean), the largest absolute difference, and the cosine after subtracting the
 * reference's mean embedding. The last matters for the synthetic model: an untrained ViT's
 * embeddings share a large common component (cosine ~0.998 between unrelated patches), which
 * flatters plain cosine. Two measures look only at what tells patches apart: the cosine after
 * subtracting the reference's mean embedding (meaningful over many, varied patches), and the
 * relative error of every pairwise distance between patches (meaningful for any set).
 */
import { EMBEDDING_WIDTH } from '../src/embed/model-contract.js';

export interface Agreement {
  patches: number;
  minCosine: number;
  meanCosine: number;
  maxAbsDiff: number;
  minCentredCosine: number;
  /** Largest |d' - d| / d over all pairs of patches, d the reference's Euclidean distance. */
  maxPairDistanceError: number;
  /** Mean of the same over all pairs. */
  meanPairDistanceError: number;
}

function distance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - b[i]) ** 2;
  return Math.sqrt(sum);
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>, centre?: Float64Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] - (centre?.[i] ?? 0);
    const y = b[i] - (centre?.[i] ?? 0);
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return dot / Math.sqrt(na * nb);
}

export function agreement(reference: readonly Float32Array[], candidate: readonly Float32Array[]): Agreement {
  if (reference.length !== candidate.length || reference.length === 0) {
    throw new Error(`cannot compare ${reference.length} embeddings with ${candidate.length}`);
  }
  const mean = new Float64Array(EMBEDDING_WIDTH);
  for (const e of reference) for (let i = 0; i < EMBEDDING_WIDTH; i++) mean[i] += e[i] / reference.length;
  let minCosine = 1;
  let sumCosine = 0;
  let maxAbsDiff = 0;
  let minCentredCosine = 1;
  reference.forEach((r, p) => {
    const c = candidate[p];
    const cos = cosine(r, c);
    minCosine = Math.min(minCosine, cos);
    sumCosine += cos;
    minCentredCosine = Math.min(minCentredCosine, cosine(r, c, mean));
    for (let i = 0; i < EMBEDDING_WIDTH; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(r[i] - c[i]));
  });
  let maxPairDistanceError = 0;
  let sumPairDistanceError = 0;
  let pairs = 0;
  for (let i = 0; i < reference.length; i++) {
    for (let j = i + 1; j < reference.length; j++) {
      const d = distance(reference[i], reference[j]);
      const error = Math.abs(distance(candidate[i], candidate[j]) - d) / d;
      maxPairDistanceError = Math.max(maxPairDistanceError, error);
      sumPairDistanceError += error;
      pairs++;
    }
  }
  return {
    patches: reference.length,
    minCosine,
    meanCosine: sumCosine / reference.length,
    maxAbsDiff,
    minCentredCosine,
    maxPairDistanceError,
    meanPairDistanceError: pairs > 0 ? sumPairDistanceError / pairs : 0,
  };
}
