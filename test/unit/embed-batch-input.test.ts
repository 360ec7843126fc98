import { describe, expect, it } from 'vitest';
import { writeBatchInput } from '../../src/embed/batch-input.js';
import { PATCH_BYTES } from '../../src/embed/model-contract.js';

/** A patch whose every byte value occurs, shifted by `seed` so that patches differ. */
function patch(seed: number): Uint8Array {
  const bytes = new Uint8Array(PATCH_BYTES);
  for (let i = 0; i < PATCH_BYTES; i++) bytes[i] = (i * 7 + seed) & 0xff;
  return bytes;
}

describe('writeBatchInput', () => {
  it('copies uint8 patches as they are, each at its place, and leaves the rest of the buffer alone', () => {
    const input = new Uint8Array(3 * PATCH_BYTES).fill(0xaa);
    const batch = [patch(1), patch(2)];
    writeBatchInput(input, batch);
    expect(input.subarray(0, PATCH_BYTES)).toEqual(batch[0]);
    expect(input.subarray(PATCH_BYTES, 2 * PATCH_BYTES)).toEqual(batch[1]);
    expect(input.subarray(2 * PATCH_BYTES).every((v) => v === 0xaa)).toBe(true);
  });

  it('writes float32 pixel / 255, rounded as the reference x / 255.0 rounds, not as x times a float32 1/255', () => {
    const input = new Float32Array(2 * PATCH_BYTES).fill(-1);
    const batch = [patch(3)];
    writeBatchInput(input, batch);
    for (let i = 0; i < PATCH_BYTES; i++) {
      if (input[i] !== Math.fround(batch[0]![i]! / 255)) throw new Error(`element ${i}: ${input[i]}`);
    }
    // For about half the byte values a float32 multiplication by 1/255 rounds differently.
    const reciprocal = Math.fround(1 / 255);
    const differs = [...Array(256).keys()].filter(
      (v) => Math.fround(v / 255) !== Math.fround(v * reciprocal),
    );
    expect(differs.length).toBeGreaterThan(100);
    for (const v of differs) {
      const at = batch[0]!.indexOf(v);
      expect(input[at]).not.toBe(Math.fround(v * reciprocal));
    }
    expect(input.subarray(PATCH_BYTES).every((v) => v === -1)).toBe(true);
  });
});
