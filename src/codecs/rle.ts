/**
 * RLE Lossless frames (PS3.5 Annex G): a 64-byte header of segment offsets, then one PackBits
 * segment per byte plane. With 8-bit samples each segment is one whole sample plane, so the
 * output is planar whatever PlanarConfiguration says.
 */
import { PathembedError } from '../errors.js';
import { planarToInterleaved, samplesToRgb } from './color.js';
import { assertHeaderDescribesSamples, isYbrFullRange, Photometric } from './photometric.js';
import type { FrameDescription, RgbFrame } from './types.js';

const HEADER_BYTES = 64;
const MAX_SEGMENTS = 15;
const OFFSET_BYTES = 4;
/** PackBits: a header byte n in 0..127 copies n+1 literal bytes, -127..-1 repeats the next byte 1-n times. */
const MAX_LITERAL_HEADER = 127;
const NO_OP_HEADER = -128;
const SIGNED_BYTE_WRAP = 256;

function fail(message: string, desc: FrameDescription, extra: Record<string, unknown> = {}): never {
  throw new PathembedError('FRAME_DECODE_ERROR', message, { ...desc, ...extra });
}

/** Decodes one PackBits segment into `out`; returns how many bytes it produced. */
function unpackSegment(src: Uint8Array, start: number, end: number, out: Uint8Array): number {
  let i = start;
  let o = 0;
  // The caller checked end <= src.length, so every read below i < end is in bounds.
  while (i < end && o < out.length) {
    const raw = src[i++]!;
    const n = raw > MAX_LITERAL_HEADER ? raw - SIGNED_BYTE_WRAP : raw;
    if (n >= 0) {
      const count = Math.min(n + 1, out.length - o, end - i);
      out.set(src.subarray(i, i + count), o);
      i += n + 1;
      o += count;
    } else if (n !== NO_OP_HEADER) {
      if (i >= end) break;
      const count = Math.min(1 - n, out.length - o);
      out.fill(src[i++]!, o, o + count);
      o += count;
    }
  }
  return o;
}

export function decodeRle(encoded: Uint8Array, desc: FrameDescription): RgbFrame {
  assertHeaderDescribesSamples(desc, 'RLE Lossless');
  if (encoded.length < HEADER_BYTES) {
    fail(`RLE frame is ${encoded.length} bytes, shorter than its ${HEADER_BYTES}-byte header`, desc);
  }
  const view = new DataView(encoded.buffer, encoded.byteOffset, encoded.byteLength);
  const segmentCount = view.getUint32(0, true);
  // 8-bit samples: one segment per sample.
  if (segmentCount !== desc.samplesPerPixel || segmentCount > MAX_SEGMENTS) {
    fail(
      `RLE frame has ${segmentCount} segments but ${desc.samplesPerPixel} 8-bit samples per pixel need ${desc.samplesPerPixel}`,
      desc,
      { segments: segmentCount },
    );
  }
  const offsets: number[] = [];
  for (let s = 0; s < segmentCount; s++) offsets.push(view.getUint32(OFFSET_BYTES * (s + 1), true));

  const width = desc.columns;
  const height = desc.rows;
  const pixelCount = width * height;
  const planar = new Uint8Array(pixelCount * segmentCount);
  for (let s = 0; s < segmentCount; s++) {
    const start = offsets[s]!;
    // offsets holds segmentCount entries: the last segment runs to the end of the frame.
    const end = offsets[s + 1] ?? encoded.length;
    if (start < HEADER_BYTES || end > encoded.length || end < start) {
      fail(
        `RLE segment ${s + 1} has invalid offsets ${start}..${end} in a ${encoded.length}-byte frame`,
        desc,
      );
    }
    const plane = planar.subarray(s * pixelCount, (s + 1) * pixelCount);
    const produced = unpackSegment(encoded, start, end, plane);
    if (produced !== pixelCount) {
      fail(
        `RLE segment ${s + 1} decoded to ${produced} bytes but ${width}x${height} needs ${pixelCount}`,
        desc,
        { segment: s + 1, decodedBytes: produced, expectedBytes: pixelCount },
      );
    }
  }
  const interleaved = segmentCount === 1 ? planar : planarToInterleaved(planar, pixelCount, segmentCount);
  return samplesToRgb(
    { width, height, samplesPerPixel: segmentCount, data: interleaved },
    {
      // RLE cannot carry subsampled chroma: a YBR_FULL_422 label still means full-size planes.
      ybrToRgb: isYbrFullRange(desc.photometricInterpretation),
      invertMonochrome: desc.photometricInterpretation === Photometric.Monochrome1,
    },
  );
}
