/**
 * What a JPEG stream says about itself, read from its segments up to the frame header: how many
 * components it codes, and its colour space as libjpeg judges it (a JFIF APP0 marker means
 * YCbCr, an Adobe APP14 marker's transform flag means RGB (0) or YCbCr (1)).
 */

const MARKER_PREFIX = 0xff;
const SOI = 0xd8;
const APP0 = 0xe0;
const APP14 = 0xee;
const SOS = 0xda;
/** SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range. */
const SOF_FIRST = 0xc0;
const SOF_LAST = 0xcf;
const NOT_SOF: ReadonlySet<number> = new Set([0xc4, 0xc8, 0xcc]);
/** Markers that stand alone, without a length field. */
const RST_FIRST = 0xd0;
const RST_LAST = 0xd7;
const TEM = 0x01;
const FILL = 0xff;

const JFIF_ID = [0x4a, 0x46, 0x49, 0x46, 0x00]; // "JFIF\0"
const ADOBE_ID = [0x41, 0x64, 0x6f, 0x62, 0x65]; // "Adobe"
/** Offset of the transform flag inside the Adobe segment's payload (after its 2-byte length). */
const ADOBE_TRANSFORM_OFFSET = 11;
const LENGTH_BYTES = 2;
/** SOFn payload: length (2), precision (1), lines (2), samples per line (2), then Nf. */
const SOF_COMPONENTS_OFFSET = 7;

export const ADOBE_TRANSFORM_RGB = 0;

export interface JpegHeader {
  /** Components in the frame header (SOFn), or undefined when no frame header was found. */
  components: number | undefined;
  jfif: boolean;
  /** Adobe APP14 transform flag: 0 = RGB (or CMYK), 1 = YCbCr, 2 = YCCK; undefined when absent. */
  adobeTransform: number | undefined;
}

function startsWith(bytes: Uint8Array, at: number, id: readonly number[]): boolean {
  return id.every((b, i) => bytes[at + i] === b);
}

export function readJpegHeader(bytes: Uint8Array): JpegHeader {
  const found: JpegHeader = { components: undefined, jfif: false, adobeTransform: undefined };
  if (bytes[0] !== MARKER_PREFIX || bytes[1] !== SOI) return found;
  let i = 2;
  while (i + 3 < bytes.length) {
    if (bytes[i] !== MARKER_PREFIX) return found;
    // i + 3 < bytes.length, so the marker and its two length bytes are in bounds.
    const marker = bytes[i + 1]!;
    if (marker === FILL) {
      i += 1;
      continue;
    }
    if (marker === TEM || (marker >= RST_FIRST && marker <= RST_LAST)) {
      i += 2;
      continue;
    }
    if (marker === SOS) return found;
    if (marker >= SOF_FIRST && marker <= SOF_LAST && !NOT_SOF.has(marker)) {
      found.components = bytes[i + 2 + SOF_COMPONENTS_OFFSET];
      return found;
    }
    const length = (bytes[i + 2]! << 8) | bytes[i + 3]!;
    const payload = i + 2 + LENGTH_BYTES;
    if (marker === APP0 && startsWith(bytes, payload, JFIF_ID)) found.jfif = true;
    if (
      marker === APP14 &&
      startsWith(bytes, payload, ADOBE_ID) &&
      payload + ADOBE_TRANSFORM_OFFSET < bytes.length
    ) {
      found.adobeTransform = bytes[payload + ADOBE_TRANSFORM_OFFSET];
    }
    i += 2 + length;
  }
  return found;
}

/** True when the stream's own markers state YCbCr coding; undefined when they say nothing. */
export function streamSaysYcbcr(markers: JpegHeader): boolean | undefined {
  if (markers.adobeTransform !== undefined) return markers.adobeTransform !== ADOBE_TRANSFORM_RGB;
  if (markers.jfif) return true;
  return undefined;
}

/**
 * The one libjpeg warning a frame may carry and still be whole: extraneous bytes before the EOI
 * marker (0xd9), common in real scanners' streams (Aperio pads the end of each tile). libjpeg
 * raises it once the scan is fully decoded. The same warning before any other marker (a restart
 * marker inside the scan) means entropy-coded data was skipped, so it fails like any other.
 * libjpeg reports only the first warning of a frame, so the decoders test that one.
 */
export const BENIGN_JPEG_WARNING = /extraneous bytes before marker 0xd9\b/i;
