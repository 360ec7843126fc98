/**
 * A frame as stored, and the counters of frames moved: shared by the wire (src/dicomweb), which
 * delivers frames, the slide model's sources (src/wsi), which hand them on, and the decoders.
 */

/** One frame as stored: its codestream (or raw bytes) and the transfer syntax it is encoded in. */
export interface EncodedFrame {
  readonly data: Uint8Array;
  readonly transferSyntaxUid: string;
}

export interface FrameSourceStats {
  /** HTTP requests (or file reads) made for frames. */
  requests: number;
  /** Frames received. */
  frames: number;
  /** Encoded bytes received. */
  bytes: number;
}
