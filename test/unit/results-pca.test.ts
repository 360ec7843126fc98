import { describe, expect, it } from 'vitest';
import {
  CovarianceAccumulator,
  pcaColours,
  principalComponents,
  project,
} from '../../src/results/embedding-pca.js';

/** Points along known orthogonal directions with variances 25, 9, 1 (plus tiny noise) in 6-d. */
function sample(n: number): Float32Array[] {
  const dirs = [
    [1, 1, 0, 0, 0, 0].map((x) => x / Math.SQRT2),
    [0, 0, 1, -1, 0, 0].map((x) => x / Math.SQRT2),
    [0, 0, 0, 0, 1, 0],
  ];
  const scales = [5, 3, 1];
  const out: Float32Array[] = [];
  for (let i = 0; i < n; i++) {
    const v = new Float32Array(6);
    const t = (i + 0.5) / n;
    // Deterministic, uncorrelated coordinates: cos/sin at different frequencies.
    const coords = [Math.cos(2 * Math.PI * t), Math.sin(2 * Math.PI * 2 * t), Math.cos(2 * Math.PI * 5 * t)];
    coords.forEach((c, k) => {
      for (let j = 0; j < 6; j++) v[j] += c * scales[k] * Math.SQRT2 * dirs[k][j];
    });
    v[5] = 3 + 1e-3 * Math.sin(i);
    out.push(v);
  }
  return out;
}

describe('embedding PCA', () => {
  it('finds the directions of largest variance, in order, with their variances', () => {
    const acc = new CovarianceAccumulator(6);
    for (const v of sample(400)) acc.add(v);
    const pca = principalComponents(acc, 3);
    expect(pca.variances[0]).toBeCloseTo(25, 0);
    expect(pca.variances[1]).toBeCloseTo(9, 0);
    expect(pca.variances[2]).toBeCloseTo(1, 1);
    expect(Math.abs(pca.components[0][0])).toBeCloseTo(Math.SQRT1_2, 3);
    expect(Math.abs(pca.components[1][2])).toBeCloseTo(Math.SQRT1_2, 3);
    expect(Math.abs(pca.components[2][4])).toBeCloseTo(1, 3);
    // orthonormal
    const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, x, i) => s + x * b[i], 0);
    expect(dot(pca.components[0], pca.components[1])).toBeCloseTo(0, 4);
    expect(dot(pca.components[0], pca.components[0])).toBeCloseTo(1, 9);
    expect(pca.mean[5]).toBeCloseTo(3, 3);
  });

  it('colours vectors by their scores, deterministically, within 0-255', () => {
    const vectors = sample(100);
    const acc = new CovarianceAccumulator(6);
    for (const v of vectors) acc.add(v);
    const pca = principalComponents(acc, 3);
    const colours = pcaColours(pca, vectors);
    expect(colours).toHaveLength(100);
    for (const c of colours) for (const x of c) expect(x >= 0 && x <= 255 && Number.isInteger(x)).toBe(true);
    // The vector with the highest first score is the reddest.
    const first = vectors.map((v) => project(pca, v)[0]);
    const top = first.indexOf(Math.max(...first));
    expect(colours[top][0]).toBe(255);
    expect(pcaColours(principalComponents(acc, 3), vectors)).toEqual(colours);
  });
});
