/**
 * Area-averaging (box-filter) resampling of RGB pixel buffers, used to read a patch at a pixel
 * spacing coarser than any stored level and to shrink a level for the tissue mask.
 *
 * Each output pixel covers a rectangle of the source `scaleX` x `scaleY` source pixels wide and
 * tall, starting at a possibly fractional position; its value is the mean of the source pixels
 * weighted by how much of each the rectangle covers. For integer factors at integer offsets this
 * is the plain mean of a k x k block (an exact box filter: the weights are whole numbers, so the
 * sums are exact in float64 and only the final division rounds). For non-integer factors it is the
 * exact area-weighted mean. Interpolating kernels (cubic, Lanczos) would instead sample the
 * source at points and alias fine texture when shrinking by 2-8x, which is why we do not use
 * sharp's `resize` here: libvips' box "shrink" only handles integer factors, and its
 * reduce kernels are not area averages.
 *
 * The filter is separable: a rectangle's area overlap with a pixel is the product of the x and y
 * overlaps, so a horizontal pass followed by a vertical one gives the same weights as the 2-D sum.
 * Output values are rounded to nearest (halves up) and clamped to 0..255.
 */
import type { RgbFrame } from '../codecs/index.js';
import { PathembedError } from '../errors.js';

export const RGB_CHANNELS = 3;

/** Where the output grid lies on the source, in source pixels. */
export interface AreaWindow {
  /** Source x (column) of the left edge of output column 0; may be fractional. */
  readonly srcXPx: number;
  /** Source y (row) of the top edge of output row 0; may be fractional. */
  readonly srcYPx: number;
  /** Source pixels per output pixel along x (> 0). */
  readonly scaleX: number;
  /** Source pixels per output pixel along y (> 0). */
  readonly scaleY: number;
  readonly widthPx: number;
  readonly heightPx: number;
}

/** One axis: for each output index, the source indices it covers and how much of each. */
interface AxisWeights {
  /** First source index of output i is `first[i]`; its weights are `weights[offset[i] .. offset[i+1])`. */
  readonly first: Int32Array;
  readonly offset: Int32Array;
  readonly weights: Float64Array;
}

function axisWeights(start: number, scale: number, count: number): AxisWeights {
  const first = new Int32Array(count);
  const offset = new Int32Array(count + 1);
  const list: number[] = [];
  for (let i = 0; i < count; i++) {
    // Both edges are computed as start + k * scale, so output i's right edge is bit-for-bit output
    // i+1's left edge and no source sliver is counted twice or lost.
    const a = start + i * scale;
    const b = start + (i + 1) * scale;
    const u0 = Math.floor(a);
    const u1 = Math.ceil(b);
    first[i] = u0;
    offset[i] = list.length;
    for (let u = u0; u < u1; u++) {
      const w = Math.min(u + 1, b) - Math.max(u, a);
      list.push(Math.max(w, 0));
    }
  }
  offset[count] = list.length;
  return { first, offset, weights: Float64Array.from(list) };
}

function roundByte(v: number): number {
  // Math.round rounds halves up; the tests compute the expected mean the same way.
  const r = Math.round(v);
  return Math.min(255, Math.max(0, r));
}

/** Copies a whole-pixel rectangle out of an RGB buffer (no resampling). */
export function cropRgb(
  src: RgbFrame,
  xPx: number,
  yPx: number,
  widthPx: number,
  heightPx: number,
): RgbFrame {
  if (xPx === 0 && yPx === 0 && widthPx === src.width && heightPx === src.height) return src;
  const data = new Uint8Array(widthPx * heightPx * RGB_CHANNELS);
  const rowBytes = widthPx * RGB_CHANNELS;
  for (let y = 0; y < heightPx; y++) {
    const from = ((yPx + y) * src.width + xPx) * RGB_CHANNELS;
    data.set(src.data.subarray(from, from + rowBytes), y * rowBytes);
  }
  return { width: widthPx, height: heightPx, data };
}

/**
 * Resamples `src` onto the output grid described by `window` by area averaging. The window must
 * lie inside the source (callers read the enclosing whole-pixel region first).
 */
export function areaResample(src: RgbFrame, window: AreaWindow): RgbFrame {
  const { srcXPx, srcYPx, scaleX, scaleY, widthPx, heightPx } = window;
  if (!(scaleX > 0 && scaleY > 0) || widthPx <= 0 || heightPx <= 0) {
    throw new PathembedError('INVALID_ARGUMENT', 'Resampling needs positive scales and output size', {
      ...window,
    });
  }
  const epsilonPx = 1e-9;
  if (
    srcXPx < -epsilonPx ||
    srcYPx < -epsilonPx ||
    srcXPx + widthPx * scaleX > src.width + epsilonPx ||
    srcYPx + heightPx * scaleY > src.height + epsilonPx
  ) {
    throw new PathembedError('INTERNAL', 'Resampling window lies outside its source buffer', {
      ...window,
      srcWidthPx: src.width,
      srcHeightPx: src.height,
    });
  }
  if (scaleX === 1 && scaleY === 1 && Number.isInteger(srcXPx) && Number.isInteger(srcYPx)) {
    return cropRgb(src, srcXPx, srcYPx, widthPx, heightPx);
  }

  const xs = axisWeights(srcXPx, scaleX, widthPx);
  const ys = axisWeights(srcYPx, scaleY, heightPx);
  // Source rows the vertical pass needs; the horizontal pass runs on these only.
  // Indexes below stay within the axis tables (`first`: count, `offset`: count + 1 entries) and the
  // buffers sized from them, so the typed-array reads are asserted rather than checked per pixel.
  const row0 = ys.first[0]!;
  const row1 = ys.first[heightPx - 1]! + (ys.offset[heightPx]! - ys.offset[heightPx - 1]!);
  const srcRows = Math.min(row1, src.height) - row0;

  // Horizontal pass: sums weighted by x overlap, not yet divided (exact for integer weights).
  const rowStride = widthPx * RGB_CHANNELS;
  const tmp = new Float64Array(srcRows * rowStride);
  const srcData = src.data;
  const srcWidth = src.width;
  for (let r = 0; r < srcRows; r++) {
    const srcRow = (row0 + r) * srcWidth;
    const tmpRow = r * rowStride;
    for (let i = 0; i < widthPx; i++) {
      let sr = 0;
      let sg = 0;
      let sb = 0;
      const u0 = xs.first[i]!;
      const end = xs.offset[i + 1]!;
      for (let k = xs.offset[i]!, u = u0; k < end; k++, u++) {
        const w = xs.weights[k]!;
        if (w === 0 || u >= srcWidth) continue;
        const p = (srcRow + u) * RGB_CHANNELS;
        sr += w * srcData[p]!;
        sg += w * srcData[p + 1]!;
        sb += w * srcData[p + 2]!;
      }
      const t = tmpRow + i * RGB_CHANNELS;
      tmp[t] = sr;
      tmp[t + 1] = sg;
      tmp[t + 2] = sb;
    }
  }

  // Vertical pass, then one division by the covered area.
  const area = scaleX * scaleY;
  const out = new Uint8Array(widthPx * heightPx * RGB_CHANNELS);
  const acc = new Float64Array(rowStride);
  for (let j = 0; j < heightPx; j++) {
    acc.fill(0);
    const end = ys.offset[j + 1]!;
    for (let k = ys.offset[j]!, v = ys.first[j]!; k < end; k++, v++) {
      const w = ys.weights[k]!;
      const r = v - row0;
      if (w === 0 || r >= srcRows) continue;
      const tmpRow = r * rowStride;
      for (let t = 0; t < rowStride; t++) acc[t]! += w * tmp[tmpRow + t]!;
    }
    const outRow = j * rowStride;
    for (let t = 0; t < rowStride; t++) out[outRow + t] = roundByte(acc[t]! / area);
  }
  return { width: widthPx, height: heightPx, data: out };
}

/** The whole of `src` shrunk (or stretched) to `widthPx` x `heightPx` by area averaging. */
export function resizeByArea(src: RgbFrame, widthPx: number, heightPx: number): RgbFrame {
  return areaResample(src, {
    srcXPx: 0,
    srcYPx: 0,
    scaleX: src.width / widthPx,
    scaleY: src.height / heightPx,
    widthPx,
    heightPx,
  });
}
