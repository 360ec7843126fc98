/**
 * The binary file one chunk job writes: the embeddings of a contiguous run of plan patches, so the
 * assemble job can stream them into the JSON result in order without holding a slide in memory.
 * Layout (little-endian): magic "PECH", format version, first patch index, patch count, embedding
 * width (all uint32), then count x width float32. Floats are stored as computed, so the JSON the
 * assembler writes is identical to a one-process run.
 */
import { PathembedError } from '../errors.js';
import type { PatchEmbedding } from '../pipeline/index.js';

const MAGIC = 0x48434550; // "PECH" read as a little-endian uint32
const FORMAT_VERSION = 1;
const HEADER_WORDS = 5;
const HEADER_BYTES = HEADER_WORDS * 4;
const FLOAT_BYTES = 4;

/** Encodes embeddings of patches `start … start + n - 1`, which must be given in index order. */
export function encodeChunk(start: number, embeddings: readonly PatchEmbedding[]): Buffer {
  const width = embeddings[0]?.embedding.length ?? 0;
  const out = Buffer.alloc(HEADER_BYTES + embeddings.length * width * FLOAT_BYTES);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt32LE(FORMAT_VERSION, 4);
  out.writeUInt32LE(start, 8);
  out.writeUInt32LE(embeddings.length, 12);
  out.writeUInt32LE(width, 16);
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
}

export function decodeChunk(data: Buffer, where: string): DecodedChunk {
  if (
    data.length < HEADER_BYTES ||
    data.readUInt32LE(0) !== MAGIC ||
    data.readUInt32LE(4) !== FORMAT_VERSION
  ) {
    throw new PathembedError('INTERNAL', `${where} is not a version ${FORMAT_VERSION} chunk file`);
  }
  const start = data.readUInt32LE(8);
  const count = data.readUInt32LE(12);
  const width = data.readUInt32LE(16);
  if (data.length !== HEADER_BYTES + count * width * FLOAT_BYTES) {
    throw new PathembedError(
      'INTERNAL',
      `${where} is truncated: ${data.length} bytes for ${count} x ${width}`,
    );
  }
  // Copy into an aligned buffer: the file buffer's offset need not be a multiple of 4.
  const floats = new Float32Array(count * width);
  Buffer.from(floats.buffer).set(data.subarray(HEADER_BYTES));
  const embeddings: PatchEmbedding[] = [];
  for (let i = 0; i < count; i++) {
    embeddings.push({ index: start + i, embedding: floats.subarray(i * width, (i + 1) * width) });
  }
  return { start, count, width, embeddings };
}
