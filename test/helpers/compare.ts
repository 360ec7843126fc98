/** Element-wise comparisons of pixel buffers and embeddings, for assertions within a bound. */
import { expect } from 'vitest';

/** Largest and mean absolute difference of two equally long arrays (pixels, samples). */
export function pixelDiff(a: ArrayLike<number>, b: ArrayLike<number>): { max: number; mean: number } {
  expect(a.length).toBe(b.length);
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    sum += d;
    if (d > max) max = d;
  }
  return { max, mean: sum / a.length };
}

/** Largest absolute difference of two embeddings. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return pixelDiff(a, b).max;
}
