/**
 * JPEG 2000 frames (Part 1, lossless and lossy, and HTJ2K) through OpenJPEG in a decode worker
 * (HTJ2K: OpenJPEG over codec-openjph, docs/decisions.md "HTJ2K decoder").
 * OpenJPEG undoes the codestream's multiple component transform (ICT/RCT, the COD marker's MCT
 * flag) itself, so YBR_ICT / YBR_RCT frames come out RGB. When the codestream applied no MCT, its
 * components are what the encoder was given, and only the DICOM label can say they are YCbCr.
 * That label is trusted only when it is one JPEG 2000 allows (YBR_FULL, YBR_ICT: PS3.5 8.2.4).
 * YBR_FULL_422 on full-resolution JPEG 2000 components is a mislabel: OrthancWSIDicomizer writes
 * RGB samples (MCT off) under it, and converting them would turn white glass magenta.
 */
import { samplesToRgb } from './color.js';
import { isYbrFullRange, Photometric } from './photometric.js';
import type { FrameDescription, RgbFrame } from './types.js';
import type { WasmWorkerPool } from './wasm-worker-pool.js';

const MARKER_PREFIX = 0xff;
const SOC = 0x4f;
const SIZ = 0x51;
const COD = 0x52;
const SOT = 0x90;
const SOD = 0x93;
const MARKER_BYTES = 2;
/** COD payload: Lcod (2), Scod (1), progression order (1), layers (2), then the MCT flag. */
const COD_MCT_OFFSET = 8;
/** OpenJPEG's OPJ_COLOR_SPACE values that mean its output is already RGB or grey. */
const OPJ_CLRSPC_SRGB = 1;
const OPJ_CLRSPC_GRAY = 2;
/** The wrapper converts subsampled (4:2:x) YCC itself and then reports sRGB. */
const OPJ_COLOUR_SPACES_DONE: ReadonlySet<number> = new Set([OPJ_CLRSPC_SRGB, OPJ_CLRSPC_GRAY]);

/** Offset of the codestream's SOC marker: 0 for a raw codestream, further in for a JP2 file. */
function findCodestream(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (
      bytes[i] === MARKER_PREFIX &&
      bytes[i + 1] === SOC &&
      bytes[i + 2] === MARKER_PREFIX &&
      bytes[i + 3] === SIZ
    ) {
      return i;
    }
  }
  return -1;
}

/** The main header's MCT flag: true when the codestream applied ICT/RCT; undefined if unreadable. */
export function readJpeg2000Mct(bytes: Uint8Array): boolean | undefined {
  const soc = findCodestream(bytes);
  if (soc < 0) return undefined;
  let i = soc + MARKER_BYTES;
  while (i + 3 < bytes.length && bytes[i] === MARKER_PREFIX) {
    const marker = bytes[i + 1];
    if (marker === SOT || marker === SOD) return undefined;
    if (marker === COD) {
      const at = i + COD_MCT_OFFSET;
      return at < bytes.length ? bytes[at] !== 0 : undefined;
    }
    // In bounds: the loop runs while i + 3 < bytes.length.
    const length = (bytes[i + 2]! << 8) | bytes[i + 3]!;
    i += MARKER_BYTES + length;
  }
  return undefined;
}

export async function decodeJpeg2000(
  encoded: Uint8Array,
  desc: FrameDescription,
  pool: WasmWorkerPool,
): Promise<RgbFrame> {
  const mct = readJpeg2000Mct(encoded);
  const samples = await pool.decode('jpeg2000', encoded);
  const pi = desc.photometricInterpretation;
  const labelledYcbcr = (isYbrFullRange(pi) && pi !== Photometric.YbrFull422) || pi === Photometric.YbrIct;
  const alreadyRgb = samples.colourSpace !== undefined && OPJ_COLOUR_SPACES_DONE.has(samples.colourSpace);
  return samplesToRgb(samples, {
    ybrToRgb: mct === false && labelledYcbcr && !alreadyRgb,
    invertMonochrome: pi === Photometric.Monochrome1,
  });
}
