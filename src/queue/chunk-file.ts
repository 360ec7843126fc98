/**
 * The binary file one chunk job writes: the embeddings of a contiguous run of plan patches, so the
 * assemble job can stream them into the JSON result in order without holding a slide in memory.
 * Layout (little-endian): magic "PECH", format version, first patch index, patch count, embedding
 * width (all uint32), the chunk's busy milliseconds fetching, decoding and inferring (3 float64,
 * version 2 on), then count x width float32. Floats are stored as computed, so the JSON the
 * assembler writes is identical to a one-process run. Version 1 files (no stage times) still
 * decode, with zero times, so chunks written before an upgrade can be assembled after it.
 *
 * A chunk with failed patches (frameErrors: skip) is written as version 3: after the stage times,
 * the byte length of a UTF-8 JSON list of the failures ({index, code, message}); then the
 * embeddings of the other patches only, in index order; then that JSON. Chunks without failures
 * stay version 2, byte for byte as before.
 */
import { PathembedError } from '../errors.js';
import {
  isFailedPatch,
  type PatchEmbedding,
  type PatchFailure,
  type PatchOutcome,
} from '../pipeline/index.js';
import type { StageBusyMs } from './pipeline-port.js';

const MAGIC = 0x48434550; // "PECH" read as a little-endian uint32
const FORMAT_VERSION = 2;
/** Version 3: version 2 plus failed patches. */
const FORMAT_VERSION_FAILURES = 3;
/** Version 1: no stage times in the header. */
const FORMAT_VERSION_NO_STAGES = 1;
const HEADER_WORDS = 5;
const BASE_HEADER_BYTES = HEADER_WORDS * 4;
const STAGE_BYTES = 3 * 8;
const HEADER_BYTES = BASE_HEADER_BYTES + STAGE_BYTES;
const FAILURE_LENGTH_BYTES = 4;
const HEADER_BYTES_FAILURES = HEADER_BYTES + FAILURE_LENGTH_BYTES;
const FLOAT_BYTES = 4;

const NO_STAGES: StageBusyMs = Object.freeze({ fetchMs: 0, decodeMs: 0, inferMs: 0 });

/**
 * Encodes embeddings of patches `start … start + n - 1`, which must be given in index order, with
 * the busy time of each stage while they were computed (none: zeros, e.g. /v1/predict's files).
 */
export function encodeChunk(
  start: number,
  outcomes: readonly PatchOutcome[],
  stageMs: StageBusyMs = NO_STAGES,
): Buffer {
  const failures: FailureRecord[] = [];
  for (const o of outcomes) if (isFailedPatch(o)) failures.push({ index: o.index, ...o.failed });
  const embedded = outcomes.filter((o): o is PatchEmbedding => !isFailedPatch(o));
  const width = embedded[0]?.embedding.length ?? 0;
  const failureJson = failures.length > 0 ? Buffer.from(JSON.stringify(failures), 'utf8') : undefined;
  const headerBytes = failureJson ? HEADER_BYTES_FAILURES : HEADER_BYTES;
  const floatBytes = embedded.length * width * FLOAT_BYTES;
  const out = Buffer.alloc(headerBytes + floatBytes + (failureJson?.length ?? 0));
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt32LE(failureJson ? FORMAT_VERSION_FAILURES : FORMAT_VERSION, 4);
  out.writeUInt32LE(start, 8);
  out.writeUInt32LE(outcomes.length, 12);
  out.writeUInt32LE(width, 16);
  out.writeDoubleLE(stageMs.fetchMs, BASE_HEADER_BYTES);
  out.writeDoubleLE(stageMs.decodeMs, BASE_HEADER_BYTES + 8);
  out.writeDoubleLE(stageMs.inferMs, BASE_HEADER_BYTES + 16);
  if (failureJson) {
    out.writeUInt32LE(failureJson.length, HEADER_BYTES);
    failureJson.copy(out, headerBytes + floatBytes);
  }
  let offset = headerBytes;
  outcomes.forEach((e, i) => {
    if (e.index !== start + i) {
      throw new PathembedError(
        'INTERNAL',
        `Chunk embeddings out of order: expected patch ${start + i}, got ${e.index}`,
      );
    }
    if (isFailedPatch(e)) return;
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

interface FailureRecord extends PatchFailure {
  readonly index: number;
}

export interface DecodedChunk {
  readonly start: number;
  /** Patches of the chunk, failed ones included. */
  readonly count: number;
  readonly width: number;
  /** One per patch, in index order: its embedding, or (version 3) why it has none. */
  readonly embeddings: PatchOutcome[];
  /** Busy time of each stage while the chunk was embedded (zeros in a version 1 file). */
  readonly stageMs: StageBusyMs;
}

export function decodeChunk(data: Buffer, where: string): DecodedChunk {
  const version = data.length >= BASE_HEADER_BYTES ? data.readUInt32LE(4) : 0;
  const headerBytes =
    version === FORMAT_VERSION_FAILURES
      ? HEADER_BYTES_FAILURES
      : version === FORMAT_VERSION
        ? HEADER_BYTES
        : BASE_HEADER_BYTES;
  if (
    data.length < BASE_HEADER_BYTES ||
    data.readUInt32LE(0) !== MAGIC ||
    ![FORMAT_VERSION, FORMAT_VERSION_NO_STAGES, FORMAT_VERSION_FAILURES].includes(version) ||
    data.length < headerBytes
  ) {
    throw new PathembedError('INTERNAL', `${where} is not a version ${FORMAT_VERSION} chunk file`);
  }
  const start = data.readUInt32LE(8);
  const count = data.readUInt32LE(12);
  const width = data.readUInt32LE(16);
  const stageMs: StageBusyMs =
    version === FORMAT_VERSION_NO_STAGES
      ? NO_STAGES
      : {
          fetchMs: data.readDoubleLE(BASE_HEADER_BYTES),
          decodeMs: data.readDoubleLE(BASE_HEADER_BYTES + 8),
          inferMs: data.readDoubleLE(BASE_HEADER_BYTES + 16),
        };
  const failureBytes = version === FORMAT_VERSION_FAILURES ? data.readUInt32LE(HEADER_BYTES) : 0;
  const floatBytes = data.length - headerBytes - failureBytes;
  const failures = new Map<number, PatchFailure>();
  if (failureBytes > 0 && floatBytes >= 0) {
    const text = data.subarray(data.length - failureBytes).toString('utf8');
    let list: FailureRecord[];
    try {
      list = JSON.parse(text) as FailureRecord[];
    } catch {
      throw new PathembedError('INTERNAL', `${where} has an unreadable list of failed patches`);
    }
    for (const f of list) failures.set(f.index, { code: f.code, message: f.message });
  }
  const embedded = count - failures.size;
  if (floatBytes !== embedded * width * FLOAT_BYTES) {
    throw new PathembedError(
      'INTERNAL',
      `${where} is truncated: ${data.length} bytes for ${count} x ${width} (${failures.size} failed)`,
    );
  }
  // Copy into an aligned buffer: the file buffer's offset need not be a multiple of 4.
  const floats = new Float32Array(embedded * width);
  Buffer.from(floats.buffer).set(data.subarray(headerBytes, headerBytes + floatBytes));
  const embeddings: PatchOutcome[] = [];
  let row = 0;
  for (let i = 0; i < count; i++) {
    const failed = failures.get(start + i);
    if (failed) {
      embeddings.push({ index: start + i, failed });
      continue;
    }
    embeddings.push({ index: start + i, embedding: floats.subarray(row * width, (row + 1) * width) });
    row++;
  }
  return { start, count, width, embeddings, stageMs };
}
