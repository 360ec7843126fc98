/**
 * Colour conversion to 8-bit RGB: YCbCr (ITU-R BT.601 full range, as DICOM YBR_FULL defines it),
 * its 4:2:2 uncompressed layout, planar-to-interleaved reordering and grey expansion (with the
 * MONOCHROME1 inversion). Pure functions on byte arrays, shared by every codec and by the workers.
 */
import type { DecodedSamples, RgbFrame } from './types.js';

export const RGB_CHANNELS = 3;
const MAX_SAMPLE = 255;
const CHROMA_ZERO = 128;
const BYTE_VALUES = 256;

// Fixed-point BT.601 full-range inverse (PS3.3 C.7.6.3.1.2), the same arithmetic libjpeg uses
// (jdcolor.c), so our conversion of uncompressed YBR matches what DCMTK and libjpeg produce.
const SCALE_BITS = 16;
const ONE_HALF = 1 << (SCALE_BITS - 1);
const fix = (x: number): number => Math.round(x * (1 << SCALE_BITS));
const CR_TO_R = 1.402;
const CB_TO_B = 1.772;
const CR_TO_G = 0.71414;
const CB_TO_G = 0.34414;

const crToR = new Int32Array(BYTE_VALUES);
const cbToB = new Int32Array(BYTE_VALUES);
const crToG = new Int32Array(BYTE_VALUES);
const cbToG = new Int32Array(BYTE_VALUES);
for (let i = 0; i < BYTE_VALUES; i++) {
  const x = i - CHROMA_ZERO;
  crToR[i] = (fix(CR_TO_R) * x + ONE_HALF) >> SCALE_BITS;
  cbToB[i] = (fix(CB_TO_B) * x + ONE_HALF) >> SCALE_BITS;
  crToG[i] = -fix(CR_TO_G) * x;
  cbToG[i] = -fix(CB_TO_G) * x + ONE_HALF;
}

const clamp = (v: number): number => Math.max(0, Math.min(v, MAX_SAMPLE));

function ybrPixel(out: Uint8Array, at: number, y: number, cb: number, cr: number): void {
  // cb and cr are bytes, and the tables have one entry per byte value.
  out[at] = clamp(y + crToR[cr]!);
  out[at + 1] = clamp(y + ((cbToG[cb]! + crToG[cr]!) >> SCALE_BITS));
  out[at + 2] = clamp(y + cbToB[cb]!);
}

/** Converts pixel-interleaved Y, Cb, Cr samples to R, G, B in place. */
export function ybrFullToRgbInPlace(data: Uint8Array): void {
  for (let i = 0; i + 2 < data.length; i += RGB_CHANNELS) {
    ybrPixel(data, i, data[i]!, data[i + 1]!, data[i + 2]!);
  }
}

const YBR_422_BYTES_PER_PAIR = 4;
const PIXELS_PER_CHROMA_PAIR = 2;

/**
 * Uncompressed YBR_FULL_422 stores each horizontal pixel pair as Y1 Y2 Cb Cr (PS3.3 C.7.6.3.1.2),
 * so a row holds `width * 2` bytes. `width` must be even.
 */
export function ybrFull422ToRgb(data: Uint8Array, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * RGB_CHANNELS);
  const pairs = (width * height) / PIXELS_PER_CHROMA_PAIR;
  for (let p = 0; p < pairs; p++) {
    const src = p * YBR_422_BYTES_PER_PAIR;
    const cb = data[src + 2]!;
    const cr = data[src + 3]!;
    const dst = p * PIXELS_PER_CHROMA_PAIR * RGB_CHANNELS;
    ybrPixel(out, dst, data[src]!, cb, cr);
    ybrPixel(out, dst + RGB_CHANNELS, data[src + 1]!, cb, cr);
  }
  return out;
}

/** Reorders planes (all of sample 0, then all of sample 1, ...) into pixel-interleaved samples. */
export function planarToInterleaved(
  planar: Uint8Array,
  pixelCount: number,
  samplesPerPixel: number,
): Uint8Array {
  const out = new Uint8Array(pixelCount * samplesPerPixel);
  for (let s = 0; s < samplesPerPixel; s++) {
    const plane = s * pixelCount;
    for (let i = 0; i < pixelCount; i++) out[i * samplesPerPixel + s] = planar[plane + i]!;
  }
  return out;
}

/** Grey to RGB by repeating each sample; MONOCHROME1 stores white as 0, so it is inverted. */
export function monochromeToRgb(grey: Uint8Array, pixelCount: number, invert: boolean): Uint8Array {
  const out = new Uint8Array(pixelCount * RGB_CHANNELS);
  for (let i = 0; i < pixelCount; i++) {
    const v = invert ? MAX_SAMPLE - grey[i]! : grey[i]!;
    const o = i * RGB_CHANNELS;
    out[o] = v;
    out[o + 1] = v;
    out[o + 2] = v;
  }
  return out;
}

export interface ColourConversion {
  /** The colour samples are Y, Cb, Cr and need the BT.601 full-range inverse. */
  ybrToRgb: boolean;
  /** Grey samples are MONOCHROME1 (0 is white). */
  invertMonochrome: boolean;
}

/** Turns 1- or 3-sample codec output into an RGB frame; takes ownership of `samples.data`. */
export function samplesToRgb(samples: DecodedSamples, conversion: ColourConversion): RgbFrame {
  const { width, height } = samples;
  const pixelCount = width * height;
  if (samples.samplesPerPixel === 1) {
    return { width, height, data: monochromeToRgb(samples.data, pixelCount, conversion.invertMonochrome) };
  }
  if (conversion.ybrToRgb) ybrFullToRgbInPlace(samples.data);
  return { width, height, data: samples.data };
}
