/**
 * The shapes the codecs exchange: what a caller knows about a frame (from its DICOM image pixel
 * attributes), the RGB frame every decode returns, and the raw samples a codec hands back before
 * any colour conversion.
 */

/** The image pixel attributes (PS3.3 C.7.6.3) a frame is decoded against. */
export interface FrameDescription {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  photometricInterpretation: string;
  bitsAllocated: number;
  bitsStored?: number;
  pixelRepresentation?: number;
  planarConfiguration?: number;
}

/** 8-bit RGB, pixel-interleaved, row by row: `data.length === width * height * 3`. */
export interface RgbFrame {
  width: number;
  height: number;
  data: Uint8Array;
}

/** 8-bit samples as a codec produced them, pixel-interleaved, before any colour conversion. */
export interface DecodedSamples {
  width: number;
  height: number;
  /** 1 (grey) or 3 (colour). */
  samplesPerPixel: number;
  data: Uint8Array;
}
