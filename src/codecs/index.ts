/**
 * Frame decoding: DICOM frames in any supported transfer syntax to 8-bit RGB. Other modules use
 * only what is exported here.
 */
export {
  decodeThreadCount,
  FrameDecoder,
  type FrameDecoderOptions,
  type JpegDecoderChoice,
} from './frame-decoder.js';
export { isSupportedTransferSyntax, transferSyntaxName } from './transfer-syntax.js';
export type { FrameDescription, RgbFrame } from './types.js';
