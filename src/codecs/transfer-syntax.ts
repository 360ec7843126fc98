/**
 * Which transfer syntaxes the service decodes and which codec family handles each; the one place
 * that answers "is this frame decodable" before any bytes are looked at.
 */
import { TransferSyntax } from '../uids.js';

export type CodecFamily = 'jpeg' | 'jpeg-lossless' | 'jpeg2000' | 'jpeg-ls' | 'uncompressed' | 'rle';

const CODEC_BY_SYNTAX: ReadonlyMap<string, CodecFamily> = new Map<string, CodecFamily>([
  [TransferSyntax.JpegBaseline, 'jpeg'],
  [TransferSyntax.JpegExtended, 'jpeg'],
  [TransferSyntax.JpegLossless, 'jpeg-lossless'],
  [TransferSyntax.JpegLosslessSV1, 'jpeg-lossless'],
  [TransferSyntax.Jpeg2000Lossless, 'jpeg2000'],
  [TransferSyntax.Jpeg2000, 'jpeg2000'],
  // OpenJPEG 2.5 reads High-Throughput JPEG 2000 (Part 15) codestreams with the same API.
  [TransferSyntax.HtJpeg2000Lossless, 'jpeg2000'],
  [TransferSyntax.HtJpeg2000RpclLossless, 'jpeg2000'],
  [TransferSyntax.HtJpeg2000, 'jpeg2000'],
  [TransferSyntax.JpegLsLossless, 'jpeg-ls'],
  [TransferSyntax.JpegLsNearLossless, 'jpeg-ls'],
  [TransferSyntax.ExplicitVRLittleEndian, 'uncompressed'],
  [TransferSyntax.ImplicitVRLittleEndian, 'uncompressed'],
  [TransferSyntax.RleLossless, 'rle'],
]);

const NAME_BY_UID: ReadonlyMap<string, string> = new Map(
  Object.entries(TransferSyntax).map(([name, uid]) => [uid, name]),
);

export function codecFamily(uid: string): CodecFamily | undefined {
  return CODEC_BY_SYNTAX.get(uid);
}

export function isSupportedTransferSyntax(uid: string): boolean {
  return CODEC_BY_SYNTAX.has(uid);
}

/** The name the service knows a transfer syntax by (e.g. "ExplicitVRBigEndian"), if any. */
export function transferSyntaxName(uid: string): string | undefined {
  return NAME_BY_UID.get(uid);
}

/** The UIDs the service decodes, for error messages. */
export function supportedTransferSyntaxes(): string[] {
  return [...CODEC_BY_SYNTAX.keys()];
}
