/**
 * The slide-level mean embedding, accumulated patch by patch so that no result ever holds all of a
 * slide's embeddings at once. Sums are kept in float64: summing tens of thousands of float32
 * values in float32 would lose several digits of the mean.
 */
import { PathembedError } from '../errors.js';

export class RunningMean {
  private readonly sums: Float64Array;
  private n = 0;

  constructor(readonly dimension: number) {
    if (!Number.isInteger(dimension) || dimension < 1) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `RunningMean: dimension must be a positive integer, got ${dimension}`,
        {
          dimension,
        },
      );
    }
    this.sums = new Float64Array(dimension);
  }

  add(vector: Float32Array): void {
    if (vector.length !== this.dimension) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `RunningMean: vector has ${vector.length} components, expected ${this.dimension}`,
        { length: vector.length, dimension: this.dimension },
      );
    }
    for (let i = 0; i < vector.length; i++) this.sums[i]! += vector[i]!;
    this.n++;
  }

  get count(): number {
    return this.n;
  }

  /** The mean so far as float32 (the embeddings' own precision); undefined before the first vector. */
  mean(): Float32Array | undefined {
    if (this.n === 0) return undefined;
    const out = new Float32Array(this.dimension);
    for (let i = 0; i < this.dimension; i++) out[i] = this.sums[i]! / this.n;
    return out;
  }
}
