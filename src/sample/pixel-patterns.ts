/**
 * Pixel functions for synthetic slides. A pixel function gets a pixel's coordinates in its level's
 * own pixel matrix and the level (index and downsample factor from level 0) and returns 8-bit RGB.
 *
 * Coordinate encoding (`coordinatePattern`): every pixel stores its own coordinates (x, y) in the
 * pixel matrix of the level it is written to, exactly, so a reader can check any pixel it returns:
 *
 *   R = x & 0xff
 *   G = y & 0xff
 *   B = ((x >> 8) & 0x0f) | (((y >> 8) & 0x0f) << 4)
 *
 * which holds x and y up to 4095 (coordinates wrap modulo 4096 above that). Coarser levels carry
 * their own coordinates, not averages of level 0, so a read from level k is checked exactly too.
 * Only lossless transfer syntaxes keep the code intact; JPEG blurs it.
 *
 * H&E-like (`hematoxylinEosinPattern`): a deterministic stand-in for tissue defined in level-0
 * coordinates: white glass, pink eosin-stained blobs with some texture, dense purple hematoxylin
 * nuclei inside them, and empty glass around and between them.
 */

export type Rgb = readonly [number, number, number];

export interface PixelLevel {
  /** Level index, 0 = finest; -1 for an associated image (thumbnail, overview). */
  readonly index: number;
  /** Level-0 pixels per pixel of this level along each axis. */
  readonly downsample: number;
}

export type PixelFunction = (x: number, y: number, level: PixelLevel) => Rgb;

/** Largest coordinate the encoding holds without wrapping, plus one. */
export const COORDINATE_RANGE = 4096;

export function encodeCoordinatePixel(x: number, y: number): Rgb {
  return [x & 0xff, y & 0xff, ((x >> 8) & 0x0f) | (((y >> 8) & 0x0f) << 4)];
}

/** The (x, y) a coordinate-encoded pixel was written for (modulo 4096). */
export function decodeCoordinatePixel(r: number, g: number, b: number): { x: number; y: number } {
  return { x: r | ((b & 0x0f) << 8), y: g | ((b >> 4) << 8) };
}

/** Each pixel encodes its own coordinates in its level (see the module comment). */
export const coordinatePattern: PixelFunction = (x, y) => encodeCoordinatePixel(x, y);

/** A 32-bit integer hash of a lattice point and a seed, as a number in [0, 1). */
function hash01(ix: number, iy: number, seed: number): number {
  let h = Math.imul(ix | 0, 0x27d4eb2d) ^ Math.imul(iy | 0, 0x165667b1) ^ Math.imul(seed | 0, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}

function smooth(t: number): number {
  return t * t * (3 - 2 * t);
}

/** Smooth value noise in [0, 1) with lattice spacing 1. */
function valueNoise(x: number, y: number, seed: number): number {
  const ix = Math.floor(x);
  const iy = Math.floor(y);
  const fx = smooth(x - ix);
  const fy = smooth(y - iy);
  const a = hash01(ix, iy, seed);
  const b = hash01(ix + 1, iy, seed);
  const c = hash01(ix, iy + 1, seed);
  const d = hash01(ix + 1, iy + 1, seed);
  return a + (b - a) * fx + (c - a) * fy + (a - b - c + d) * fx * fy;
}

function seedNumber(seed: string): number {
  let h = 2166136261;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 16777619);
  return h >>> 0;
}

function clampByte(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}

export interface HematoxylinEosinOptions {
  /** Level-0 size of the slide; tissue stays clear of a margin around it. */
  readonly widthPx: number;
  readonly heightPx: number;
  /** Changes the tissue layout; default 'pathembed-sample'. */
  readonly seed?: string;
  /** Size of tissue blobs in level-0 pixels; default 600. */
  readonly blobScalePx?: number;
  /** Nucleus spacing in level-0 pixels; default 22 (about 11 um at 0.5 um/px). */
  readonly nucleusSpacingPx?: number;
}

const GLASS: Rgb = [243, 242, 246];
const EOSIN: Rgb = [232, 158, 196];
const EOSIN_DARK: Rgb = [205, 112, 165];
const HEMATOXYLIN: Rgb = [88, 52, 140];

/**
 * A deterministic H&E-like slide: roughly half the area is tissue in a few blobs, the rest glass.
 * Coarser levels sample the level-0 image at the centre of each of their pixels.
 */
export function hematoxylinEosinPattern(options: HematoxylinEosinOptions): PixelFunction {
  const seed = seedNumber(options.seed ?? 'pathembed-sample');
  const blob = options.blobScalePx ?? 600;
  const cell = options.nucleusSpacingPx ?? 22;
  const { widthPx, heightPx } = options;
  const margin = Math.min(widthPx, heightPx) * 0.06;

  const tissueAt = (x: number, y: number): number => {
    const edge = Math.min(x, y, widthPx - x, heightPx - y);
    const fade = edge <= 0 ? 0 : Math.min(1, edge / margin);
    const n =
      0.65 * valueNoise(x / blob, y / blob, seed) +
      0.35 * valueNoise(x / (blob / 3), y / (blob / 3), seed + 1);
    return (n - 0.47) * 12 * fade; // > 0 inside tissue, steep edge
  };

  return (px, py, level) => {
    const x = (px + 0.5) * level.downsample;
    const y = (py + 0.5) * level.downsample;
    const tissue = tissueAt(x, y);
    const grain = valueNoise(x / 3, y / 3, seed + 7) - 0.5;
    if (tissue <= 0)
      return [
        clampByte(GLASS[0] + grain * 6),
        clampByte(GLASS[1] + grain * 6),
        clampByte(GLASS[2] + grain * 4),
      ];
    const texture = valueNoise(x / 40, y / 40, seed + 3);
    const w = Math.min(1, tissue);
    let r = GLASS[0] + (EOSIN[0] + (EOSIN_DARK[0] - EOSIN[0]) * texture - GLASS[0]) * w;
    let g = GLASS[1] + (EOSIN[1] + (EOSIN_DARK[1] - EOSIN[1]) * texture - GLASS[1]) * w;
    let b = GLASS[2] + (EOSIN[2] + (EOSIN_DARK[2] - EOSIN[2]) * texture - GLASS[2]) * w;
    // Nuclei: at most one per lattice cell, jittered, present with a probability that grows inside tissue.
    const cx = Math.floor(x / cell);
    const cy = Math.floor(y / cell);
    let nucleus = 0;
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const ix = cx + dx;
        const iy = cy + dy;
        if (hash01(ix, iy, seed + 11) > 0.55 * w) continue;
        const nx = (ix + 0.2 + 0.6 * hash01(ix, iy, seed + 12)) * cell;
        const ny = (iy + 0.2 + 0.6 * hash01(ix, iy, seed + 13)) * cell;
        const radius = cell * (0.18 + 0.12 * hash01(ix, iy, seed + 14));
        const d = Math.hypot(x - nx, y - ny) / radius;
        if (d < 1) nucleus = Math.max(nucleus, d < 0.8 ? 1 : (1 - d) / 0.2);
      }
    }
    if (nucleus > 0) {
      const shade = 0.85 + 0.3 * hash01(cx, cy, seed + 15);
      r += (HEMATOXYLIN[0] * shade - r) * nucleus;
      g += (HEMATOXYLIN[1] * shade - g) * nucleus;
      b += (HEMATOXYLIN[2] * shade - b) * nucleus;
    }
    return [clampByte(r + grain * 10), clampByte(g + grain * 10), clampByte(b + grain * 8)];
  };
}

/** A slide label: white card, a barcode-like stripe block on the left and grey "text" lines on the right. */
export const labelPattern: PixelFunction = (x, y) => {
  if (x >= 16 && x < 112 && y >= 16 && y < 112) {
    const bar = hash01(Math.floor((x - 16) / 3), 0, 42) < 0.5;
    return bar ? [20, 20, 20] : [250, 250, 250];
  }
  if (x >= 128 && x < 240 && (y - 24) % 24 < 10 && y >= 24 && y < 112) {
    return hash01(Math.floor(x / 6), Math.floor(y / 24), 43) < 0.7 ? [60, 60, 60] : [250, 250, 250];
  }
  return [250, 250, 250];
};
