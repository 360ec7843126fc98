/**
 * resizeLikeGoogle (wsi/opencv-resize.ts): OpenCV's bilinear resize through opencv.js. Pixel
 * equality with Python's cv2.resize, Google's own call, is checked end to end in
 * test/integration/predict-compat.test.ts; here, what can be derived by hand and the process hooks.
 */
import { describe, expect, it } from 'vitest';
import { resizeLikeGoogle } from '../../src/wsi/opencv-resize.js';

const events = ['uncaughtException', 'unhandledRejection'] as const;
const listenerCount = () => events.reduce((n, e) => n + process.listenerCount(e), 0);

describe('resizeLikeGoogle', () => {
  it('halves by averaging each 2 x 2 block (bilinear at exactly half samples between the four)', async () => {
    const [W, H] = [8, 6];
    const data = new Uint8Array(W * H * 3).map((_, i) => (i * 37) % 251);
    const before = listenerCount();
    const out = await resizeLikeGoogle({ width: W, height: H, data }, W / 2, H / 2);
    // Loading opencv.js leaves Node's process-wide error handling as it was.
    expect(listenerCount()).toBe(before);
    expect([out.width, out.height, out.data.length]).toEqual([4, 3, 36]);
    for (let y = 0; y < 3; y++) {
      for (let x = 0; x < 4; x++) {
        for (let c = 0; c < 3; c++) {
          const at = (u: number, v: number) => data[(v * W + u) * 3 + c] as number;
          const sum =
            at(2 * x, 2 * y) + at(2 * x + 1, 2 * y) + at(2 * x, 2 * y + 1) + at(2 * x + 1, 2 * y + 1);
          // OpenCV rounds its fixed-point sum to nearest; a quarter sum is never a tie by more than 1/2.
          expect(Math.abs((out.data[(y * 4 + x) * 3 + c] as number) - sum / 4)).toBeLessThanOrEqual(0.5);
        }
      }
    }
  });

  it('returns the same frame when the size does not change, and enlarges to the asked size', async () => {
    const frame = { width: 3, height: 2, data: new Uint8Array(18).fill(200) };
    expect(await resizeLikeGoogle(frame, 3, 2)).toBe(frame);
    const big = await resizeLikeGoogle(frame, 7, 5);
    expect([big.width, big.height]).toEqual([7, 5]);
    // A flat image stays flat under interpolation.
    expect(big.data.every((v) => v === 200)).toBe(true);
  });
});
