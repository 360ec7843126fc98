/**
 * The tissue mask: which parts of a slide hold tissue, computed once per slide at low resolution
 * (PATHEMBED_TISSUE_SPACING_UM, 8 µm/px by default) so the patch grid can skip glass.
 *
 * Method (`TISSUE_METHOD`):
 * 1. Level: a stored level inside [spacing, 2 x spacing] is used as it is (no resampling, its
 *    spacing becomes the mask's); otherwise the coarsest level finer than the spacing is shrunk to
 *    exactly the spacing by area averaging; a slide whose levels are all coarser uses its finest.
 *    The level is read in strips, so a slide with no pyramid does not need a whole level in memory.
 * 2. Per mask pixel: HSV saturation S = (max - min) / max of R, G, B, and luminance
 *    Y = 0.299 R + 0.587 G + 0.114 B (Rec. 601).
 * 3. Otsu's threshold on the saturation histogram (256 bins) of every pixel with Y >= LUMINANCE_MIN
 *    splits them into the unstained (glass, S ~ 0-0.02) and stained (H&E eosin/haematoxylin,
 *    S ~ 0.1-0.8) classes. It adapts to how strongly a slide is stained, which a fixed threshold
 *    does not. Saturation, not brightness, is the feature because stain adds colour while glass
 *    stays grey at any illumination, and S is unchanged when a pixel is averaged with black (edge
 *    padding). Dark pixels are left out of the histogram: black padding is not a third class
 *    Otsu should balance. Glass must stay in it: without the glass peak the histogram holds only
 *    tissue and Otsu splits the tissue itself (on CMU-1-Small-Region, threshold 72 instead of 48,
 *    losing the pale eosin stroma: 25 % tissue instead of 33 %).
 * 4. The threshold is raised to at least SATURATION_FLOOR: on a slide (or strip) that is all
 *    glass, Otsu would otherwise split the glass's own noise into "tissue".
 * 5. Tissue = S > threshold and LUMINANCE_MIN <= Y <= LUMINANCE_MAX: brighter is glass (even when
 *    JPEG chroma noise or a colour cast gives it some saturation), darker is black padding, the
 *    scanner's out-of-scan fill or folds too dark to embed. Black is why the saturation threshold
 *    alone is not enough: S is undefined at max = 0 and a near-black pixel with noise like
 *    (2, 0, 1) has S = 1.
 * No morphology: at 8 µm/px a patch of 224 px at 0.5 µm/px covers 14 x 14 mask pixels, and the
 * grid asks for a fraction of them, not for clean borders.
 *
 * Geometry: mask pixel (i, j) covers [i * s, (i + 1) * s) x [j * s, (j + 1) * s) µm from the image
 * origin, s = `pixelSpacingUm`; `tissueFraction` takes a rectangle of any other grid by its own
 * pixel size in µm and returns the area-weighted fraction of it over tissue (beyond the mask: none).
 */
import sharp from 'sharp';
import type { RgbFrame } from '../codecs/index.js';
import { PathembedError } from '../errors.js';
import type { PatchReader } from './patch-reader.js';
import { meanPixelSpacingUm } from './pixel-spacing.js';
import type { RectPx } from './region.js';
import { RGB_CHANNELS } from './resample.js';
import type { SlideLevel } from './slide-level.js';

export const TISSUE_METHOD = 'otsu-saturation';
/** Pixels brighter than this (Y, 0-255) are glass whatever their saturation. */
export const LUMINANCE_MAX = 235;
/** Pixels darker than this are padding or out-of-scan black, not tissue. */
export const LUMINANCE_MIN = 25;
/** Least saturation (0-255 scale) counted as stain: glass with JPEG chroma noise stays below ~0.03. */
export const SATURATION_FLOOR = Math.round(0.07 * 255);
/** Mask rows read per strip; bounds memory to about this many rows of the (resampled) level. */
const STRIP_MASK_ROWS = 64;
/** Levels coarser than spacing x this are not used when a finer one can be shrunk. */
const MAX_COARSER_FACTOR = 2;

export interface TissueMaskOptions {
  /** Spacing of the mask in µm/px (PATHEMBED_TISSUE_SPACING_UM). */
  readonly spacingUm: number;
  readonly signal?: AbortSignal;
}

/** The level the mask is computed from and the downsample applied to it (see the module doc). */
export function chooseMaskLevel(
  levels: readonly SlideLevel[],
  spacingUm: number,
): { level: SlideLevel; scale: number } {
  if (levels.length === 0) throw new PathembedError('INTERNAL', 'A slide with no level has no tissue mask');
  const bySpacing = [...levels].sort((a, b) => meanPixelSpacingUm(a) - meanPixelSpacingUm(b));
  const near = bySpacing.find((l) => {
    const s = meanPixelSpacingUm(l);
    return s >= spacingUm && s <= spacingUm * MAX_COARSER_FACTOR;
  });
  if (near) return { level: near, scale: 1 };
  const finer = bySpacing.filter((l) => meanPixelSpacingUm(l) < spacingUm);
  if (finer.length > 0) {
    const level = finer[finer.length - 1]!;
    return { level, scale: spacingUm / meanPixelSpacingUm(level) };
  }
  return { level: bySpacing[0]!, scale: 1 };
}

/** Otsu's threshold of a 256-bin histogram: the bin t maximising between-class variance of [0..t] vs (t..255]. */
export function otsuThreshold(histogram: ArrayLike<number>): number {
  // The histogram has 256 bins, so every index below is in range.
  let total = 0;
  let sumAll = 0;
  for (let i = 0; i < 256; i++) {
    total += histogram[i]!;
    sumAll += i * histogram[i]!;
  }
  if (total === 0) return 0;
  let weightLow = 0;
  let sumLow = 0;
  let best = 0;
  let bestVariance = -1;
  for (let t = 0; t < 256; t++) {
    weightLow += histogram[t]!;
    if (weightLow === 0) continue;
    const weightHigh = total - weightLow;
    if (weightHigh === 0) break;
    sumLow += t * histogram[t]!;
    const meanLow = sumLow / weightLow;
    const meanHigh = (sumAll - sumLow) / weightHigh;
    const variance = weightLow * weightHigh * (meanLow - meanHigh) ** 2;
    if (variance > bestVariance) {
      bestVariance = variance;
      best = t;
    }
  }
  return best;
}

/** Saturation on a 0-255 scale (0 for black), and Rec. 601 luminance, of one RGB pixel. */
function saturationAndLuminance(r: number, g: number, b: number): [number, number] {
  const max = Math.max(r, g, b);
  const min = Math.min(r, g, b);
  const s = max === 0 ? 0 : Math.round(((max - min) * 255) / max);
  return [s, 0.299 * r + 0.587 * g + 0.114 * b];
}

export class TissueMask {
  constructor(
    readonly widthPx: number,
    readonly heightPx: number,
    /** Micrometres per mask pixel (both axes). */
    readonly pixelSpacingUm: number,
    /** 1 where tissue, 0 elsewhere; row-major. */
    readonly data: Uint8Array,
    /** Saturation threshold used (0-255): tissue is S > threshold. */
    readonly saturationThreshold: number,
    readonly method: string = TISSUE_METHOD,
  ) {}

  /** Fraction of all mask pixels that are tissue. */
  get fraction(): number {
    let n = 0;
    for (const v of this.data) n += v;
    return this.data.length === 0 ? 0 : n / this.data.length;
  }

  /**
   * Area-weighted fraction of `rect` (in a grid of `rectPixelSpacingUm` µm/px with the same
   * origin, e.g. the target grid) that lies over tissue; parts beyond the mask count as glass.
   */
  tissueFraction(rect: RectPx, rectPixelSpacingUm: number): number {
    const k = rectPixelSpacingUm / this.pixelSpacingUm;
    const x0 = rect.x * k;
    const y0 = rect.y * k;
    const x1 = (rect.x + rect.width) * k;
    const y1 = (rect.y + rect.height) * k;
    const area = (x1 - x0) * (y1 - y0);
    if (area <= 0) return 0;
    let covered = 0;
    const j0 = Math.max(0, Math.floor(y0));
    const j1 = Math.min(this.heightPx, Math.ceil(y1));
    const i0 = Math.max(0, Math.floor(x0));
    const i1 = Math.min(this.widthPx, Math.ceil(x1));
    for (let j = j0; j < j1; j++) {
      const h = Math.min(j + 1, y1) - Math.max(j, y0);
      if (h <= 0) continue;
      for (let i = i0; i < i1; i++) {
        if (this.data[j * this.widthPx + i] === 0) continue;
        const w = Math.min(i + 1, x1) - Math.max(i, x0);
        if (w > 0) covered += w * h;
      }
    }
    // Clamp float noise so a patch wholly over tissue reports exactly 1.
    return Math.min(1, covered / area);
  }

  /** The mask as an 8-bit greyscale PNG: tissue white (255), the rest black. */
  async toPng(): Promise<Buffer> {
    const pixels = Buffer.alloc(this.data.length);
    for (let i = 0; i < this.data.length; i++) pixels[i] = this.data[i] ? 255 : 0;
    // b-w: without it sharp writes the single band as RGB.
    return sharp(pixels, { raw: { width: this.widthPx, height: this.heightPx, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toBuffer();
  }

  /** Summary for JSON output (the pixels stay out; write them with `toPng`). */
  toJSON(): {
    method: string;
    spacingUm: number;
    widthPx: number;
    heightPx: number;
    fraction: number;
    saturationThreshold: number;
  } {
    return {
      method: this.method,
      spacingUm: this.pixelSpacingUm,
      widthPx: this.widthPx,
      heightPx: this.heightPx,
      fraction: this.fraction,
      saturationThreshold: this.saturationThreshold,
    };
  }

  /** Classifies an RGB image at the mask's spacing (steps 2-5 of the module doc). */
  static fromRgb(image: RgbFrame, pixelSpacingUm: number): TissueMask {
    const n = image.width * image.height;
    const saturation = new Uint8Array(n);
    const candidate = new Uint8Array(n);
    const histogram = new Float64Array(256);
    for (let p = 0, q = 0; p < n; p++, q += RGB_CHANNELS) {
      const [s, y] = saturationAndLuminance(image.data[q]!, image.data[q + 1]!, image.data[q + 2]!);
      saturation[p] = s;
      if (y >= LUMINANCE_MIN) {
        histogram[s]!++;
        if (y <= LUMINANCE_MAX) candidate[p] = 1;
      }
    }
    const threshold = Math.max(otsuThreshold(histogram), SATURATION_FLOOR);
    const data = new Uint8Array(n);
    for (let p = 0; p < n; p++) data[p] = candidate[p] && saturation[p]! > threshold ? 1 : 0;
    return new TissueMask(image.width, image.height, pixelSpacingUm, data, threshold);
  }
}

/**
 * Computes the tissue mask of a slide from `levels` (finest first or in any order), reading
 * through `reader` (so frames go through the cache and sparse gaps read as glass).
 */
export async function computeTissueMask(
  reader: PatchReader,
  levels: readonly SlideLevel[],
  options: TissueMaskOptions,
): Promise<TissueMask> {
  const choice = chooseMaskLevel(levels, options.spacingUm);
  const widthPx = Math.max(1, Math.ceil(choice.level.widthPx / choice.scale - 1e-9));
  const heightPx = Math.max(1, Math.ceil(choice.level.heightPx / choice.scale - 1e-9));
  const image: RgbFrame = {
    width: widthPx,
    height: heightPx,
    data: new Uint8Array(widthPx * heightPx * RGB_CHANNELS),
  };
  for (let y = 0; y < heightPx; y += STRIP_MASK_ROWS) {
    const rows = Math.min(STRIP_MASK_ROWS, heightPx - y);
    // The last column/row of mask pixels may reach past the image: read as black, which leaves
    // saturation unchanged and the luminance floor ignores wholly-outside pixels.
    const strip = await reader.readScaled(
      choice,
      { x: 0, y, width: widthPx, height: rows },
      { signal: options.signal },
    );
    image.data.set(strip.data, y * widthPx * RGB_CHANNELS);
  }
  return TissueMask.fromRgb(image, meanPixelSpacingUm(choice.level) * choice.scale);
}
