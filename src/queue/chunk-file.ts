/**
 * The binary file one chunk job writes: the embeddings of a contiguous run of plan patches, so the
 * assemble job can stream them into the JSON result in order without holding a slide in memory.
 * Layout (little-endian): magic "PECH", format version, first patch index, patch count, embedding
 * width (all uint32), the chunk's busy milliseconds fetching, decoding and inferring (3 float64,
 * version 2 on), then count x width float32. Floats are stored as computed, so the JSON the
 * assembler writes is identical to a one-process run. Version 1 files (no stage times) still
 * decode, with zero times, so chunks written before an upgrade can be assembled after it.
 */
import { PathembedError } from '../errors.js';
import type { PatchEmbedding } from '../pipeline/index.js';
import type { StageBusyMs } from './pipeline-port.js';

const MAGIC = 0x48434550; // "PECH" read as a little-endian uint32
const FORMAT_VERSION = 2;
/** Version 1: no stage times in the header. */
const FORMAT_VERSION_NO_STAGES = 1;
const HEADER_WORDS = 5;
const BASE_HEADER_BYTES = HEADER_WORDS * 4;
const STAGE_BYTES = 3 * 8;
const HEADER_BYTES = BASE_HEADER_BYTES + STAGE_BYTES;
const FLOAT_BYTES = 4;

const NO_STAGES: StageBusyMs = Object.freeze({ fetchMs: 0, decodeMs: 0, inferMs: 0 });

/**
 * Encodes embeddings of patches `start … start + n - 1`, which must be given in index order, with
 * the busy time of each stage while they were computed (none: zeros, e.g. /v1/predict's files).
 */
export function encodeChunk(
  start: number,
  embeddings: readonly PatchEmbedding[],
  stageMs: StageBusyMs = NO_STAGES,
): Buffer {
  const width = embeddings[0]?.embedding.length ?? 0;
  const out = Buffer.alloc(HEADER_BYTES + embeddings.length * width * FLOAT_BYTES);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt32LE(FORMAT_VERSION, 4);
  out.writeUInt32LE(start, 8);
  out.writeUInt32LE(embeddings.length, 12);
  out.writeUInt32LE(width, 16);
  out.writeDoubleLE(stageMs.fetchMs, BASE_HEADER_BYTES);
  out.writeDoubleLE(stageMs.decodeMs, BASE_HEADER_BYTES + 8);
  out.writeDoubleLE(stageMs.inferMs, BASE_HEADER_BYTES + 16);
  let offset = HEADER_BYTES;
  embeddings.forEach((e, i) => {
    if (e.index !== start + i) {
      throw new PathembedError(
        'INTERNAL',
        `Chunk embeddings out of order: expected patch ${start + i}, got ${e.index}`,
      );
    }
    if (e.embedding.length !== width) {
      throw new PathembedError(
        'INTERNAL',
        `Patch ${e.index} has ${e.embedding.length} values, the chunk ${width}`,
      );
    }
    const bytes = Buffer.from(e.embedding.buffer, e.embedding.byteOffset, e.embedding.byteLength);
    // Float32Array is host-endian; every platform Node supports for this service is little-endian.
    bytes.copy(out, offset);
    offset += bytes.length;
  });
  return out;
}

export interface DecodedChunk {
  readonly start: number;
  readonly count: number;
  readonly width: number;
  readonly embeddings: PatchEmbedding[];
  /** Busy time of each stage while the chunk was embedded (zeros in a version 1 file). */
  readonly stageMs: StageBusyMs;
}

export function decodeChunk(data: Buffer, where: string): DecodedChunk {
  const version = data.length >= BASE_HEADER_BYTES ? data.readUInt32LE(4) : 0;
  if (
    data.length < BASE_HEADER_BYTES ||
    data.readUInt32LE(0) !== MAGIC ||
    (version !== FORMAT_VERSION && version !== FORMAT_VERSION_NO_STAGES) ||
    (version === FORMAT_VERSION && data.length < HEADER_BYTES)
  ) {
    throw new PathembedError('INTERNAL', `${where} is not a version ${FORMAT_VERSION} chunk file`);
  }
  const headerBytes = version === FORMAT_VERSION ? HEADER_BYTES : BASE_HEADER_BYTES;
  const start = data.readUInt32LE(8);
  const count = data.readUInt32LE(12);
  const width = data.readUInt32LE(16);
  const stageMs: StageBusyMs =
    version === FORMAT_VERSION
      ? {
          fetchMs: data.readDoubleLE(BASE_HEADER_BYTES),
          decodeMs: data.readDoubleLE(BASE_HEADER_BYTES + 8),
          inferMs: data.readDoubleLE(BASE_HEADER_BYTES + 16),
        }
      : NO_STAGES;
  if (data.length !== headerBytes + count * width * FLOAT_BYTES) {
    throw new PathembedError(
      'INTERNAL',
      `${where} is truncated: ${data.length} bytes for ${count} x ${width}`,
    );
  }
  // Copy into an aligned buffer: the file buffer's offset need not be a multiple of 4.
  const floats = new Float32Array(count * width);
  Buffer.from(floats.buffer).set(data.subarray(headerBytes));
  const embeddings: PatchEmbedding[] = [];
  for (let i = 0; i < count; i++) {
    embeddings.push({ index: start + i, embedding: floats.subarray(i * width, (i + 1) * width) });
  }
  return { start, count, width, embeddings, stageMs };
}
