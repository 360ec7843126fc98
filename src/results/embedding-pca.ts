/**
 * Principal components of embeddings, small and dependency-free, for pictures: the demo colours
 * each patch by its first three components (as RGB), which shows at a glance whether the model
 * separates tissue types. The covariance (384 x 384 in float64, 1.2 MB) is accumulated one
 * embedding at a time, so a result can be streamed through it; the components come from power
 * iteration with deflation, which needs only matrix-vector products and converges quickly for the
 * leading components that a picture uses.
 */
import { PathembedError } from '../errors.js';

/** Power-iteration steps per component at most; leading components converge in far fewer. */
const MAX_ITERATIONS = 500;
/** Stop when the vector moves less than this (1 - |cos| between steps). */
const CONVERGENCE = 1e-10;
/** Scores are mapped to colours between these percentiles, so a few outliers do not wash out the rest. */
const LOW_PERCENTILE = 0.02;
const HIGH_PERCENTILE = 0.98;
const MAX_BYTE = 255;

/** Running mean and covariance (sums of products), one vector at a time. */
export class CovarianceAccumulator {
  private readonly sums: Float64Array;
  private readonly products: Float64Array;
  private n = 0;

  constructor(readonly dimension: number) {
    this.sums = new Float64Array(dimension);
    this.products = new Float64Array(dimension * dimension);
  }

  add(v: Float32Array): void {
    const d = this.dimension;
    if (v.length !== d) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `CovarianceAccumulator: vector has ${v.length} components, expected ${d}`,
      );
    }
    // v, sums and products are d, d and d * d long (checked above), so every index is in bounds.
    for (let i = 0; i < d; i++) {
      const vi = v[i]!;
      this.sums[i]! += vi;
      const row = i * d;
      // Upper triangle only; `covariance` mirrors it.
      for (let j = i; j < d; j++) this.products[row + j]! += vi * v[j]!;
    }
    this.n++;
  }

  get count(): number {
    return this.n;
  }

  mean(): Float64Array {
    return this.sums.map((s) => (this.n === 0 ? 0 : s / this.n));
  }

  /** The (population) covariance matrix, row-major d x d. */
  covariance(): Float64Array {
    const d = this.dimension;
    const mean = this.mean();
    const cov = new Float64Array(d * d);
    if (this.n === 0) return cov;
    for (let i = 0; i < d; i++) {
      for (let j = i; j < d; j++) {
        const c = this.products[i * d + j]! / this.n - mean[i]! * mean[j]!;
        cov[i * d + j] = c;
        cov[j * d + i] = c;
      }
    }
    return cov;
  }
}

export interface PrincipalComponents {
  readonly mean: Float64Array;
  /** Unit vectors, largest variance first. */
  readonly components: Float64Array[];
  /** Variance along each component. */
  readonly variances: number[];
}

function multiply(matrix: Float64Array, d: number, v: Float64Array, out: Float64Array): void {
  for (let i = 0; i < d; i++) {
    let s = 0;
    const row = i * d;
    for (let j = 0; j < d; j++) s += matrix[row + j]! * v[j]!;
    out[i] = s;
  }
}

function norm(v: Float64Array): number {
  let s = 0;
  for (const x of v) s += x * x;
  return Math.sqrt(s);
}

/**
 * The top `k` principal components of the accumulated vectors. The start vector is fixed (not
 * random) so the same embeddings always give the same picture; each component's sign is chosen so
 * its largest coordinate is positive, for the same reason.
 */
export function principalComponents(acc: CovarianceAccumulator, k: number): PrincipalComponents {
  const d = acc.dimension;
  if (!Number.isInteger(k) || k < 1 || k > d) {
    throw new PathembedError('INVALID_ARGUMENT', `principalComponents: k must be 1..${d}, got ${k}`);
  }
  const cov = acc.covariance();
  const components: Float64Array[] = [];
  const variances: number[] = [];
  const next = new Float64Array(d);
  for (let c = 0; c < k; c++) {
    let v = new Float64Array(d).map((_, i) => 1 + ((i * 7919) % 13) / 13);
    v = v.map((x) => x / norm(v));
    let eigenvalue = 0;
    for (let it = 0; it < MAX_ITERATIONS; it++) {
      multiply(cov, d, v, next);
      const length = norm(next);
      if (length === 0) break;
      let dot = 0;
      for (let i = 0; i < d; i++) {
        next[i]! /= length;
        dot += next[i]! * v[i]!;
      }
      v = Float64Array.from(next);
      eigenvalue = length;
      if (1 - Math.abs(dot) < CONVERGENCE) break;
    }
    let largest = 0;
    for (let i = 0; i < d; i++) if (Math.abs(v[i]!) > Math.abs(v[largest]!)) largest = i;
    if (v[largest]! < 0) v = v.map((x) => -x);
    components.push(v);
    variances.push(eigenvalue);
    // Deflate: remove this component's variance so the next iteration finds the next one.
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < d; j++) cov[i * d + j]! -= eigenvalue * v[i]! * v[j]!;
    }
  }
  return { mean: acc.mean(), components, variances };
}

/** Coordinates of `v` along the components (after subtracting the mean). */
export function project(pca: PrincipalComponents, v: Float32Array): number[] {
  return pca.components.map((c) => {
    let s = 0;
    for (let i = 0; i < c.length; i++) s += (v[i]! - pca.mean[i]!) * c[i]!;
    return s;
  });
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(p * (sorted.length - 1))))]!;
}

/**
 * An RGB colour per vector from its first three component scores, each mapped linearly from its
 * 2nd-98th percentile range onto 0-255 (clamped). Fewer than three components give grey levels.
 */
export function pcaColours(
  pca: PrincipalComponents,
  vectors: readonly Float32Array[],
): Array<[number, number, number]> {
  const scores = vectors.map((v) => project(pca, v));
  const channels = [0, 1, 2].map((c) => {
    const axis = Math.min(c, pca.components.length - 1);
    // axis < components.length, and every score row has one entry per component.
    const sorted = scores.map((s) => s[axis]!).sort((a, b) => a - b);
    return { axis, low: percentile(sorted, LOW_PERCENTILE), high: percentile(sorted, HIGH_PERCENTILE) };
  });
  return scores.map((s) => {
    const rgb = channels.map(({ axis, low, high }) => {
      const t = high > low ? (s[axis]! - low) / (high - low) : 0.5;
      return Math.round(Math.min(1, Math.max(0, t)) * MAX_BYTE);
    });
    return [rgb[0]!, rgb[1]!, rgb[2]!];
  });
}
