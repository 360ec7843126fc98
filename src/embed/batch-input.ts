/**
 * How a batch of patches becomes the model's input tensor, for both input types the model
 * contract accepts (model-contract.ts): uint8 pixels as they are (the GPU builds, which scale
 * inside the graph), or float32 pixel / 255 (the default fp32 build). The embedding engine fills
 * its input buffer with this, and the GPU-feed benchmark batches with it too, so the benchmark's
 * CPU cost per patch is the engine's.
 */
import { PATCH_BYTES, PIXEL_SCALE } from './model-contract.js';

/** Writes `batch` (224 x 224 x 3 uint8 patches) into the first `batch.length` patches of `input`. */
export function writeBatchInput(input: Float32Array | Uint8Array, batch: readonly Uint8Array[]): void {
  if (input instanceof Uint8Array) {
    batch.forEach((patch, b) => {
      input.set(patch, b * PATCH_BYTES);
    });
    return;
  }
  batch.forEach((patch, b) => {
    const offset = b * PATCH_BYTES;
    // Division, not multiplication by 1/255: it rounds exactly as the reference `x / 255.0` does.
    for (let i = 0; i < PATCH_BYTES; i++) input[offset + i] = patch[i]! / PIXEL_SCALE;
  });
}
